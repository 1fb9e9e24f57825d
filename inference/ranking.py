"""Review priority for unreviewed images: what most needs a human, from the model's own output.

No Django here. The formula (docs/error-review.md, "Review priority"):

    priority = 0.3 * uncertainty + 0.3 * disagreement + 0.4 * count_anomaly

- uncertainty (`image_uncertainty` below): the most doubtful box, 1 for a score
  exactly at the project's review threshold, 0 for scores of 0 or 1.
- disagreement: 1 - F1 agreement between the confident boxes of the latest two versions that
  predicted the image (a pair agrees at IoU >= 0.5 and the same class); 0 when only one version has.
- count_anomaly: how rare this many confident boxes is among the project's reviewed images:
  1 - (reviewed images with exactly that many human boxes) / (images with the most common count).
  A count no reviewed image has scores 1, the most common count 0. An image with far more or
  fewer objects than usual is worth a look even when each box is confident, and a model that
  finds nothing where every reviewed image holds objects is the way a detector fails on a new
  camera or at night: it has no box to be uncertain about (uncertainty 0), yet it will need every
  object drawn, several corrections where a borderline box needs one. So it weighs most.
Each part lies in 0..1 and is stored on the image, so the queue can say why an image is first.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from inference.matching import ImagePredictions, ImageTruth, confident, match_boxes

WEIGHTS = {"uncertainty": 0.3, "disagreement": 0.3, "count_anomaly": 0.4}
# A new project's review threshold (Project.score_threshold): boxes scored at least this are shown
# to reviewers by default and count as the model's answer; a box scored near it is one a human
# should look at.
REVIEW_THRESHOLD = 0.5


@dataclass(frozen=True)
class ImageRanking:
    uncertainty: float
    disagreement: float | None
    count_anomaly: float | None
    priority: float


def image_ranking(predicted: ImagePredictions, *, previous: ImagePredictions | None,
                  reviewed_counts: Mapping[int, int] | None, threshold: float) -> ImageRanking:
    """One image's ranking from every box one version predicted on it, whatever its score.

    `previous`: the confident boxes of the version before on this image (None if none predicted it).
    """
    uncertainty = image_uncertainty(predicted.scores, threshold=threshold)
    shown = confident(predicted, threshold)
    disagree = disagreement(shown, previous) if previous is not None else None
    anomaly = count_anomaly(len(shown.labels), reviewed_counts)
    return ImageRanking(uncertainty, disagree, anomaly, review_priority(
        uncertainty=uncertainty, disagreement=disagree, count_anomaly=anomaly))


def review_priority(*, uncertainty: float, disagreement: float | None, count_anomaly: float | None) -> float:
    return (WEIGHTS["uncertainty"] * uncertainty + WEIGHTS["disagreement"] * (disagreement or 0.0)
            + WEIGHTS["count_anomaly"] * (count_anomaly or 0.0))


def disagreement(latest: ImagePredictions, previous: ImagePredictions) -> float:
    """1 - F1 of the two versions' confident boxes matched to each other (previous taken as the truth)."""
    total = len(latest.labels) + len(previous.labels)
    if total == 0:
        return 0.0
    as_truth = ImageTruth(previous.image_id, 0, 0, previous.boxes_xyxy, previous.labels)
    agreed = match_boxes(as_truth, latest).prediction_outcomes.count("tp")
    return 1.0 - 2.0 * agreed / total


def count_anomaly(box_count: int, reviewed_counts: Mapping[int, int] | None) -> float | None:
    """`reviewed_counts`: number of boxes -> how many reviewed images have that many; None before any review."""
    if not reviewed_counts:
        return None
    return 1.0 - reviewed_counts.get(box_count, 0) / max(reviewed_counts.values())


def image_uncertainty(scores: np.ndarray, *, threshold: float = REVIEW_THRESHOLD) -> float:
    """How unsure the model is about one image, 0 (sure) to 1 (a coin toss).

    Each box's doubt is 1 - |score - threshold| / max(threshold, 1 - threshold): 1 for a box scored
    exactly at the review threshold, 0 for a box at score 0 or 1. The image takes its most doubtful
    box, because one borderline box is enough to need a human. No boxes at all gives 0.
    """
    if scores.size == 0:
        return 0.0
    doubt = 1.0 - np.abs(scores.astype(np.float64) - threshold) / max(threshold, 1.0 - threshold)
    return float(np.clip(doubt, 0.0, 1.0).max())
