"""Reads of the worker rows: what the workers of a queue are doing, as a job or a page says it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workers.models import Worker

# The queues a project's work goes to, as its page lists them (CELERY_TASK_ROUTES), and what each does.
PROJECT_QUEUES = {"inference": "predicting", "training": "fine-tuning", "default": "imports, exports and the rest"}


@dataclass(frozen=True)
class QueueWorkers:
    queues: tuple[str, ...]
    running: int                  # workers consuming any of the queues, alive (Worker.is_alive)
    free: int                     # of those, with a task slot free at their last beat
    last_seen: datetime | None    # the newest beat of any worker of the queues, alive or stopped
    label: str = ""               # what the queue does, for a page

    @property
    def busy(self) -> bool:
        return self.running > 0 and self.free == 0

    @property
    def summary(self) -> str:
        """A few words for a page: "1 free", "2 running, 1 free", "1 busy", "none running"."""
        if not self.running:
            return "none running"
        if self.busy:
            return f"{self.running} busy"
        return f"{self.free} free" if self.free == self.running else f"{self.running} running, {self.free} free"


def queue_workers(queues) -> QueueWorkers:
    """What the workers that consume any of `queues` said at their last beats."""
    return _summary(tuple(sorted(set(queues))), list(Worker.objects.all()))


def project_queue_workers() -> list[QueueWorkers]:
    """Each of a project's queues and its workers, in one read of the (small) table."""
    workers = list(Worker.objects.all())
    return [_summary((queue,), workers, label) for queue, label in PROJECT_QUEUES.items()]


def _summary(queues: tuple[str, ...], workers: list[Worker], label: str = "") -> QueueWorkers:
    mine = [w for w in workers if set(queues) & set(w.queues)]
    alive = [w for w in mine if w.is_alive]
    return QueueWorkers(queues=queues, running=len(alive), free=sum(w.is_free for w in alive),
                        last_seen=max((w.seen_at for w in mine), default=None), label=label)
