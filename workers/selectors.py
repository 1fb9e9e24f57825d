"""Reads of the worker rows: who consumes a queue."""
from __future__ import annotations

from workers.models import Worker


def queue_workers(queues: list[str]) -> list[Worker]:
    """Every worker row (alive or not, see Worker.is_alive) that consumes any of these queues, last seen first."""
    wanted = set(queues)
    return sorted((w for w in Worker.objects.all() if wanted & set(w.queues)), key=lambda w: w.seen_at, reverse=True)
