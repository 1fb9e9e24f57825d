"""After a project's review threshold changed: its queue ranked and its reviewed images judged again.

The threshold decides which boxes are the model's answer, so every stored score that depends on it
is worked out again from the predictions already in the database (no model runs):
- each unreviewed image's ranking (docs/error-review.md), from the predictions of the version that
  ranked it (Image.ranked_by) and the version before it, with the same function an inference run uses;
- each reviewed image's per-box outcomes and suspected label errors (inference/outcomes.py).
In chunks of CHUNK images, one transaction each, so a large project never holds its rows long. A
RerankRun row reports progress and can be cancelled between chunks; a cancelled run leaves some
images at the old threshold until the queue is ranked again.

Each chunk reads the threshold with the project row locked against changes (FOR NO KEY UPDATE, which
uploads do not wait for), so a run whose threshold was changed meanwhile stops before writing
anything at the old one: the change queued a newer run, which ranks everything at the new one.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
from django.db import transaction

from inference.matching import ImagePredictions
from inference.models import ModelVersion, Prediction, RerankRun
from inference.outcomes import box_outcomes_refresh, previous_predictions, reviewed_box_counts
from inference.ranking import image_ranking
from project.bulk_insert import rows_update
from project.jobs import JobProgress, JobStatus, job_attempt_start, job_end, job_heartbeat
from project.row_locks import update_lock
from review.models import REVIEWED_STATUSES, Image, Project, ReviewStatus

logger = logging.getLogger(__name__)

CHUNK = 500


class Superseded(Exception):
    """The project's threshold is no longer the run's: a newer run ranks at the new one."""


def rerank_run_execute(*, run_id: int, progress_interval: float = 1.0) -> RerankRun | None:
    """Rank and judge a project's images at the run's threshold, chunk by chunk, reporting progress."""
    run = job_attempt_start(RerankRun, run_id=run_id)
    if run is None:
        return None
    with job_heartbeat(run):
        return _rerank(run, JobProgress(run, interval=progress_interval))


def _rerank(run: RerankRun, progress: JobProgress) -> RerankRun:
    unreviewed = (Image.objects.filter(project_id=run.project_id, status=ReviewStatus.UNREVIEWED,
                                       ranked_by__isnull=False).order_by("pk").values_list("pk", flat=True))
    reviewed = (Image.objects.filter(project_id=run.project_id, status__in=REVIEWED_STATUSES)
                .order_by("pk").values_list("pk", flat=True))
    # Each attempt starts from scratch: the work is the same whenever it is done again.
    RerankRun.objects.filter(pk=run.pk).update(progress_total=unreviewed.count() + reviewed.count(),
                                               progress_done=0, images_ranked=0, images_judged=0)
    ranked = judged = 0
    try:
        reviewed_counts = reviewed_box_counts(run.project_id)
        for image_ids in _chunks(unreviewed):
            if progress.cancelled():
                return job_end(run, progress, JobStatus.CANCELLED)
            ranked += _chunk_rerank(run, image_ids, reviewed_counts)
            progress.add(len(image_ids), images_ranked=ranked)
        for image_ids in _chunks(reviewed):
            if progress.cancelled():
                return job_end(run, progress, JobStatus.CANCELLED)
            _chunk_judge(run, image_ids)
            judged += len(image_ids)
            progress.add(len(image_ids), images_judged=judged)
    except Superseded as exc:
        return job_end(run, progress, JobStatus.CANCELLED, error=str(exc))
    except Exception as exc:  # the run must say what went wrong now, not stay "running" until the sweeper
        logger.exception("rerank %s failed", run.pk)
        return job_end(run, progress, JobStatus.FAILED,
                       error=f"The rerank failed ({type(exc).__name__}: {exc}); rank the queue again.")
    return job_end(run, progress, JobStatus.SUCCEEDED)


def _threshold_hold(run: RerankRun) -> float:
    """The project's threshold, held unchanged until this chunk commits; Superseded when it is not the run's."""
    threshold = (Project.objects.select_for_update(no_key=True).filter(pk=run.project_id)
                 .values_list("score_threshold", flat=True).first())
    if threshold is None:
        raise Superseded("The project was deleted.")
    if threshold != run.score_threshold:
        raise Superseded(f"Superseded: the review threshold was changed to {threshold:.4g} meanwhile, "
                         "and a newer rerank ranks the queue at it.")
    return threshold


@transaction.atomic
def _chunk_judge(run: RerankRun, image_ids: list[int]) -> None:
    _threshold_hold(run)
    box_outcomes_refresh(image_ids=image_ids)


def _chunks(ids) -> Iterator[list[int]]:
    """Keyset pages of ids, so a project's 100,000 images are never one IN (...) list."""
    last = 0
    while page := list(ids.filter(pk__gt=last)[:CHUNK]):
        yield page
        last = page[-1]


@transaction.atomic
def _chunk_rerank(run: RerankRun, image_ids: list[int], reviewed_counts: dict[int, int]) -> int:
    threshold = _threshold_hold(run)
    ranked_by = dict(Image.objects.filter(pk__in=image_ids).values_list("pk", "ranked_by"))
    versions = dict(ModelVersion.objects.filter(project_id=run.project_id, number__in=set(ranked_by.values()))
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
        previous = previous_predictions(group, before=number, threshold=threshold)
        for image_id in group:
            table = np.asarray(boxes[image_id], dtype=np.float64).reshape(-1, 6)
            predicted = ImagePredictions(image_id, table[:, :4].astype(np.float32), table[:, 4].astype(np.int64),
                                         table[:, 5].astype(np.float32))
            rank = image_ranking(predicted, previous=previous.get(image_id), reviewed_counts=reviewed_counts,
                                 threshold=threshold)
            rows.append((rank.uncertainty, rank.disagreement, rank.count_anomaly, rank.priority, image_id))
    # Only images still unreviewed, held so until this commits: a review saved meanwhile took the image
    # out of the queue, and one saved now waits for this chunk (project/row_locks.py).
    still = set(update_lock(Image.objects.filter(pk__in=[row[-1] for row in rows],
                                                 status=ReviewStatus.UNREVIEWED)))
    rows = [row for row in rows if row[-1] in still]
    rows_update(Image, ("uncertainty", "disagreement", "count_anomaly", "priority"), rows)
    return len(rows)
