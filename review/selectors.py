"""Reads of the review app that need care (annotations, counts, ordering)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from review.models import (
    REPLACED_BOX_FIELDS, REVIEWED_STATUSES, Annotation, Image, LabelClass, Mention, Project, ReviewEvent,
    ReviewStatus, Split, StatusChange, project_being_deleted,
)


def project_list_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    """The user's projects with image counts by review status, in one query."""
    return (
        Project.objects.filter(memberships__user=user)
        .exclude(project_being_deleted())
        .annotate(
            image_count=Count("images", distinct=True),
            unreviewed_count=Count("images", filter=Q(images__status=ReviewStatus.UNREVIEWED), distinct=True),
            reviewed_count=Count("images", filter=~Q(images__status=ReviewStatus.UNREVIEWED), distinct=True),
        )
        .order_by("name", "id")
    )


def work_waiting_for(user: AbstractBaseUser, project_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per project of `project_ids`: the unreviewed images assigned to `user`, the images whose comments name
    them unread, and the images sent back over their review; projects with none are left out. Three queries,
    however many projects: the project list shows them for every project at once."""
    images = Image.objects.filter(project_id__in=project_ids)
    kinds = {
        "assigned": images.filter(assigned_to=user, status=ReviewStatus.UNREVIEWED),
        "mentions": images_mentioning(images, user.pk),
        "sent_back": images_sent_back_to(images, user.pk),
    }
    waiting: dict[int, dict[str, int]] = {}
    for kind, chosen in kinds.items():
        for row in chosen.order_by().values("project_id").annotate(n=Count("id")):
            waiting.setdefault(row["project_id"], dict.fromkeys(kinds, 0))[kind] = row["n"]
    return waiting


def image_list(*, project: Project, status: str | None = None) -> QuerySet[Image]:
    """The queue's default order: most urgent first (uses image_queue_idx)."""
    images = Image.objects.filter(project=project)
    if status:
        images = images.filter(status=status)
    return images.annotate(box_count=Count("annotations")).order_by("-priority", "id")


def images_sent_back_to(images: QuerySet[Image], user_id: int) -> QuerySet[Image]:
    """Those of `images` that a reviewer sent back to the queue over `user_id`'s review, and nobody has saved since.

    "Over their review": the send-back judged the boxes this user saved last (StatusChange.reviewed_by),
    so an image they once saved and someone else saved over before it was sent back is not theirs to fix.
    Send-backs from before StatusChange was recorded are not known.
    """
    last_judged = StatusChange.objects.filter(image=OuterRef("pk")).order_by("-created_at", "-id")
    return (images.filter(status=ReviewStatus.UNREVIEWED, pk__in=StatusChange.objects.filter(
                status=ReviewStatus.UNREVIEWED, reviewed_by_id=user_id).values("image_id"))
            .alias(sent_back_from=Subquery(last_judged.values("reviewed_by_id")[:1]))
            .filter(sent_back_from=user_id))


def image_status_counts(*, project: Project) -> dict[str, int]:
    counts = dict.fromkeys(ReviewStatus.values, 0)
    for row in Image.objects.filter(project=project).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


@dataclass(frozen=True)
class ClassCounts:
    """What a fine-tune has of one class: the human boxes on reviewed images it trains on and is judged on."""

    label_class: LabelClass
    boxes_training: int
    boxes_holdout: int
    images_training: int
    images_holdout: int

    @property
    def judged(self) -> bool:
        """COCO's mAP leaves out a class with no held-out box: a fine-tune worse on it can still be promoted."""
        return self.boxes_holdout > 0


def label_class_counts(*, project: Project) -> list[ClassCounts]:
    """Per class, in the project's order: human boxes and the images holding them on reviewed images, training
    and held out, as the next fine-tune's snapshot will take them. One grouped query."""
    counts: dict[tuple[int, str], dict] = {
        (row["label_class_id"], row["image__split"]): row
        # From the project's images, not its classes: SQLite then walks image_queue_idx, 3x faster on 500,000 boxes
        for row in Annotation.objects.filter(image__project=project, image__status__in=REVIEWED_STATUSES)
        .order_by().values("label_class_id", "image__split")
        .annotate(boxes=Count("id"), images=Count("image_id", distinct=True))}
    empty = {"boxes": 0, "images": 0}
    rows = []
    for label_class in project.label_classes.order_by("index", "id"):
        training = counts.get((label_class.pk, Split.TRAIN), empty)
        holdout = counts.get((label_class.pk, Split.HOLDOUT), empty)
        rows.append(ClassCounts(label_class, training["boxes"], holdout["boxes"], training["images"],
                                holdout["images"]))
    return rows


def corrections_by_model_version(*, project: Project) -> list[dict]:
    """Per model version whose predictions were shown: reviews, corrections per image, share of predictions kept.

    The product's core measure: a model that learned needs fewer corrections per image.
    """
    rows = (ReviewEvent.objects.filter(image__project=project, model_version_id__isnull=False)
            .values("model_version_id")
            .annotate(reviews=Count("id"), accepted=Sum("accepted"), moved=Sum("moved"), relabeled=Sum("relabeled"),
                      deleted=Sum("deleted"), added=Sum("added"), seconds=Sum("seconds_spent"))
            .order_by("model_version_id"))
    result = []
    for row in rows:
        corrections = row["moved"] + row["relabeled"] + row["deleted"] + row["added"]
        shown = row["accepted"] + row["moved"] + row["relabeled"] + row["deleted"]
        result.append({
            "model_version_id": row["model_version_id"], "reviews": row["reviews"],
            "corrections_per_image": corrections / row["reviews"],
            "acceptance_rate": row["accepted"] / shown if shown else None,
            "seconds_per_image": row["seconds"] / row["reviews"],
        })
    return result


def review_drift(*, project: Project, days: int = 90) -> list[dict]:
    """The drift monitor: per day and per model version shown, corrections per image, share of predictions
    kept, and seconds per image. A rise for the same model means the incoming images changed."""
    since = timezone.now() - timedelta(days=days)
    rows = (ReviewEvent.objects.filter(image__project=project, model_version_id__isnull=False, created_at__gte=since)
            .annotate(day=TruncDate("created_at")).values("day", "model_version_id")
            .annotate(reviews=Count("id"), accepted=Sum("accepted"), moved=Sum("moved"), relabeled=Sum("relabeled"),
                      deleted=Sum("deleted"), added=Sum("added"), seconds=Sum("seconds_spent"))
            .order_by("day", "model_version_id"))
    result = []
    for row in rows:
        shown = row["accepted"] + row["moved"] + row["relabeled"] + row["deleted"]
        result.append({
            "day": row["day"].isoformat(), "model_version_id": row["model_version_id"], "reviews": row["reviews"],
            "corrections_per_image": (row["moved"] + row["relabeled"] + row["deleted"] + row["added"]) / row["reviews"],
            "acceptance_rate": row["accepted"] / shown if shown else None,
            "seconds_per_image": row["seconds"] / row["reviews"],
        })
    return result


@dataclass(frozen=True)
class BoxVersion:
    """An earlier version of an image's human boxes: what one save replaced."""

    boxes: list[dict]             # label_class, x, y, w, h, source_prediction (an id, or None)
    saved_by: str | None          # who saved these boxes: the save before; None if they came before any save
    saved_at: datetime | None
    replaced_by: str | None       # whose save replaced them (None: a deleted user)
    replaced_at: datetime
    left_out: int                 # boxes of a class deleted since: they cannot come back


def image_box_versions(*, image: Image) -> list[BoxVersion]:
    """Every earlier version of the image's boxes, newest first, from its ReviewEvents.

    A save that changed nothing (the same boxes as the version after it) adds no version. Saves made
    before the events kept what they replaced are not listed: what they replaced is not known.
    """
    events = list(image.review_events.select_related("user").order_by("created_at", "id"))
    classes = set(LabelClass.objects.filter(project_id=image.project_id).values_list("id", flat=True))
    current = [list(row) for row in image.annotations.order_by("id").values_list(*REPLACED_BOX_FIELDS)]
    versions = []
    for number, event in enumerate(events):
        if event.replaced is None:
            continue
        after = events[number + 1].replaced if number + 1 < len(events) else current
        before = events[number - 1] if number else None
        if _same_boxes(event.replaced, after) or (before is None and not event.replaced):
            continue  # the same boxes again, or the empty image before anyone drew on it
        kept = [row for row in event.replaced if row[0] in classes]
        versions.append(BoxVersion(
            boxes=[dict(zip(("label_class", "x", "y", "w", "h", "source_prediction"), row)) for row in kept],
            saved_by=_username(before), saved_at=before.created_at if before else None,
            replaced_by=_username(event), replaced_at=event.created_at, left_out=len(event.replaced) - len(kept),
        ))
    return versions[::-1]


def _same_boxes(a: list[list] | None, b: list[list] | None) -> bool:
    if a is None or b is None:
        return False
    return _box_set(a) == _box_set(b)


def _box_set(rows: list[list]) -> list[tuple]:
    """Class and coordinates to the editor's 0.01 px, in any order: what makes two versions the same."""
    return sorted((row[0], *(round(value, 2) for value in row[1:5])) for row in rows)


def _username(event: ReviewEvent | None) -> str | None:
    return event.user.username if event and event.user else None


def images_mentioning(images: QuerySet[Image], user_id: int) -> QuerySet[Image]:
    """Those of `images` whose comments name `user_id` (@username) and that they have not opened since."""
    return images.filter(pk__in=Mention.objects.filter(user_id=user_id, read_at__isnull=True).values("image_id"))
