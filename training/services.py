"""Writes of the training app: frozen snapshots, training runs (start, cancel), the auto-retrain rule."""
from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count

from inference.architectures import ARCHITECTURES, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, machine_default_architecture
from inference.services import active_model_version
from project.jobs import ACTIVE_STATUSES, job_cancel_request, job_queue_on_commit
from review.models import REVIEWED_STATUSES, Annotation, Image, LabelClass, Project, Split
from review.project_deletion import project_deletion_guard
from training.models import DatasetSnapshot, TrainingRun
from training.config import MAX_EPOCHS, default_config, steps_per_epoch

TRAINING_TASK = "training.tasks.training_run_execute"
MIN_TRAIN_IMAGES = 4
MIN_HOLDOUT_IMAGES = 1


def snapshot_coco(project: Project) -> dict:
    """The project's reviewed labels as COCO JSON, in a stable order: same labels, same bytes."""
    classes = list(LabelClass.objects.filter(project=project).order_by("index", "id"))
    category_of = {c.pk: position + 1 for position, c in enumerate(classes)}
    images = list(Image.objects.filter(project=project, status__in=REVIEWED_STATUSES).order_by("id")
                  .values("id", "file", "original_name", "width", "height", "split"))
    annotations = (Annotation.objects.filter(image__in=[i["id"] for i in images]).order_by("image_id", "id")
                   .values_list("image_id", "label_class_id", "x", "y", "w", "h"))
    return {
        "info": {"description": f"Reviewed labels of project {project.pk}"},
        # "index": the class's for life (LabelClass.index), so a run finds a class renamed since by it
        "categories": [{"id": category_of[c.pk], "name": c.name, "index": c.index} for c in classes],
        "images": [{"id": i["id"], "file_name": i["file"], "original_name": i["original_name"],
                    "width": i["width"], "height": i["height"], "split": i["split"]} for i in images],
        "annotations": [
            {"id": n + 1, "image_id": image_id, "category_id": category_of[class_id],
             "bbox": [round(x, 3), round(y, 3), round(w, 3), round(h, 3)], "area": round(w * h, 3), "iscrowd": 0}
            for n, (image_id, class_id, x, y, w, h) in enumerate(annotations)
        ],
    }


def snapshot_freeze(*, project: Project, user: AbstractBaseUser | None) -> DatasetSnapshot:
    """Freeze the reviewed labels into storage; unchanged labels give back the existing snapshot."""
    coco = snapshot_coco(project)
    content = json.dumps(coco, sort_keys=True, separators=(",", ":")).encode()
    content_hash = hashlib.sha256(content).hexdigest()
    existing = DatasetSnapshot.objects.filter(project=project, content_hash=content_hash).first()
    if existing:
        return existing
    snapshot = DatasetSnapshot(
        project=project, content_hash=content_hash, created_by=user,
        train_image_ids=[i["id"] for i in coco["images"] if i["split"] == Split.TRAIN],
        holdout_image_ids=[i["id"] for i in coco["images"] if i["split"] == Split.HOLDOUT],
        class_names=[c["name"] for c in coco["categories"]],
        image_count=len(coco["images"]), annotation_count=len(coco["annotations"]),
    )
    snapshot.file.save("snapshot.json", ContentFile(content), save=False)
    try:
        with transaction.atomic():
            snapshot.save()
    except IntegrityError:  # frozen concurrently with the same labels
        snapshot.file.delete(save=False)
        return DatasetSnapshot.objects.get(project=project, content_hash=content_hash)
    return snapshot


def training_run_start(*, project: Project, user: AbstractBaseUser | None, params: dict | None = None) -> TrainingRun:
    """Freeze a snapshot and queue a fine-tune of the active model; refuse clearly when it cannot work."""
    params = dict(params or {})
    with transaction.atomic():
        project_deletion_guard(project)  # before a snapshot is frozen; checked again where the run is made
    if not LabelClass.objects.filter(project=project).exists():
        raise ValidationError("This project has no label classes yet; add classes and review some images first.")
    base = active_model_version(project)
    architecture = params.pop("architecture", None) or (
        base.architecture if base else settings.DEFAULT_ARCHITECTURE or machine_default_architecture())
    if architecture not in ARCHITECTURES:
        raise ValidationError({"architecture": f"Unknown architecture {architecture!r}; choose one of "
                                               f"{', '.join(ARCHITECTURES)}."})
    for name in ("epochs", "batch_size", "image_size"):
        if name in params and (not isinstance(params[name], int) or params[name] < 1):
            raise ValidationError({name: f"{name} must be a positive whole number."})
    if params.get("epochs", 0) > MAX_EPOCHS:
        raise ValidationError({"epochs": f"epochs must be at most {MAX_EPOCHS}."})
    if "image_size" in params and not MIN_IMAGE_SIZE <= params["image_size"] <= MAX_IMAGE_SIZE:
        raise ValidationError({"image_size": f"image_size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels."})
    if "learning_rate" in params and not (isinstance(params["learning_rate"], (int, float))
                                          and 0 < params["learning_rate"] < 1):
        raise ValidationError({"learning_rate": "learning_rate must be between 0 and 1."})
    if base and base.architecture != architecture:
        base = None  # another architecture starts from scratch
    if base and "image_size" not in params and (size := _trained_image_size(base)):
        params["image_size"] = size  # a model trained at a smaller input goes on at that size
    # The worker freezes the labels (snapshot_freeze: seconds on a large project); counting them is quick.
    counts = reviewed_images_by_split(project=project)
    training_size_check(training=counts[Split.TRAIN], holdout=counts[Split.HOLDOUT])
    config = default_config(architecture, **params)
    try:
        with transaction.atomic():
            project_deletion_guard(project)
            run = TrainingRun.objects.create(
                project=project, base_version=base, architecture=architecture,
                params=config.as_dict(), requested_by=user,
                progress_total=config.epochs * steps_per_epoch(counts[Split.TRAIN], config.batch_size),
            )
            job_queue_on_commit(run, TRAINING_TASK)
    except IntegrityError:
        raise ValidationError("This project already has a training run in progress; wait for it or cancel it.") from None
    return run


def reviewed_images_by_split(*, project: Project) -> dict[str, int]:
    """The reviewed images a fine-tune started now would train on and be judged on."""
    counts = dict.fromkeys(Split.values, 0)
    for split, count in (Image.objects.filter(project=project, status__in=REVIEWED_STATUSES).order_by()
                         .values_list("split").annotate(n=Count("id"))):
        counts[split] = count
    return counts


def training_size_check(*, training: int, holdout: int) -> None:
    """Refuse a fine-tune with too little to learn from or to judge it on, saying how much more it needs."""
    if training < MIN_TRAIN_IMAGES or holdout < MIN_HOLDOUT_IMAGES:
        raise ValidationError(
            f"Too few reviewed images to fine-tune: {training} for training (need {MIN_TRAIN_IMAGES}) and "
            f"{holdout} held out (need {MIN_HOLDOUT_IMAGES}). Review more images first.")


def _trained_image_size(version) -> int | None:
    run = TrainingRun.objects.filter(result_version=version).only("params").first()
    return run.params.get("image_size") if run else None


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    return job_cancel_request(run)


def training_due(*, project: Project) -> bool:
    """The auto-retrain rule: `retrain_after_reviews` images reviewed since the last run, and none running."""
    threshold = project.retrain_after_reviews
    if not threshold or TrainingRun.objects.filter(project=project, status__in=ACTIVE_STATUSES).exists():
        return False
    last = TrainingRun.objects.filter(project=project).order_by("-created_at").first()
    reviewed = Image.objects.filter(project=project, status__in=REVIEWED_STATUSES)
    if last:
        reviewed = reviewed.filter(reviewed_at__gt=last.created_at)
    return reviewed[:threshold].count() >= threshold  # counts no further than the rule needs


def training_after_review(*, project: Project) -> TrainingRun | None:
    """Start a run when the auto-retrain rule says one is due."""
    if not training_due(project=project):
        return None
    try:
        return training_run_start(project=project, user=None)
    except ValidationError:
        return None  # not enough held-out images yet, or a run just started elsewhere
