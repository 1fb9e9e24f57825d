"""Writes of the worker rows: a worker's beat, and its goodbye."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from workers.models import Worker

# A row no worker has written for this long is forgotten: a machine that went for good (an autoscaled
# pod's random name) would otherwise be named as "last seen" for ever.
FORGET_AFTER = timedelta(days=1)


def worker_seen(*, name: str, queues: list[str], concurrency: int, pid: int, tasks: list[dict],
                started_at: datetime) -> Worker:
    """Write one worker's beat: it is alive now, consumes these queues and runs these tasks."""
    now = timezone.now()
    worker, _ = Worker.objects.update_or_create(name=name, defaults={
        "queues": sorted(queues), "concurrency": max(1, concurrency), "pid": pid, "tasks": tasks,
        "started_at": started_at, "seen_at": now,
    })
    Worker.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()
    return worker


def worker_gone(*, name: str) -> None:
    """A worker that stops cleanly takes its row with it: it is not running, and not lost either."""
    Worker.objects.filter(name=name).delete()
