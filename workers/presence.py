"""A Celery worker's beat: a thread of its main process writes its row (workers/models.py) every
WORKER_BEAT_SECONDS, with the queues it consumes and the tasks its pool runs, and deletes it when the
worker stops cleanly. Connected to Celery's worker_ready and worker_shutdown signals in workers/apps.py.

The main process knows every task its pool processes run (Celery's worker state, which `celery inspect
active` answers from), so a beat costs one small write, whatever the tasks do; a killed pool process's
task leaves that list when the main process sees it die.
"""
from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime

from celery.worker import state
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from workers.services import worker_gone, worker_seen

logger = logging.getLogger(__name__)

_PRESENCE: Presence | None = None


class Presence:
    def __init__(self, consumer) -> None:
        self.consumer = consumer
        self.name = consumer.hostname
        controller = getattr(consumer, "controller", None)
        self.concurrency = int(getattr(controller, "concurrency", None) or 1)
        self.started_at = timezone.now()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="worker-presence", daemon=True)

    def queues(self) -> list[str]:
        # Read at every beat: `celery control add_consumer` changes them while the worker runs.
        return sorted(self.consumer.app.amqp.queues.consume_from)

    def beat(self) -> None:
        close_old_connections()  # a connection the database dropped since the last beat is made again
        worker_seen(name=self.name, queues=self.queues(), concurrency=self.concurrency, pid=os.getpid(),
                    tasks=running_tasks(), started_at=self.started_at)

    def run(self) -> None:
        while True:
            try:
                self.beat()
            except Exception:  # the database away for a while: say so, and beat again later
                logger.warning("worker %s could not write its beat", self.name, exc_info=True)
            if self.stopped.wait(settings.WORKER_BEAT_SECONDS):
                return

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        try:
            close_old_connections()
            worker_gone(name=self.name)
        except Exception:
            logger.warning("worker %s could not remove its row; it will read as stopped after 3 beats", self.name,
                           exc_info=True)


def running_tasks() -> list[dict]:
    """The tasks this worker's pool runs now: name, args (ids: tasks take ids) and start, oldest first."""
    for _ in range(5):
        try:  # a WeakSet the worker's own thread changes: copied again if it changed meanwhile
            requests = list(state.active_requests)
            break
        except RuntimeError:
            continue
    else:
        requests = []
    tasks = []
    for request in requests:
        started = request.time_start
        tasks.append({
            "id": request.id, "name": request.name, "args": [_brief(arg) for arg in list(request.args or [])[:5]],
            "since": datetime.fromtimestamp(started, UTC).isoformat() if started else None,
        })
    return sorted(tasks, key=lambda task: task["since"] or "")


def _brief(arg):
    """Ids stay as they are; a long list of them (the image ids of an outcomes refresh) is counted instead."""
    if isinstance(arg, (int, float, bool)) or arg is None:
        return arg
    if isinstance(arg, (list, tuple)):
        return arg if len(arg) <= 10 and all(isinstance(a, int) for a in arg) else f"{len(arg)} items"
    return str(arg)[:100]


def presence_start(sender, **kwargs) -> None:
    """worker_ready: begin beating, once per worker process."""
    global _PRESENCE
    if _PRESENCE is None:
        _PRESENCE = Presence(sender)
        _PRESENCE.thread.start()


def presence_stop(sender=None, **kwargs) -> None:
    """worker_shutdown (a clean stop: Ctrl-C, SIGTERM): the row goes with the worker."""
    global _PRESENCE
    if _PRESENCE is not None:
        _PRESENCE.stop()
        _PRESENCE = None
