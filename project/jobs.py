"""What every background job shares: the run-row fields, starting an attempt, progress and cancel.

InferenceRun and TrainingRun inherit JobRun; their Celery tasks call `job_attempt_start` first and
report through `JobProgress`. Job state lives in these rows, never in a Celery result backend.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from celery import current_app, current_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from workers.selectors import queue_workers

logger = logging.getLogger(__name__)

# Sent once per job, when job_finish writes its final status (kwargs: run). webhooks/ listens.
job_finished = Signal()


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobRun(models.Model):
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True,
        help_text="queued -> running -> succeeded, failed or cancelled.",
    )
    progress_done = models.PositiveIntegerField(default=0, help_text="Units of work finished.")
    progress_total = models.PositiveIntegerField(default=0, help_text="Units of work in the whole run.")
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker started this job; past JOB_MAX_ATTEMPTS it is failed.",
    )
    cancel_requested = models.BooleanField(
        default=False, help_text="Set by a user; the worker stops at its next check and marks the run cancelled.",
    )
    error = models.TextField(blank=True, help_text="Why the run failed, in words a user understands.")
    celery_task_id = models.CharField(max_length=64, blank=True, help_text="Id of the Celery task last queued.")
    held_by_task = models.CharField(
        max_length=64, blank=True, help_text="Id of the Celery message working on the run: another message for it "
        "(one sent again while the first only waited) leaves it alone. Empty while queued.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who started the run; empty for automatic runs.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker; project/sweeper.py resumes or fails a "
        "running job whose worker went quiet.",
    )

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def percent(self) -> float:
        if self.progress_total == 0:
            return 100.0 if self.status == JobStatus.SUCCEEDED else 0.0
        return round(100.0 * min(self.progress_done, self.progress_total) / self.progress_total, 1)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    # The webhook event sent when a job of this kind finishes (webhooks/models.py Event); "" sends none.
    webhook_event = ""
    # Whether whoever started a job of this kind is e-mailed whenever it ends; otherwise only when it fails.
    notify_every_end = False

    def notification_summary(self) -> str:
        """One line for the e-mail to whoever started the job (review/notifications.py)."""
        return f"{self} {self.status}" + (f": {self.error}" if self.error else ".")

    def webhook_data(self) -> dict:
        """What a webhook receiver is told about this job when it finishes; subclasses add their own."""
        return {"id": self.pk, "status": self.status, "error": self.error, "progress_done": self.progress_done,
                "progress_total": self.progress_total, "requested_by": self.requested_by_id,
                "created_at": self.created_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}

    def pending_tasks(self) -> list[tuple[str, list]]:
        """The Celery tasks (name, args) that finish this job when sent again; the stale-run sweeper uses them."""
        raise NotImplementedError

    def queues(self) -> list[str]:
        """The Celery queues this job's remaining tasks go to (CELERY_TASK_ROUTES)."""
        return sorted({current_app.amqp.router.route({}, name)["queue"].name for name, _ in self.pending_tasks()})

    @property
    def waiting(self) -> str:
        """What a job queued for JOB_WAIT_NOTICE_SECONDS or more waits for, said on its row and in the API; "" for
        any other. A deployment that runs no worker for its queue (a GPU machine started without `-Q training`,
        say) otherwise sees only "queued", for ever; the workers' own rows (workers/) tell that from busy ones."""
        if self.status != JobStatus.QUEUED or self.created_at is None:
            return ""
        waited = (timezone.now() - self.created_at).total_seconds()
        if waited < settings.JOB_WAIT_NOTICE_SECONDS:
            return ""
        if not (queues := self.queues()):
            return ""
        return f"waiting {_duration(waited)} for a worker of the {' and '.join(queues)} queue" + \
            ("s" if len(queues) > 1 else "") + ": " + _queue_workers_say(queues)

    def holders_release(self) -> None:
        """Let the next message for this job take it up: the one that held it is gone with its worker (the sweeper)."""
        type(self).objects.filter(pk=self.pk).update(held_by_task="")


Run = TypeVar("Run", bound=JobRun)


def _queue_workers_say(queues: list[str]) -> str:
    """Why no worker of these queues has taken a job: none runs, all are busy, or one free has not taken it.
    Workers are counted, not named: their machines' names are the operators' (the admin's Workers page)."""
    workers = queue_workers(queues)
    if not workers.running:
        last = f" (one was last seen {_duration(_ago(workers.last_seen))} ago)" if workers.last_seen else ""
        return f"none is running{last}; start one with `celery -A project worker -Q {','.join(queues)}`"
    if workers.busy:
        return "its worker is busy with other jobs" if workers.running == 1 else \
            f"its {workers.running} workers are busy with other jobs"
    # Seen free a beat ago: it may have been between two tasks queued before this one, or the message is lost.
    who = "its worker was" if workers.running == 1 else \
        f"{workers.free} of its {workers.running} workers {'was' if workers.free == 1 else 'were'}"
    return (f"{who} free at the last beat and has not taken it; if that lasts, its message may be lost, and it "
            f"is sent again once the job has waited {settings.JOB_STALE_MINUTES} min")


def _ago(moment) -> float:
    return max(0.0, (timezone.now() - moment).total_seconds())


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


@transaction.atomic
def job_attempt_start(model: type[Run], *, run_id: int, max_attempts: int | None = None) -> Run | None:
    """Count one more attempt and mark the run running; None when there is nothing left to do.

    Returns None for a run that is finished or was cancelled before it started, and fails the run
    (returning None) when its workers died JOB_MAX_ATTEMPTS times, instead of retrying it forever.
    """
    max_attempts = max_attempts or settings.JOB_MAX_ATTEMPTS
    run = model.objects.select_for_update().filter(pk=run_id).first()
    if run is None or run.is_finished:
        return None
    holder = message_hold(run.held_by_task, f"{model.__name__} #{run_id}")
    if holder is None:
        return None
    if run.cancel_requested:
        job_finish(run, status=JobStatus.CANCELLED)
        return None
    if run.attempts >= max_attempts:
        job_finish(
            run, status=JobStatus.FAILED,
            error=f"Gave up after {run.attempts} attempts: the worker stopped without finishing each time "
            "(killed, out of memory, or lost). See the worker logs.",
        )
        return None
    run.attempts += 1
    run.status = JobStatus.RUNNING
    run.held_by_task = holder
    run.started_at = run.started_at or timezone.now()
    run.heartbeat_at = timezone.now()
    run.save(update_fields=["attempts", "status", "held_by_task", "started_at", "heartbeat_at"])
    return run


def message_hold(holder: str, what: str) -> str | None:
    """The task id that holds a job (or an inference chunk) once this message takes it; None: leave it alone.

    A job is held by the message that started it. A second message for it (the sweeper sent one again
    while the first was only waiting behind others) then finds it held and does nothing, instead of
    running it twice at once; the holder's own redelivery, after its worker died, takes it up again.
    Nobody holds a queued job, nor one the sweeper released: the first message to come takes it.
    Outside a Celery task (a direct call) the holder stays as it is.
    """
    task = current_task._get_current_object()
    message = (task.request.id or "") if task is not None else ""
    if not message or holder == message:
        return holder
    if holder:
        logger.info("%s is held by task %s; task %s leaves it alone", what, holder, message)
        return None
    return message


def job_queue_on_commit(run: JobRun, task: str) -> None:
    """Send the job's Celery task, with its id, once the caller's transaction commits; remember the task's id."""
    model, run_id = type(run), run.pk

    def send() -> None:
        task_id = current_app.send_task(task, args=[run_id]).id
        model.objects.filter(pk=run_id).update(celery_task_id=task_id)
    transaction.on_commit(send)


def job_finish(run: JobRun, *, status: str, error: str = "", only_from=ACTIVE_STATUSES) -> None:
    """Write a final status once; a run that already finished keeps its first outcome.

    `only_from`: the statuses the run must have in the database (not on `run`, perhaps read earlier).
    """
    now = timezone.now()
    updated = type(run).objects.filter(pk=run.pk, status__in=only_from).update(
        status=status, error=error[:10000], finished_at=now,
    )
    if updated:
        run.status, run.error, run.finished_at = status, error, now
        job_finished.send(sender=type(run), run=run)


def job_end(run: Run, progress: JobProgress, status: str, error: str = "") -> Run:
    """Write the progress still pending, then the final status; returns the run as it is now."""
    progress.flush()
    job_finish(run, status=status, error=error)
    run.refresh_from_db()
    return run


def job_cancel_request(run: Run) -> Run:
    """Ask a run to stop: a queued run is cancelled at once, a running one at its worker's next check.

    Returns the run as it is now; raises ValidationError for a run that already finished: there is
    nothing to cancel.
    """
    # Conditional: a run that finished since it was read is told apart from one still going.
    if not type(run).objects.filter(pk=run.pk, status__in=ACTIVE_STATUSES).update(cancel_requested=True):
        run.refresh_from_db()
        raise ValidationError(f"The run already {run.status}; there is nothing to cancel.")
    # Only a run still queued in the database: one a worker started since it was read stops at its next check.
    job_finish(run, status=JobStatus.CANCELLED, only_from=(JobStatus.QUEUED,))
    run.refresh_from_db()
    return run


@contextmanager
def job_heartbeat(run: JobRun, *, every: float | None = None) -> Iterator[None]:
    """While the block runs, a thread of this worker process marks the run alive every `every` seconds.

    The stale-run sweeper then acts only on a job whose process is gone (or whose message the broker
    lost), never on one that is merely quiet: an hour of evaluation without a progress report is
    not taken for a dead worker and started a second time. A process that hangs instead is ended by
    Celery's time limits, and its heartbeat with it.
    """
    every = every if every is not None else settings.JOB_HEARTBEAT_SECONDS
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    type(run).objects.filter(pk=run.pk, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
                except Exception:  # a busy database: the next beat tries again; the job itself goes on
                    logger.warning("heartbeat of %s #%s failed", type(run).__name__, run.pk, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{type(run).__name__}-{run.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class JobProgress:
    """Report progress and check for cancellation without hammering the database.

    Increments are added with F() so several chunk tasks of one run can report into the same row;
    writes and cancel checks happen at most once per `interval` seconds, plus a final `flush()`.
    """

    def __init__(self, run: JobRun, *, interval: float = 1.0, listener=None) -> None:
        self.model = type(run)
        self.run_id = run.pk
        self.interval = interval
        # For a terminal: listener(done, total) after every add; `total` is set by whoever learns it.
        self.listener = listener
        self.total: int | None = None
        self.done = 0
        self._pending = 0
        self._last_write = time.monotonic()
        self._last_check = 0.0
        self._cancelled = False
        self._extra: dict = {}

    def add(self, done: int, **fields) -> None:
        """Record `done` more units; extra fields (for example loss history) are written with it."""
        self._pending += done
        self.done += done
        self._extra.update(fields)
        if self.listener is not None:
            self.listener(self.done, self.total)
        if time.monotonic() - self._last_write >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self._pending or self._extra:
            self.model.objects.filter(pk=self.run_id).update(
                progress_done=F("progress_done") + self._pending, heartbeat_at=timezone.now(), **self._extra,
            )
        self._pending = 0
        self._extra = {}
        self._last_write = time.monotonic()

    def cancelled(self) -> bool:
        """True once a user asked this run to stop, or deleted it with its project (checked at most once per interval)."""
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._last_check >= self.interval:
            self._last_check = now
            self._cancelled = not self.model.objects.filter(pk=self.run_id, cancel_requested=False).exists()
        return self._cancelled
