"""Match a model's boxes to human boxes on one image: what each prediction was, which human boxes were missed.

No Django and no torch here: plain arrays in, a dataclass out. Boxes are xyxy in image pixels. Used
by evaluation (training/evaluation.py), the per-box outcomes of error review (inference/outcomes.py)
and the comparison of two model versions. Overlaps come from pycocotools, the same box IoU as the
COCO evaluation the model versions are scored with, so error review and mAP agree on what matched;
and the web pages that show outcomes run without loading torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as coco_mask

MATCH_IOU = 0.5
# Class-agnostic overlap above this, but under MATCH_IOU, counts as a box in the wrong place.
LOCALISATION_IOU = 0.1


@dataclass(frozen=True)
class ImageTruth:
    image_id: int
    width: int
    height: int
    boxes_xyxy: np.ndarray  # (n, 4)
    labels: np.ndarray      # (n,)


@dataclass(frozen=True)
class ImagePredictions:
    image_id: int
    boxes_xyxy: np.ndarray
    labels: np.ndarray
    scores: np.ndarray


def confident(predictions: ImagePredictions, threshold: float) -> ImagePredictions:
    """Only the boxes scored at least `threshold`: what a reviewer is shown, and what counts as an error."""
    keep = predictions.scores >= threshold
    return ImagePredictions(predictions.image_id, predictions.boxes_xyxy[keep], predictions.labels[keep],
                            predictions.scores[keep])


@dataclass(frozen=True)
class BoxMatch:
    """Outcome of each box of one image at IoU 0.5.

    prediction_outcomes: per prediction, one of "tp", "fp", "wrong_class", "poor_localisation".
    truth_matched: per human box, whether some prediction found it (class-aware).
    """

    prediction_outcomes: list[str]
    truth_matched: list[bool]
    matched_truth: list[int | None]  # per prediction: the human box it matched (tp), or sat on (wrong class, poor localisation)
    best_iou: list[float]            # per prediction: its largest overlap with any human box

    @property
    def false_negatives(self) -> int:
        return self.truth_matched.count(False)


def match_boxes(truth: ImageTruth, prediction: ImagePredictions, *, iou_threshold: float = MATCH_IOU) -> BoxMatch:
    """Greedy matching by score, class-aware. An unmatched prediction is a wrong class when it sits on a
    human box of another class (IoU >= 0.5), poor localisation when it overlaps a box of its own class
    only a little (0.1 <= IoU < 0.5), and a false positive otherwise (duplicates included). Ties in
    score keep the predictions' order; ties in IoU go to the first human box."""
    order = np.argsort(-prediction.scores, kind="stable")
    n_truth = len(truth.labels)
    ious = box_iou(prediction.boxes_xyxy, truth.boxes_xyxy)
    taken = [False] * n_truth
    outcomes: list[str] = [""] * len(order)
    matched: list[int | None] = [None] * len(order)
    for p in order:
        same_class = [(ious[p, t], -t) for t in range(n_truth)
                      if not taken[t] and truth.labels[t] == prediction.labels[p] and ious[p, t] >= iou_threshold]
        if same_class:
            _, best = max(same_class)
            taken[-best] = True
            outcomes[p], matched[p] = "tp", -best
            continue
        other = [(ious[p, t], -t) for t in range(n_truth) if truth.labels[t] != prediction.labels[p]]
        own = [(ious[p, t], -t) for t in range(n_truth) if truth.labels[t] == prediction.labels[p]]
        if other and max(other)[0] >= iou_threshold:
            outcomes[p], matched[p] = "wrong_class", -max(other)[1]
        elif own and LOCALISATION_IOU <= max(own)[0] < iou_threshold:
            outcomes[p], matched[p] = "poor_localisation", -max(own)[1]
        else:
            outcomes[p] = "fp"  # nothing there, or a duplicate of a box already found
    best_iou = [float(ious[p].max()) if n_truth else 0.0 for p in range(len(order))]
    return BoxMatch(prediction_outcomes=outcomes, truth_matched=taken, matched_truth=matched, best_iou=best_iou)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in `boxes_a` with every one in `boxes_b`: an (n, m) array."""
    a, b = _xywh(boxes_a), _xywh(boxes_b)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return np.asarray(coco_mask.iou(a, b, [0] * len(b))).reshape(len(a), len(b))


def _xywh(boxes_xyxy: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
