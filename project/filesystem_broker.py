"""Celery's filesystem broker (the embedded default), with each message written whole and taken by one worker.

kombu's filesystem transport (5.7) creates a message's file in the queue folder and then writes it.
A worker that lists the folder in that moment takes the empty file, cannot parse it and stops (the
JSONDecodeError ends the worker), and the message is lost: a deletion queued by the web process then
waited for ever (CI, once). Here a message is written under a name no reader takes (a leading dot)
and renamed into the queue once complete; a rename within a folder is atomic, so a reader finds the
message whole or not at all. A reader takes a message by renaming it into the processed folder beside
the queue (kombu moves it to the system's temporary folder, a copy and a delete where that is another
filesystem, so two workers could both take it), then reads and deletes it. A message that still
cannot be read is logged and skipped rather than ending the worker.

The exchange tables (which queues a broadcast reaches: Celery's remote control) are rewritten the same
way, under a lock: kombu created a missing table by truncating and then locking it, so two workers
starting together (`make demo`) could read an empty table and stop, or lose one's binding.
"""
from __future__ import annotations

import fcntl
import logging
import os
import uuid
from collections.abc import Callable
from queue import Empty
from time import monotonic_ns

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)


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

    def _get(self, queue):
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != f"{queue}.msg":
                continue
            taken = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), taken)
            except OSError:
                continue  # another worker took it first
            try:
                with open(taken, "rb") as file:
                    payload = file.read()
                os.remove(taken)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {taken!r} from queue.") from exc
            try:
                return loads(bytes_to_str(payload))
            except ValueError:  # not JSON, or not UTF-8
                logger.error("Skipped message %s of queue %s: it is not JSON (%d bytes)", name, queue, len(payload))
        raise Empty()

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._table_change(exchange, lambda table: table if binding in table else [binding, *table])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)  # not kombu's rewrite
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._table_change(exchange, lambda table: [row for row in table if row != binding])

    def _table_change(self, exchange, change: Callable[[list], list]) -> None:
        """Read, change and write an exchange's table under one lock; the new table is renamed into place whole,
        so a reader (get_table, which does not take this lock) finds the old one or the new one."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        with open(self.control_folder / ".lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)  # released when closed
            table = self.get_table(exchange)
            if (changed := change(table)) != table:
                draft = file.with_name(f".{file.name}.{os.getpid()}.draft")
                draft.write_bytes(str_to_bytes(dumps(changed)))
                os.replace(draft, file)


class Transport(filesystem.Transport):
    Channel = Channel
