"""After a project's review threshold changed: its queue ranked and its reviewed images judged again.

The threshold decides which boxes are the model's answer, so every stored score that depends on it
is worked out again from the predictions already in the database (no model runs):
- each unreviewed image's ranking (docs/error-review.md), from the predictions of the version that
  ranked it (Image.ranked_by) and the version before it, with the same function an inference run uses;
- each reviewed image's per-box outcomes and suspected label errors (inference/outcomes.py).
In chunks of CHUNK images, one transaction each, so a large project never holds its rows long.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np
from django.db import transaction

from inference.matching import ImagePredictions
from inference.models import ModelVersion, Prediction
from inference.outcomes import box_outcomes_refresh, previous_predictions, reviewed_box_counts
from inference.ranking import image_ranking
from project.bulk_insert import rows_update
from review.models import REVIEWED_STATUSES, Image, Project, ReviewStatus

CHUNK = 500


def project_rerank(*, project_id: int) -> dict[str, int]:
    """Rank and judge a project's images at its current review threshold: {"ranked": n, "judged": n}."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:  # deleted meanwhile
        return {"ranked": 0, "judged": 0}
    ranked = 0
    unreviewed = (Image.objects.filter(project=project, status=ReviewStatus.UNREVIEWED, ranked_by__isnull=False)
                  .order_by("pk").values_list("pk", flat=True))
    reviewed_counts = reviewed_box_counts(project.pk)
    for image_ids in _chunks(unreviewed):
        ranked += _chunk_rerank(project, image_ids, reviewed_counts)
    judged = 0
    reviewed = Image.objects.filter(project=project, status__in=REVIEWED_STATUSES).order_by("pk").values_list(
        "pk", flat=True)
    for image_ids in _chunks(reviewed):
        box_outcomes_refresh(image_ids=image_ids)
        judged += len(image_ids)
    return {"ranked": ranked, "judged": judged}


def _chunks(ids) -> Iterator[list[int]]:
    """Keyset pages of ids, so a project's 100,000 images are never one IN (...) list."""
    last = 0
    while page := list(ids.filter(pk__gt=last)[:CHUNK]):
        yield page
        last = page[-1]


@transaction.atomic
def _chunk_rerank(project: Project, image_ids: list[int], reviewed_counts: dict[int, int]) -> int:
    ranked_by = dict(Image.objects.filter(pk__in=image_ids).values_list("pk", "ranked_by"))
    versions = dict(ModelVersion.objects.filter(project=project, number__in=set(ranked_by.values()))
                    .values_list("number", "pk"))
    boxes: dict[int, list] = defaultdict(list)
    for image_id, version_id, class_id, x, y, w, h, score in (
            Prediction.objects.filter(image_id__in=image_ids, model_version_id__in=versions.values())
            .values_list("image_id", "model_version_id", "label_class_id", "x", "y", "w", "h", "score")):
        if versions.get(ranked_by[image_id]) == version_id:
            boxes[image_id].append((x, y, x + w, y + h, class_id, score))
    rows = []
    for number in set(ranked_by.values()) & set(versions):  # an image ranked by a deleted version keeps its scores
        group = [image_id for image_id, by in ranked_by.items() if by == number]
        previous = previous_predictions(group, before=number, threshold=project.score_threshold)
        for image_id in group:
            table = np.asarray(boxes[image_id], dtype=np.float64).reshape(-1, 6)
            predicted = ImagePredictions(image_id, table[:, :4].astype(np.float32), table[:, 4].astype(np.int64),
                                         table[:, 5].astype(np.float32))
            rank = image_ranking(predicted, previous=previous.get(image_id), reviewed_counts=reviewed_counts,
                                 threshold=project.score_threshold)
            rows.append((rank.uncertainty, rank.disagreement, rank.count_anomaly, rank.priority, image_id))
    # Only images still unreviewed: a review saved meanwhile took the image out of the queue.
    still = set(Image.objects.filter(pk__in=[row[-1] for row in rows], status=ReviewStatus.UNREVIEWED)
                .values_list("pk", flat=True))
    rows = [row for row in rows if row[-1] in still]
    rows_update(Image, ("uncertainty", "disagreement", "count_anomaly", "priority"), rows)
    return len(rows)
