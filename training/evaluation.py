"""Evaluation of detections against human boxes: COCO mAP with pycocotools.

No Django here: plain arrays in, dataclasses out. Boxes are xyxy in image pixels; labels are
model class ids 1..N. The per-box matcher is inference/matching.py (error review uses it too).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inference.matching import ImagePredictions, ImageTruth


@dataclass(frozen=True)
class EvalResult:
    map: float                 # COCO mAP@[.5:.95]
    ap50: float
    per_class: dict[str, float] = field(default_factory=dict)  # AP@[.5:.95] per class name
    images: int = 0
    operating_point: dict | None = None  # best-F1 threshold (training/operating_points.py), when asked for

    def as_dict(self) -> dict:
        result = {"map": self.map, "ap50": self.ap50, "per_class": self.per_class, "images": self.images}
        return result if self.operating_point is None else {**result, "operating_point": self.operating_point}


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
