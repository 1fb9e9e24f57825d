"""Reads of the inference app that pages and the API share."""
from __future__ import annotations

from django.db.models import QuerySet

from inference.models import InferenceRun, ModelVersion
from review.models import Project


def inference_runs_recent(*, project: Project, limit: int = 5) -> QuerySet[InferenceRun]:
    return InferenceRun.objects.filter(project=project).select_related("model_version").order_by("-created_at")[:limit]


def model_versions(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).select_related("parent").order_by("-number")
