"""Evaluation of detections against human boxes: COCO mAP (pycocotools) and a per-box matcher.

No Django here: plain arrays in, dataclasses out. Boxes are xyxy in image pixels; labels are
model class ids 1..N.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.ops import box_iou

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


@dataclass(frozen=True)
class EvalResult:
    map: float                 # COCO mAP@[.5:.95]
    ap50: float
    per_class: dict[str, float] = field(default_factory=dict)  # AP@[.5:.95] per class name
    images: int = 0

    def as_dict(self) -> dict:
        return {"map": self.map, "ap50": self.ap50, "per_class": self.per_class, "images": self.images}


def coco_evaluate(truths: Sequence[ImageTruth], predictions: Sequence[ImagePredictions],
                  class_names: Sequence[str]) -> EvalResult:
    """COCO mAP, AP50 and per-class AP with pycocotools. Classes with no human box score -1 in COCO; omitted here."""
    if not truths:
        return EvalResult(0.0, 0.0, {}, 0)
    gt = {
        "images": [{"id": t.image_id, "width": t.width, "height": t.height} for t in truths],
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(class_names)],
        "annotations": [],
    }
    for t in truths:
        for (x1, y1, x2, y2), label in zip(t.boxes_xyxy.tolist(), t.labels.tolist()):
            gt["annotations"].append({
                "id": len(gt["annotations"]) + 1, "image_id": t.image_id, "category_id": int(label),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            })
    detections = [
        {"image_id": p.image_id, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
        for p in predictions
        for (x1, y1, x2, y2), label, score in zip(p.boxes_xyxy.tolist(), p.labels.tolist(), p.scores.tolist())
    ]
    if not gt["annotations"] or not detections:
        return EvalResult(0.0, 0.0, {}, len(truths))
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [iou, recall, class, area, max_dets]
    per_class = {}
    for k, name in enumerate(class_names):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        if values.size:
            per_class[name] = float(values.mean())
    return EvalResult(float(max(evaluator.stats[0], 0.0)), float(max(evaluator.stats[1], 0.0)), per_class, len(truths))


@dataclass(frozen=True)
class BoxMatch:
    """Outcome of each box of one image at IoU 0.5.

    prediction_outcomes: per prediction, one of "tp", "fp", "wrong_class", "poor_localisation".
    truth_matched: per human box, whether some prediction found it (class-aware).
    """

    prediction_outcomes: list[str]
    truth_matched: list[bool]
    matched_truth: list[int | None]  # per prediction: index of the human box it matched (tp only)

    @property
    def false_negatives(self) -> int:
        return self.truth_matched.count(False)


def match_boxes(truth: ImageTruth, prediction: ImagePredictions, *, iou_threshold: float = MATCH_IOU) -> BoxMatch:
    """Greedy matching by score, class-aware. An unmatched prediction is a wrong class when it sits on a
    human box of another class (IoU >= 0.5), poor localisation when it overlaps a box of its own class
    only a little (0.1 <= IoU < 0.5), and a false positive otherwise (duplicates included)."""
    order = np.argsort(-prediction.scores, kind="stable")
    n_truth = len(truth.labels)
    ious = (box_iou(torch.as_tensor(prediction.boxes_xyxy, dtype=torch.float32).reshape(-1, 4),
                    torch.as_tensor(truth.boxes_xyxy, dtype=torch.float32).reshape(-1, 4)).numpy()
            if n_truth and len(order) else np.zeros((len(prediction.scores), n_truth)))
    taken = [False] * n_truth
    outcomes: list[str] = [""] * len(order)
    matched: list[int | None] = [None] * len(order)
    for p in order:
        same_class = [(ious[p, t], t) for t in range(n_truth)
                      if not taken[t] and truth.labels[t] == prediction.labels[p] and ious[p, t] >= iou_threshold]
        if same_class:
            _, best = max(same_class)
            taken[best] = True
            outcomes[p], matched[p] = "tp", best
            continue
        other_class = [ious[p, t] for t in range(n_truth) if truth.labels[t] != prediction.labels[p]]
        own_class = [ious[p, t] for t in range(n_truth) if truth.labels[t] == prediction.labels[p]]
        if other_class and max(other_class) >= iou_threshold:
            outcomes[p] = "wrong_class"
        elif own_class and LOCALISATION_IOU <= max(own_class) < iou_threshold:
            outcomes[p] = "poor_localisation"
        else:
            outcomes[p] = "fp"  # nothing there, or a duplicate of a box already found
    return BoxMatch(prediction_outcomes=outcomes, truth_matched=taken, matched_truth=matched)
