"""Review priority for unreviewed images: what most needs a human, from the model's own output.

No Django here. The formula (docs/priority.md):

    priority = 0.4 * uncertainty + 0.3 * disagreement + 0.3 * count_anomaly

- uncertainty (inference/pipeline.py `image_uncertainty`): the most doubtful box, 1 for a score
  exactly at the review threshold, 0 for scores of 0 or 1.
- disagreement: 1 - F1 agreement between the confident boxes of the latest two versions that
  predicted the image (a pair agrees at IoU >= 0.5 and the same class); 0 when only one version has.
- count_anomaly: |boxes - typical| / max(typical, 1), capped at 1, where typical is the mean number
  of human boxes per reviewed image in the project: an image with far more or fewer objects than
  usual is worth a look even when each box is confident. A model that finds nothing where objects
  are usual scores 1: that silence is how a detector fails on a new camera or at night (its
  uncertainty is then 0, as it has no boxes to doubt), so it weighs as much as disagreement.
Each part lies in 0..1 and is stored on the image, so the queue can say why an image is first.
"""
from __future__ import annotations

from inference.matching import ImagePredictions, ImageTruth, match_boxes

WEIGHTS = {"uncertainty": 0.4, "disagreement": 0.3, "count_anomaly": 0.3}


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


def count_anomaly(box_count: int, typical: float | None) -> float | None:
    if typical is None:
        return None
    return float(min(1.0, abs(box_count - typical) / max(typical, 1.0)))
