"""The Celery workers, as each last said of itself: which queues it consumes and what it is running.

A job that waits in its queue reads these rows to say why (project/jobs.py JobRun.waiting): no worker
consumes that queue, or its workers are all busy, or one is free and has not taken the job. Celery's own
ways to ask (remote control, events) answer only after a timeout, or need every worker started with events on.
"""
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Worker(models.Model):
    name = models.CharField(max_length=255, unique=True, help_text="Celery's node name (`-n`), e.g. gpu-train@host-3.")
    queues = models.JSONField(default=list, help_text="The queues it consumes (`-Q`).")
    concurrency = models.PositiveSmallIntegerField(default=1, help_text="Tasks it runs at once (`-c`).")
    pid = models.PositiveIntegerField(default=0, help_text="Its main process on its machine.")
    tasks = models.JSONField(
        default=list, help_text="The tasks it was running when last seen: each one's name, args and start (ISO time).",
    )
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(
        default=timezone.now, db_index=True, help_text="Written every WORKER_BEAT_SECONDS while the worker runs; the "
        "row goes when it stops cleanly. A row not written for 3 beats is a worker that stopped without saying.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_alive(self) -> bool:
        return self.seen_at >= alive_since()

    @property
    def is_free(self) -> bool:
        return len(self.tasks) < self.concurrency


def alive_since():
    """A worker seen after this is running: three beats, so one slow write (a busy database) is not a death."""
    return timezone.now() - timedelta(seconds=3 * settings.WORKER_BEAT_SECONDS)
