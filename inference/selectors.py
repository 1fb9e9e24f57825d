"""Reads of the inference app that pages and the API share."""
from __future__ import annotations

from django.db.models import Count, F, QuerySet

from inference.models import BoxOutcome, InferenceChunk, InferenceRun, ModelVersion, OutcomeKind, Prediction, RerankRun
from review.models import REVIEWED_STATUSES, Image, Project


def inference_runs_recent(*, project: Project, limit: int = 5) -> QuerySet[InferenceRun]:
    return InferenceRun.objects.filter(project=project).select_related("model_version").order_by("-created_at")[:limit]


def rerank_runs_recent(*, project: Project, limit: int = 3) -> QuerySet[RerankRun]:
    return RerankRun.objects.filter(project=project).order_by("-created_at", "-id")[:limit]


def images_predicted_by(*, version: ModelVersion, image_ids: list[int]) -> set[int]:
    """Those of `image_ids` that `version` has predicted: with boxes of it stored, or read by a finished
    chunk of one of its runs. A model that finds nothing on an image stores no row, yet it predicted the
    image, and its misses there are what a comparison of two versions must count (a daylight model on
    night frames). An image whose last inference could not read it is left out."""
    wanted = set(image_ids)
    with_boxes = set(Prediction.objects.filter(model_version=version, image_id__in=wanted).order_by()
                     .values_list("image_id", flat=True).distinct())
    read = {pk for ids in InferenceChunk.objects.filter(run__model_version=version, finished=True)
            .values_list("image_ids", flat=True) for pk in ids if pk in wanted} - with_boxes
    unreadable = set(Image.objects.filter(pk__in=read).exclude(inference_error="").values_list("pk", flat=True))
    return with_boxes | (read - unreadable)


def model_versions(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).select_related("parent").order_by("-number")


ERROR_KINDS = [OutcomeKind.FALSE_POSITIVE, OutcomeKind.MISSED, OutcomeKind.WRONG_CLASS, OutcomeKind.POOR_LOCALISATION]


def box_outcomes(*, version: ModelVersion, kind: str | None = None, label_class_id: int | None = None,
                 tag: str | None = None) -> QuerySet[BoxOutcome]:
    """A version's judged boxes on reviewed images (tagged `tag`, when given); `kind=None` means every kind
    of error (not the correct ones).

    Most confident errors first: a confident mistake is the one worth a look.
    """
    outcomes = _judged(version, tag)
    outcomes = outcomes.filter(kind=kind) if kind else outcomes.filter(kind__in=ERROR_KINDS)
    if label_class_id is not None:
        outcomes = outcomes.filter(label_class_id=label_class_id)
    return outcomes.select_related("label_class", "image", "annotation__label_class").order_by(
        F("score").desc(nulls_last=True), "id")


def box_outcome_counts(*, version: ModelVersion, tag: str | None = None) -> dict:
    """Counts by kind, overall and per class: {"total": {kind: n}, "by_class": {class name: {kind: n}}}."""
    rows = (_judged(version, tag).order_by()
            .values_list("label_class__name", "kind").annotate(n=Count("id")))
    total = {kind: 0 for kind in OutcomeKind.values}
    by_class: dict[str, dict[str, int]] = {}
    for name, kind, n in rows:
        total[kind] += n
        by_class.setdefault(name, {k: 0 for k in OutcomeKind.values})[kind] = n
    return {"total": total, "by_class": dict(sorted(by_class.items()))}


def _judged(version: ModelVersion, tag: str | None) -> QuerySet[BoxOutcome]:
    outcomes = BoxOutcome.objects.filter(model_version=version, image__status__in=REVIEWED_STATUSES)
    return outcomes if tag is None else outcomes.filter(image__tags__name=tag)
