"""Evaluation of detections against human boxes: COCO mAP with pycocotools.

No Django here: plain arrays in, dataclasses out. Boxes are xyxy in image pixels; labels are
model class ids 1..N. The per-box matcher is inference/matching.py (error review uses it too).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inference.matching import ImagePredictions, ImageTruth

RECALL_STEPS = np.linspace(0.0, 1.0, 101)  # where COCO reads each precision-recall curve


@dataclass(frozen=True)
class ClassTable:
    """One class's detections on every evaluated image, as pycocotools matched them, sorted by score:
    what the mAP of any resample of the images is worked out from without matching boxes again."""
    image: np.ndarray   # (D,) position of each detection's image
    tp: np.ndarray      # (T, D) found a human box at each IoU threshold
    fp: np.ndarray      # (T, D) found none (and is not ignored)
    truths: np.ndarray  # (I,) human boxes of the class per image


@dataclass(frozen=True)
class EvalResult:
    map: float                 # COCO mAP@[.5:.95]
    ap50: float
    per_class: dict[str, float] = field(default_factory=dict)  # AP@[.5:.95] per class name
    images: int = 0
    operating_point: dict | None = None  # best-F1 threshold (training/operating_points.py), when asked for
    tables: tuple[ClassTable, ...] = field(default=(), repr=False, compare=False)  # for map_gain_interval

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
    return EvalResult(float(max(evaluator.stats[0], 0.0)), float(max(evaluator.stats[1], 0.0)), per_class, len(truths),
                      tables=_class_tables(evaluator, [t.image_id for t in truths]))


def _class_tables(evaluator: COCOeval, image_ids: list[int]) -> tuple[ClassTable, ...]:
    params = evaluator.params
    images, areas = len(params.imgIds), len(params.areaRng)
    position = {image_id: n for n, image_id in enumerate(image_ids)}
    iou_count = len(params.iouThrs)
    tables = []
    for k in range(len(params.catIds)):
        # evalImgs runs class by class, area range by area range (0: all), image by image, in imgIds order
        entries = [e for e in evaluator.evalImgs[k * areas * images:k * areas * images + images] if e is not None]
        truths = np.zeros(len(image_ids))
        for e in entries:
            truths[position[e["image_id"]]] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
        if not entries or not any(len(e["dtScores"]) for e in entries):
            empty = np.zeros((iou_count, 0), dtype=bool)
            tables.append(ClassTable(np.zeros(0, dtype=np.int64), empty, empty, truths))
            continue
        scores = np.concatenate([e["dtScores"] for e in entries])
        order = np.argsort(-scores, kind="mergesort")  # as COCOeval.accumulate sorts them
        image = np.concatenate([np.full(len(e["dtScores"]), position[e["image_id"]]) for e in entries])[order]
        matched = np.concatenate([e["dtMatches"] for e in entries], axis=1)[:, order] > 0
        ignored = np.concatenate([e["dtIgnore"] for e in entries], axis=1)[:, order] > 0
        tables.append(ClassTable(image, matched & ~ignored, ~matched & ~ignored, truths))
    return tuple(tables)


def map_of_resample(tables: Sequence[ClassTable], counts: np.ndarray) -> float:
    """COCO mAP@[.5:.95] over the images drawn `counts` times each (all ones: the images as they are,
    the same figure as pycocotools'). A class with no human box among them does not count, as in COCO."""
    aps = []
    for table in tables:
        truths = float(np.dot(counts, table.truths))
        if truths == 0:
            continue
        weight = counts[table.image]
        tp = np.cumsum(table.tp * weight, axis=1)
        fp = np.cumsum(table.fp * weight, axis=1)
        recall = tp / truths
        precision = tp / np.maximum(tp + fp, np.spacing(1))
        precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # COCO's precision envelope
        sampled = np.zeros((precision.shape[0], len(RECALL_STEPS)))
        for t in range(precision.shape[0]):
            at = np.searchsorted(recall[t], RECALL_STEPS, side="left")
            reached = at < precision.shape[1]
            sampled[t, reached] = precision[t, at[reached]]
        aps.append(sampled.mean())
    return float(np.mean(aps)) if aps else 0.0


def map_of_groups(result: EvalResult, groups: dict[str, Sequence[int]]) -> dict[str, float]:
    """COCO mAP@[.5:.95] of each group of the evaluated images (their positions in the evaluation's
    order), from the matches already made: no box is matched again."""
    scores = {}
    for name, positions in groups.items():
        counts = np.zeros(result.images)
        counts[list(positions)] = 1.0
        scores[name] = map_of_resample(result.tables, counts)
    return scores


def map_gain_interval(new: EvalResult, old: EvalResult, *, resamples: int = 200, level: float = 0.9,
                      seed: int = 0) -> tuple[float, float] | None:
    """How sure a gain in holdout mAP is: the images are drawn again with replacement `resamples` times
    (the same draw for both models: a paired bootstrap), and the central `level` share of the gains
    is returned. A few dozen held-out images give a wide interval; one that holds 0 may be chance.
    None when there is nothing to resample."""
    if not new.images or new.images != old.images:
        return None
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, new.images, new.images), minlength=new.images).astype(float)
        gains.append(map_of_resample(new.tables, counts) - map_of_resample(old.tables, counts))
    low, high = np.quantile(gains, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
