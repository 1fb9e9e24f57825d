"""Writes of the inference app: the model registry and inference runs (create, cancel)."""
from __future__ import annotations

import json
from collections.abc import Sequence

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import EmptyResultSet, ValidationError
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Max, QuerySet

from inference.architectures import ARCHITECTURES, COCO_CLASSES, WeightsError, coco_class_for, weights_metadata
from inference.models import (
    BoxOutcome, InferenceChunk, InferenceRun, InferenceScope, ModelSource, ModelVersion, Prediction, RerankRun,
    version_being_deleted,
)
from project.row_locks import key_share_lock
from project.jobs import ACTIVE_STATUSES, JobStatus, job_cancel_request, job_queue_on_commit
from review.models import Image, LabelClass, Project, ReviewStatus
from review.project_deletion import project_deletion_guard
from review.services import label_class_create, project_update
from webhooks.models import Event
from webhooks.services import webhook_event_send

CHUNK_TASK = "inference.tasks.inference_chunk_execute"
OUTCOMES_TASK = "inference.tasks.box_outcomes_refresh"
RERANK_TASK = "inference.tasks.rerank_run_execute"
# The architecture recorded for imported predictions: no weights, nothing to run.
EXTERNAL_ARCHITECTURE = "external"


# --- Model versions -------------------------------------------------------------------------------

@transaction.atomic
def model_version_create(*, project: Project, architecture: str | None, weights: bytes,
                         class_names: Sequence[str] | None, user: AbstractBaseUser | None,
                         source: str = ModelSource.UPLOADED, parent: ModelVersion | None = None,
                         metrics: dict | None = None, activate: bool = False, note: str = "") -> ModelVersion:
    """Register weights as the project's next version; they are loaded strictly first, so a bad file changes nothing.

    `architecture` defaults to the one the weights' metadata names, else the one their tensors fit;
    `class_names` to the names in the metadata. Names the project lacks become new label classes.
    """
    # Imported here, not at the top: it loads torch (~700 MB, seconds), which a web process needs only
    # for the rare request that uploads weights; its every other page runs without it.
    from inference import detector

    if not architecture:
        try:
            architecture = detector.weights_architecture(weights)
        except WeightsError as exc:
            raise ValidationError({"weights": str(exc)}) from None
    if architecture not in ARCHITECTURES:
        raise ValidationError({"architecture": f"Unknown architecture {architecture!r}; choose one of "
                                               f"{', '.join(ARCHITECTURES)}."})
    if class_names is None:
        try:
            class_names = json.loads(weights_metadata(weights).get("class_names", "null")) or []
        except (ValueError, WeightsError):
            class_names = []
        if not class_names:
            try:  # unreadable weights are the real fault; missing names only matter for readable ones
                state = detector.state_dict_from_bytes(weights)
            except WeightsError as exc:
                raise ValidationError({"weights": str(exc)}) from None
            counts = {count for fit, count in detector.weights_fits(state) if fit == architecture}
            raise ValidationError({"class_names": "The weights do not name their classes; give class_names, "
                                                  "in class-id order" + (f" ({counts.pop()} of them)." if counts
                                                                         else ".")})
    class_names = [str(name).strip() for name in class_names]
    if not class_names or any(not name for name in class_names) or len(set(class_names)) != len(class_names):
        raise ValidationError({"class_names": "Give the model's class names, in class-id order, each once."})
    try:
        state, image_size = detector.weights_checked(weights, architecture=architecture, num_classes=len(class_names))
    except WeightsError as exc:
        raise ValidationError({"weights": str(exc)}) from None
    existing = set(LabelClass.objects.filter(project=project).values_list("name", flat=True))
    for name in class_names:
        if name not in existing:
            label_class_create(project=project, name=name)
    version = ModelVersion(project=project, number=_next_number(project), architecture=architecture,
                           class_names=class_names, source=source, parent=parent, metrics=metrics or {},
                           created_by=user, note=note)
    # Stored re-serialised as safetensors: whatever the upload was, what we keep cannot run code.
    stored = detector.state_to_bytes(state, architecture=architecture, class_names=class_names, image_size=image_size)
    version.weights.save("weights.safetensors", ContentFile(stored), save=False)
    version.save()
    if activate:
        model_version_activate(version=version)
    return version


def model_version_from_coco(*, project: Project, architecture: str, user: AbstractBaseUser | None,
                            activate: bool = False, classes: dict[str, str] | None = None) -> ModelVersion:
    """The project's next version from torchvision's COCO weights (settings.COCO_WEIGHTS_DIR): a first
    model that already finds the classes COCO knows (person, car, bicycle, ...) and whose backbone has
    seen COCO's 118,000 images, a far better start for a fine-tune than random weights.

    Each project class is the COCO class of its name (any case) unless `classes` maps its name to
    another ("pedestrian": "person") or to "" (none); a class without one starts fresh and is found
    only once the model is fine-tuned."""
    from inference import detector  # torch: see model_version_create

    if architecture not in ARCHITECTURES:
        raise ValidationError({"architecture": f"Unknown architecture {architecture!r}; choose one of "
                                               f"{', '.join(ARCHITECTURES)}."})
    path = settings.COCO_WEIGHTS_DIR / ARCHITECTURES[architecture].coco_file
    if not path.is_file():
        raise ValidationError({"architecture": f"torchvision's COCO weights for {architecture} are not on this "
                                               f"server: put {path.name} in {path.parent} (docs/training.md)."})
    class_names = list(LabelClass.objects.filter(project=project).order_by("index").values_list("name", flat=True))
    if not class_names:
        raise ValidationError("This project has no label classes yet: add the classes it looks for first.")
    coco_for = _coco_classes_of(class_names, classes or {})
    try:
        state = detector.coco_state_for_classes(path.read_bytes(), architecture=architecture, class_names=class_names,
                                                coco_names=[coco_for[name] for name in class_names])
    except WeightsError as exc:
        raise ValidationError({"architecture": str(exc)}) from None
    weights = detector.state_to_bytes(state, architecture=architecture, class_names=class_names,
                                      image_size=ARCHITECTURES[architecture].image_size)
    known = [name if coco_for[name] == name.lower() else f"{name} (as {coco_for[name]})"
             for name in class_names if coco_for[name]]
    note = (f"torchvision's COCO weights; it knows {', '.join(known)}" if known else
            "torchvision's COCO weights; it knows none of this project's classes yet")
    new = [name for name in class_names if not coco_for[name]]
    if known and new:
        note += f", not {', '.join(new)}"
    return model_version_create(project=project, architecture=architecture, weights=weights, class_names=class_names,
                                user=user, source=ModelSource.COCO, activate=activate,
                                note=note + " (fine-tune to learn them)." if new else note + ".")


def _coco_classes_of(class_names: list[str], chosen: dict[str, str]) -> dict[str, str]:
    """Each project class's COCO class ("" for none): the one of its name, or as `chosen` says."""
    if unknown := [name for name in chosen if name not in class_names]:
        raise ValidationError({"classes": f"Not classes of this project: {', '.join(map(repr, unknown[:10]))}."})
    if wrong := [coco for coco in chosen.values() if coco and str(coco).lower() not in COCO_CLASSES]:
        raise ValidationError({"classes": f"Not COCO classes: {', '.join(map(repr, wrong[:10]))}; COCO's are "
                                          f"{', '.join(COCO_CLASSES)}."})
    coco_for = {name: str(chosen[name]).lower() if name in chosen else coco_class_for(name) for name in class_names}
    taken: dict[str, str] = {}
    for name, coco in coco_for.items():
        if coco and coco in taken:
            raise ValidationError({"classes": f"COCO's {coco!r} is given to both {taken[coco]!r} and {name!r}: "
                                              "give it to one of them."})
        taken[coco] = name
    return coco_for


def _next_number(project: Project) -> int:
    Project.objects.select_for_update().filter(pk=project.pk).first()  # serialise version numbering
    return (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1


@transaction.atomic
def model_version_external_create(*, project: Project, name: str, class_names: Sequence[str],
                                  user: AbstractBaseUser | None) -> ModelVersion:
    """Register a model trained elsewhere that brings only its predictions (imported); it has no weights."""
    name = name.strip() or "external model"
    version = ModelVersion(project=project, number=_next_number(project), architecture=EXTERNAL_ARCHITECTURE,
                           class_names=list(class_names), source=ModelSource.EXTERNAL, created_by=user,
                           note=name[:255])
    version.save()
    return version


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the project's active model (promote or roll back)."""
    if not version.weights:
        raise ValidationError("This version has no weights (its predictions were imported); it cannot be active.")
    ModelVersion.objects.select_for_update().filter(pk=version.pk).first()  # a deletion starting now waits, or we do
    if version_being_deleted(version.pk):
        raise ValidationError(f"{version} is being deleted; it cannot be made active.")
    ModelVersion.objects.filter(project_id=version.project_id, is_active=True).exclude(pk=version.pk).update(
        is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    webhook_event_send(project_id=version.project_id, event=Event.MODEL_VERSION_ACTIVATED, data=version.webhook_data)
    return version


def model_version_rollback(*, project: Project) -> ModelVersion:
    """Go back to the version the active one was trained from (its parent)."""
    active = active_model_version(project)
    if active is None:
        raise ValidationError("This project has no active model to roll back.")
    if active.parent is None:
        raise ValidationError(f"{active} has no earlier version to roll back to; promote a version by hand instead.")
    return model_version_activate(version=active.parent)


def box_outcomes_refresh_later(*, image_ids: Sequence[int]) -> None:
    """Judge the models again on these images' boxes (error review), in a worker once this commits.

    A saved review answers without waiting for it: with an active model, recomputing the outcomes
    and suspects took half of a save's time (bench/web.py), and it needs torch, which the web
    processes then never load.
    """
    image_ids = list(image_ids)
    transaction.on_commit(lambda: current_app.send_task(OUTCOMES_TASK, args=[image_ids]))


def class_names_follow_rename(sender, *, project_id: int, old_name: str, new_name: str, **kwargs) -> None:
    """Receiver of review.signals.label_class_renamed: the project's models know the class by its new name.

    Inference, error review and training map a model's class ids to the project's classes by name, so
    without this a renamed class would silently drop out of every prediction of the models made before.
    A name the model kept for a class deleted since is marked so, so that it cannot take the new name too.
    """
    def renamed(per_class: dict) -> dict:  # a version's scores per class, under the names it shows
        return {new_name if name == old_name else name: value for name, value in per_class.items()}

    # NO KEY: inference batches hold their version FOR KEY SHARE (project/row_locks.py); this need not wait for them.
    for version in ModelVersion.objects.select_for_update(no_key=True).filter(project_id=project_id).order_by("pk"):
        if old_name not in version.class_names:
            continue
        version.class_names = [
            new_name if name == old_name else f"{name} (deleted)" if name == new_name else name
            for name in version.class_names]
        metrics = version.metrics
        if isinstance(metrics.get("per_class"), dict):
            metrics["per_class"] = renamed(metrics["per_class"])
        if isinstance(metrics.get("operating_point"), dict) and isinstance(metrics["operating_point"].get("per_class"), dict):
            metrics["operating_point"]["per_class"] = renamed(metrics["operating_point"]["per_class"])
        version.save(update_fields=["class_names", "metrics"])


def predictions_of_images_delete(sender, *, images: QuerySet[Image], **kwargs) -> None:
    """Receiver of review.signals.images_deleting: the images' outcomes and predictions, one statement each.

    The outcomes (nothing points at them) go by Django's own single DELETE; the predictions in SQL,
    as Django would first load each one to cascade to the outcomes (inference/execution.py does the
    same for a repeated chunk).
    """
    BoxOutcome.objects.filter(image__in=images).delete()
    try:
        subquery, params = images.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # `pk__in=[]`: no images, nothing to delete
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Prediction._meta.db_table} WHERE image_id IN ({subquery})", params)


@transaction.atomic
def project_settings_update(*, project: Project, user: AbstractBaseUser | None = None,
                            **changes) -> RerankRun | None:
    """review.services.project_update, and a whole-project rerank when the review threshold changed (returned).

    The queue's ranking and error review's outcomes depend on Project.score_threshold, so a worker
    works them out again once this commits (inference/rerank.py); until then they show the old one.
    """
    previous = project.score_threshold
    project_update(project=project, **changes)
    return rerank_run_create(project=project, user=user) if project.score_threshold != previous else None


@transaction.atomic
def rerank_run_create(*, project: Project, user: AbstractBaseUser | None = None) -> RerankRun:
    """Rank the project's queue and judge its reviewed images again at its threshold, in a worker.

    A rerank of the same project still going is cancelled: this one redoes all of its work, at the
    threshold that counts now.
    """
    project_deletion_guard(project)
    for older in RerankRun.objects.filter(project=project, status__in=ACTIVE_STATUSES):
        job_cancel_request(older)
    run = RerankRun.objects.create(project=project, score_threshold=project.score_threshold, requested_by=user)
    job_queue_on_commit(run, RERANK_TASK)
    return run


def rerank_run_cancel(*, run: RerankRun) -> RerankRun:
    """Stop a rerank between chunks; what it ranked keeps the new threshold, the rest the old, until ranked again."""
    return job_cancel_request(run)


def active_model_version(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, is_active=True).first()


def active_model_version_id(project_id: int) -> int | None:
    """The active version's id alone: a save needs no more (a whole row costs a third more to read)."""
    return ModelVersion.objects.filter(project_id=project_id, is_active=True).values_list("pk", flat=True).first()


# --- Inference runs -------------------------------------------------------------------------------

def _scope_image_ids(project: Project, scope: str, image_ids: Sequence[int] | None) -> list[int]:
    images = Image.objects.filter(project=project)
    if scope == InferenceScope.ALL:
        pass
    elif scope == InferenceScope.UNREVIEWED:
        images = images.filter(status=ReviewStatus.UNREVIEWED)
    elif scope in (InferenceScope.IDS, InferenceScope.NEW_UPLOADS):
        wanted = {int(i) for i in image_ids or []}
        if not wanted:
            raise ValidationError({"image_ids": "Name at least one image."})
        found = set(images.filter(pk__in=wanted).values_list("pk", flat=True))
        if missing := sorted(wanted - found):
            raise ValidationError({"image_ids": f"Not images of this project: {missing[:20]}"})
        images = images.filter(pk__in=found)
    else:
        raise ValidationError({"scope": f"Unknown scope {scope!r}; choose one of {', '.join(InferenceScope.values)}."})
    return list(images.order_by("id").values_list("pk", flat=True))


@transaction.atomic
def inference_run_create(*, project: Project, user: AbstractBaseUser | None, scope: str = InferenceScope.UNREVIEWED,
                         model_version: ModelVersion | None = None, image_ids: Sequence[int] | None = None,
                         chunk_size: int | None = None) -> InferenceRun:
    """Check everything, then create the run and its chunks and queue one task per chunk after commit.

    `chunk_size`: images per chunk task; INFERENCE_CHUNK_SIZE when not given.
    """
    project_deletion_guard(project)
    version = model_version or active_model_version(project)
    if version is None:
        raise ValidationError({"model_version": "This project has no active model; upload or train one first."})
    if version.project_id != project.pk:
        raise ValidationError({"model_version": "That model version belongs to another project."})
    if version.architecture not in ARCHITECTURES:
        raise ValidationError({"model_version": f"Unknown architecture {version.architecture!r}."})
    if not version.weights:
        raise ValidationError({"model_version": "This version has no weights to run."})
    key_share_lock(ModelVersion.objects.filter(pk=version.pk))  # a deletion starting now waits for this run, or we do
    if version_being_deleted(version.pk):
        raise ValidationError({"model_version": f"{version} is being deleted."})
    chunk_size = settings.INFERENCE_CHUNK_SIZE if chunk_size is None else chunk_size
    if chunk_size < 1:
        raise ValidationError({"chunk_size": "Chunk size must be at least 1."})
    ids = _scope_image_ids(project, scope, image_ids)
    run = InferenceRun.objects.create(
        project=project, model_version=version, scope=scope, image_ids=ids, chunk_size=chunk_size,
        progress_total=len(ids), requested_by=user,
    )
    chunks = InferenceChunk.objects.bulk_create([
        InferenceChunk(run=run, number=number, image_ids=ids[start:start + chunk_size])
        for number, start in enumerate(range(0, len(ids), chunk_size))
    ])
    run.chunks_total = len(chunks)
    if not chunks:
        run.status, run.finished_at = JobStatus.SUCCEEDED, run.created_at
    run.save(update_fields=["chunks_total", "status", "finished_at"])
    chunk_ids = [chunk.pk for chunk in chunks]
    transaction.on_commit(lambda: _queue_chunks(run.pk, chunk_ids))
    return run


def _queue_chunks(run_id: int, chunk_ids: list[int]) -> None:
    task_ids = [current_app.send_task(CHUNK_TASK, args=[chunk_id]).id for chunk_id in chunk_ids]
    if task_ids:
        InferenceRun.objects.filter(pk=run_id).update(celery_task_id=task_ids[0])


def inference_run_cancel(*, run: InferenceRun) -> InferenceRun:
    """Stop a run: queued chunks are skipped, a running chunk stops after its current batch."""
    return job_cancel_request(run)


def inference_run_after_upload(*, project: Project, image_ids: Sequence[int],
                               user: AbstractBaseUser | None) -> InferenceRun | None:
    """Predict freshly uploaded images when the project wants it and has an active model; else None."""
    if not image_ids or not project.infer_on_upload or active_model_version(project) is None:
        return None
    return inference_run_create(project=project, user=user, scope=InferenceScope.NEW_UPLOADS, image_ids=image_ids)
