"""Deleting a model version in a worker: its predictions a chunk at a time, then the version and its weights.

Each fine-tune that is promoted predicts the queue again, so old versions' predictions pile up
(40 boxes an image, every version); a manager deletes a version that is no longer wanted to take
them out of the database. Hundreds of thousands of rows are more than a web request should delete,
so the request only starts a ModelVersionDeletion: from then on the version cannot be made active,
predicted with or exported (`version_being_deleted`), and its running inference runs and exports
are asked to stop. A `default`-queue worker deletes its predictions CHUNK at a time, each chunk with
the outcomes that judged them, one transaction each; then the version row with what is left
(outcomes of missed boxes, suspected errors, its inference runs) and, once that commits, its weights.

Progress is predictions deleted of all. Cancelled (between chunks) or failed, the version stays with
the predictions not yet deleted (its error review then counts only those: predict again to restore
them). The active version is refused: promote another one first.
"""
from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import F

from inference.models import BoxOutcome, ModelVersion, ModelVersionDeletion, Prediction
from project.jobs import (
    ACTIVE_STATUSES, JobProgress, JobStatus, job_attempt_start, job_cancel_request, job_finish, job_heartbeat,
    job_queue_on_commit,
)
from project.sweeper import job_models

logger = logging.getLogger(__name__)

CHUNK = 20_000  # predictions: about 500 images' worth, a fraction of a second's transaction
TASK = "inference.tasks.model_version_deletion_execute"


@transaction.atomic
def model_version_deletion_start(*, version: ModelVersion,
                                 user: AbstractBaseUser | None = None) -> ModelVersionDeletion:
    """Stop the version's jobs and queue its deletion; ValidationError for the active version or a second delete."""
    # Held until this commits: a promotion of this version waits, then finds it being deleted.
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.is_active:
        raise ValidationError(f"{version} is the active model: make another version active first.")
    if ModelVersionDeletion.objects.filter(model_version=version, status__in=ACTIVE_STATUSES).exists():
        raise ValidationError(f"{version} is already being deleted.")
    for model in job_models():
        if any(field.name == "model_version" for field in model._meta.fields) and model is not ModelVersionDeletion:
            for run in model.objects.filter(model_version=version, status__in=ACTIVE_STATUSES):
                job_cancel_request(run)
    deletion = ModelVersionDeletion.objects.create(
        project_id=version.project_id, model_version=version, version_number=version.number, requested_by=user,
        progress_total=Prediction.objects.filter(model_version=version).count())
    job_queue_on_commit(deletion, TASK)
    return deletion


def model_version_deletion_cancel(*, deletion: ModelVersionDeletion) -> ModelVersionDeletion:
    """Stop between chunks; the version stays with the predictions not yet deleted (ValidationError once finished)."""
    return job_cancel_request(deletion)


def model_version_deletion_execute(*, run_id: int, progress_interval: float = 1.0) -> ModelVersionDeletion | None:
    """Delete the version's predictions chunk by chunk, then the version, reporting progress."""
    run = job_attempt_start(ModelVersionDeletion, run_id=run_id)
    if run is None:
        return None
    with job_heartbeat(run):
        return _delete(run, JobProgress(run, interval=progress_interval))


def _delete(run: ModelVersionDeletion, progress: JobProgress) -> ModelVersionDeletion:
    # A resumed run counts what an earlier attempt deleted as done.
    remaining = Prediction.objects.filter(model_version_id=run.model_version_id).count()
    ModelVersionDeletion.objects.filter(pk=run.pk).update(progress_total=F("progress_done") + remaining)
    try:
        while True:
            if progress.cancelled():
                return _finish(run, progress, JobStatus.CANCELLED)
            deleted = _chunk_delete(run.model_version_id)
            if not deleted:
                break
            progress.add(deleted)
        progress.flush()
        if not _version_delete(run):
            return _finish(run, progress, JobStatus.CANCELLED)
    except Exception as exc:  # said now, not left "running" until the sweeper looks
        logger.exception("model version deletion %s failed", run.pk)
        return _finish(run, progress, JobStatus.FAILED,
                       error=f"The deletion failed ({type(exc).__name__}: {exc}); the version is kept with the "
                       "predictions not yet deleted. Delete it again.")
    run.refresh_from_db()
    return run


@transaction.atomic
def _chunk_delete(version_id: int | None) -> int:
    """The version's CHUNK lowest-numbered predictions and the outcomes that judged them; how many there were."""
    ids = list(Prediction.objects.filter(model_version_id=version_id).order_by("pk")
               .values_list("pk", flat=True)[:CHUNK])
    if not ids:
        return 0
    # As a range, not an IN list of 20,000 ids: every prediction of the version in it is one of `ids`.
    first, last = ids[0], ids[-1]
    BoxOutcome.objects.filter(model_version_id=version_id, prediction_id__gte=first, prediction_id__lte=last).delete()
    with connection.cursor() as cursor:  # in SQL: Django would load each row to look for outcomes, gone already
        cursor.execute(f"DELETE FROM {Prediction._meta.db_table} WHERE model_version_id = %s AND id >= %s AND id <= %s",
                       [version_id, first, last])
        return cursor.rowcount


@transaction.atomic
def _version_delete(run: ModelVersionDeletion) -> bool:
    """The version with what is left of it, unless a cancel came first; marks the run succeeded with it.

    The run's row is held while the version goes, so a cancel either comes before (and the version
    stays) or waits and finds the run finished.
    """
    locked = ModelVersionDeletion.objects.select_for_update().get(pk=run.pk)
    if locked.cancel_requested:
        return False
    version = ModelVersion.objects.select_for_update().filter(pk=run.model_version_id).first()
    if version is not None:
        weights = version.weights.name
        version.delete()
        if weights:
            transaction.on_commit(lambda: default_storage.delete(weights))
    job_finish(locked, status=JobStatus.SUCCEEDED)
    return True


def _finish(run: ModelVersionDeletion, progress: JobProgress, status: str, error: str = "") -> ModelVersionDeletion:
    progress.flush()
    job_finish(run, status=status, error=error)
    run.refresh_from_db()
    return run
