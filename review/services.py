"""Writes of the review app: projects, members, classes, images and the human boxes on them."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from review.image_files import ImageRejected, content_hash, normalise_image
from review.models import (
    Annotation, AnnotationSource, Image, LabelClass, Membership, Project, ReviewEvent, ReviewStatus, Role, Split,
)

# A readable, colour-blind-friendly palette; classes cycle through it.
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#808000", "#000075"]


class DuplicateImage(ValidationError):
    """The project already holds an image with the same bytes."""

    def __init__(self, existing: Image) -> None:
        super().__init__(f"This image is already in the project (as {existing.original_name!r}, id {existing.pk}).",
                         code="duplicate")
        self.existing = existing


class StaleImage(Exception):
    """Someone saved this image's boxes after the editor loaded it."""

    def __init__(self, image: Image) -> None:
        super().__init__(f"Image {image.pk} was saved by someone else; reload to see their boxes.")
        self.image = image


# --- Projects, members and classes -------------------------------------------------------------

@transaction.atomic
def project_create(*, name: str, owner: AbstractBaseUser, class_names: Sequence[str] = (),
                   holdout_fraction: float = 0.2) -> Project:
    """Create a project with its first manager and, optionally, its label classes."""
    project = Project(name=name.strip(), holdout_fraction=holdout_fraction)
    project.full_clean()
    project.save()
    Membership.objects.create(project=project, user=owner, role=Role.MANAGER)
    for name in class_names:
        label_class_create(project=project, name=name)
    return project


def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Add a member or change their role."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def label_class_create(*, project: Project, name: str, colour: str | None = None) -> LabelClass:
    """Add a class after the last one. Models map their class ids to classes by name (ModelVersion.class_names)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A label class needs a name."})
    if LabelClass.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": f"A label class named {name!r} already exists in this project."})
    # Lock the project row so two concurrent creations do not pick the same index.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    last = LabelClass.objects.filter(project=project).order_by("-index").values_list("index", flat=True).first()
    index = 0 if last is None else last + 1
    label_class = LabelClass(project=project, name=name, index=index, colour=colour or PALETTE[index % len(PALETTE)])
    label_class.full_clean()
    label_class.save()
    return label_class


# --- Images -------------------------------------------------------------------------------------

def split_for_hash(content_hash_hex: str, holdout_fraction: float) -> str:
    """Deterministic split: the same bytes land in the same split in every project and every run."""
    position = int(content_hash_hex[:8], 16) / 0xFFFFFFFF
    return Split.HOLDOUT if position < holdout_fraction else Split.TRAIN


def image_create(*, project: Project, data: bytes, filename: str) -> Image:
    """Validate, normalise and store one uploaded image. Raises ValidationError; stores nothing then."""
    existing = Image.objects.filter(project=project, content_hash=content_hash(data)).first()
    if existing:
        raise DuplicateImage(existing)
    try:
        normalised = normalise_image(data, max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS)
    except ImageRejected as exc:
        raise ValidationError(f"{_display_name(filename)}: {exc}", code="invalid_image") from None
    image = Image(
        project=project,
        original_name=_display_name(filename),
        width=normalised.width,
        height=normalised.height,
        content_hash=normalised.content_hash,
        split=split_for_hash(normalised.content_hash, project.holdout_fraction),
    )
    image.file.save(f"upload.{normalised.extension}", ContentFile(normalised.content), save=False)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        # A concurrent upload of the same bytes won the race; keep its row, drop our file.
        image.file.delete(save=False)
        raise DuplicateImage(Image.objects.get(project=project, content_hash=normalised.content_hash)) from None
    return image


def _display_name(filename: str) -> str:
    # Only the last path component, and never control characters: it is shown, not used as a path.
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable())[:255] or "image"


# --- Human boxes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoxIn:
    """A box as the editor or the API sends it, in image pixels."""

    label_class_id: int
    x: float
    y: float
    w: float
    h: float
    source_prediction_id: int | None = None


@dataclass(frozen=True)
class BoxShown:
    """A prediction the reviewer was shown; used to count what they accepted, moved, relabeled or deleted."""

    prediction_id: int
    label_class_id: int
    x: float
    y: float
    w: float
    h: float


# Moving a box by less than this (pixels) still counts as accepting it unchanged.
MOVE_TOLERANCE_PX = 0.5


def boxes_validate(*, image: Image, boxes: Iterable[BoxIn]) -> list[BoxIn]:
    """Refuse NaN, non-positive sizes, boxes outside the image and classes of another project."""
    boxes = list(boxes)
    class_ids = set(LabelClass.objects.filter(project_id=image.project_id).values_list("id", flat=True))
    errors = []
    for number, box in enumerate(boxes):
        values = (box.x, box.y, box.w, box.h)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            errors.append(f"box {number}: coordinates must be finite numbers")
        elif box.w <= 0 or box.h <= 0:
            errors.append(f"box {number}: width and height must be positive")
        elif box.x < 0 or box.y < 0 or box.x + box.w > image.width + 0.01 or box.y + box.h > image.height + 0.01:
            errors.append(f"box {number}: lies outside the {image.width}x{image.height} image")
        if box.label_class_id not in class_ids:
            errors.append(f"box {number}: label class {box.label_class_id} is not a class of this project")
    if errors:
        raise ValidationError({"boxes": errors})
    return boxes


def review_counts(*, boxes: Sequence[BoxIn], shown: Sequence[BoxShown]) -> dict[str, int]:
    """Compare the saved boxes with the predictions shown: accepted, moved, relabeled, deleted, added."""
    shown_by_id = {p.prediction_id: p for p in shown}
    counts = {"accepted": 0, "moved": 0, "relabeled": 0, "deleted": 0, "added": 0}
    kept = set()
    for box in boxes:
        prediction = shown_by_id.get(box.source_prediction_id) if box.source_prediction_id else None
        if prediction is None or prediction.prediction_id in kept:
            counts["added"] += 1
            continue
        kept.add(prediction.prediction_id)
        counts[_change(box, prediction)] += 1
    counts["deleted"] = len(shown_by_id) - len(kept)
    return counts


@transaction.atomic
def image_boxes_save(*, image: Image, user: AbstractBaseUser | None, boxes: Iterable[BoxIn], version: int,
                     shown: Sequence[BoxShown] = (), model_version_id: int | None = None,
                     seconds_spent: float = 0.0, source: str | None = None) -> Image:
    """Replace the human boxes of one image and record the review; raises StaleImage if someone saved first."""
    boxes = boxes_validate(image=image, boxes=boxes)
    updated = Image.objects.filter(pk=image.pk, version=version).update(
        version=F("version") + 1, status=ReviewStatus.REVIEWED, reviewed_at=timezone.now(),
        reviewed_by=user,
    )
    if not updated:
        image.refresh_from_db()
        raise StaleImage(image)
    counts = review_counts(boxes=boxes, shown=shown)
    shown_by_id = {p.prediction_id: p for p in shown}
    image.annotations.all().delete()
    now = timezone.now()
    Annotation.objects.bulk_create([
        Annotation(
            image=image, label_class_id=box.label_class_id, x=box.x, y=box.y, w=box.w, h=box.h,
            source=source or _annotation_source(box, shown_by_id), source_prediction_id=box.source_prediction_id,
            author=user, created_at=now, updated_at=now,
        )
        for box in boxes
    ])
    ReviewEvent.objects.create(
        image=image, user=user, model_version_id=model_version_id,
        seconds_spent=max(0.0, float(seconds_spent)), **counts,
    )
    image.refresh_from_db()
    return image


def _change(box: BoxIn, prediction: BoxShown) -> str:
    """What the reviewer did to a prediction they kept: relabeled, moved or accepted."""
    if box.label_class_id != prediction.label_class_id:
        return "relabeled"
    shift = max(abs(box.x - prediction.x), abs(box.y - prediction.y),
                abs(box.w - prediction.w), abs(box.h - prediction.h))
    return "moved" if shift > MOVE_TOLERANCE_PX else "accepted"


def _annotation_source(box: BoxIn, shown_by_id: dict[int, BoxShown]) -> str:
    prediction = shown_by_id.get(box.source_prediction_id) if box.source_prediction_id else None
    if prediction is None:
        return AnnotationSource.DRAWN
    return AnnotationSource.ACCEPTED if _change(box, prediction) == "accepted" else AnnotationSource.EDITED
