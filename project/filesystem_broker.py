"""Celery's filesystem broker (the embedded default), with each message written whole before a worker can see it.

kombu's filesystem transport (5.7) creates a message's file in the queue folder and then writes it.
A worker that lists the folder in that moment takes the empty file, cannot parse it and stops (the
JSONDecodeError ends the worker), and the message is lost: a deletion queued by the web process then
waited for ever (CI, once). Here a message is written under a name no reader takes (a leading dot)
and renamed into the queue once complete; a rename within a folder is atomic, so a reader finds the
message whole or not at all, and takes the messages in the order they were written. Reading is
kombu's own.
"""
from __future__ import annotations

import os
import uuid
from time import monotonic_ns

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # A reader sorts the names and takes the first: kombu's start with the millisecond, so messages of
        # one millisecond came out in random order; nanoseconds, padded so that text order is time order.
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        draft = os.path.join(self.data_folder_out, f".{name}.draft")  # readers take only names "<x>.<queue>.msg"
        try:
            with open(draft, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.rename(draft, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
