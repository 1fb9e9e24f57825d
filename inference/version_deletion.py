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

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection, transaction

from inference.models import BoxOutcome, ModelVersion, ModelVersionDeletion, Prediction
from project.chunked_deletion import chunked_deletion_execute, jobs_cancel
from project.jobs import ACTIVE_STATUSES, job_cancel_request, job_queue_on_commit
from review.project_deletion import project_deletion_guard

CHUNK = 20_000  # predictions: about 500 images' worth, a fraction of a second's transaction
TASK = "inference.tasks.model_version_deletion_execute"


@transaction.atomic
def model_version_deletion_start(*, version: ModelVersion,
                                 user: AbstractBaseUser | None = None) -> ModelVersionDeletion:
    """Stop the version's jobs and queue its deletion; ValidationError for the active version or a second delete."""
    project_deletion_guard(version.project)
    # Held until this commits: a promotion of this version waits, then finds it being deleted.
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.is_active:
        raise ValidationError(f"{version} is the active model: make another version active first.")
    if ModelVersionDeletion.objects.filter(model_version=version, status__in=ACTIVE_STATUSES).exists():
        raise ValidationError(f"{version} is already being deleted.")
    jobs_cancel(model_version=version)
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
    return chunked_deletion_execute(
        ModelVersionDeletion, run_id=run_id,
        remaining=lambda run: Prediction.objects.filter(model_version_id=run.model_version_id).count(),
        chunk_delete=_chunk_delete, last_step=_version_delete,
        kept="the version is kept with the predictions not yet deleted.", progress_interval=progress_interval)


@transaction.atomic
def _chunk_delete(run: ModelVersionDeletion) -> int:
    """The version's CHUNK lowest-numbered predictions and the outcomes that judged them; how many there were."""
    version_id = run.model_version_id
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


def _version_delete(run: ModelVersionDeletion) -> None:
    """The version with what is left of it, and its weights once that commits (chunked_deletion's last step)."""
    version = ModelVersion.objects.select_for_update().filter(pk=run.model_version_id).first()
    if version is not None:
        weights = version.weights.name
        version.delete()
        if weights:
            transaction.on_commit(lambda: default_storage.delete(weights))
