"""Reads of the review app that need care (annotations, counts, ordering)."""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from review.models import Image, Project, ReviewEvent, ReviewStatus


def project_list_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    """The user's projects with image counts by review status, in one query."""
    return (
        Project.objects.filter(memberships__user=user)
        .annotate(
            image_count=Count("images", distinct=True),
            unreviewed_count=Count("images", filter=Q(images__status=ReviewStatus.UNREVIEWED), distinct=True),
            reviewed_count=Count("images", filter=~Q(images__status=ReviewStatus.UNREVIEWED), distinct=True),
        )
        .order_by("name", "id")
    )


def image_list(*, project: Project, status: str | None = None) -> QuerySet[Image]:
    """The queue's default order: most urgent first (uses image_queue_idx)."""
    images = Image.objects.filter(project=project)
    if status:
        images = images.filter(status=status)
    return images.annotate(box_count=Count("annotations")).order_by("-priority", "id")


def image_status_counts(*, project: Project) -> dict[str, int]:
    counts = dict.fromkeys(ReviewStatus.values, 0)
    for row in Image.objects.filter(project=project).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


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
