"""Reads of the training app that pages and the API share."""
from __future__ import annotations

from django.db.models import QuerySet

from review.models import Project
from training.models import TrainingRun


def training_runs_recent(*, project: Project, limit: int = 5) -> QuerySet[TrainingRun]:
    return (TrainingRun.objects.filter(project=project).select_related("base_version", "result_version", "snapshot")
            .order_by("-created_at")[:limit])
