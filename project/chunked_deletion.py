"""What every background deletion shares: delete a chunk at a time until nothing is left, then the last step.

A project (review/project_deletion.py) and a model version (inference/version_deletion.py) hold
more rows than a web request should delete, so a worker deletes them: each chunk in its own
transaction, progress after each, cancel between them; then the row itself with what is left, in
one transaction that holds the run's row, so a cancel either comes first (and the object stays,
with what was not yet deleted) or waits and finds the run finished. A failure says so at once and
keeps the object; a resumed attempt (a killed worker) simply deletes what is left.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.db.models import F

from project.jobs import (
    ACTIVE_STATUSES, JobProgress, JobStatus, Run, job_attempt_start, job_cancel_request, job_end, job_finish,
    job_heartbeat,
)
from project.sweeper import job_models

logger = logging.getLogger(__name__)


def jobs_cancel(**where) -> None:
    """Ask every running or queued job whose fields match `where` (say, project=...) to stop: what it works on goes."""
    for model in job_models():
        if set(where) <= {field.name for field in model._meta.fields}:
            for run in model.objects.filter(status__in=ACTIVE_STATUSES, **where):
                job_cancel_request(run)


def chunked_deletion_execute(model: type[Run], *, run_id: int, remaining: Callable[[Run], int],
                             chunk_delete: Callable[[Run], int], last_step: Callable[[Run], None], kept: str,
                             progress_interval: float = 1.0) -> Run | None:
    """Run one attempt of a deletion job; None when there is nothing left to do.

    `remaining(run)`: units still to delete; `chunk_delete(run)`: delete one chunk in its own
    transaction and return its units (0 when none are left); `last_step(run)`: delete the object
    itself, inside the final transaction; `kept`: what a failure leaves, said to the user.
    """
    run = job_attempt_start(model, run_id=run_id)
    if run is None:
        return None
    with job_heartbeat(run):
        progress = JobProgress(run, interval=progress_interval)
        # A resumed run counts what an earlier attempt deleted as done; units added meanwhile join the total.
        model.objects.filter(pk=run.pk).update(progress_total=F("progress_done") + remaining(run))
        try:
            while not progress.cancelled():
                if not (deleted := chunk_delete(run)):
                    progress.flush()
                    if _last_step(model, run, last_step):
                        run.refresh_from_db()
                        return run
                    break
                progress.add(deleted)
            return job_end(run, progress, JobStatus.CANCELLED)
        except Exception as exc:  # said now, not left "running" until the sweeper looks
            logger.exception("%s failed", run)
            return job_end(run, progress, JobStatus.FAILED,
                           error=f"The deletion failed ({type(exc).__name__}: {exc}); {kept} Delete it again.")


@transaction.atomic
def _last_step(model: type[Run], run: Run, last_step: Callable[[Run], None]) -> bool:
    """The object itself, with the run's row held, unless a cancel came first; marks the run succeeded with it."""
    locked = model.objects.select_for_update().get(pk=run.pk)
    if locked.cancel_requested:
        return False
    last_step(locked)
    job_finish(locked, status=JobStatus.SUCCEEDED)
    return True
