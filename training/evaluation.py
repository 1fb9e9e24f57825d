"""Evaluation of detections against human boxes: COCO mAP with pycocotools.

No Django here: plain arrays in, dataclasses out. Boxes are xyxy in image pixels; labels are
model class ids 1..N. The per-box matcher is inference/matching.py (error review uses it too).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inference.matching import ImagePredictions, ImageTruth

RECALL_STEPS = np.linspace(0.0, 1.0, 101)  # where COCO reads each precision-recall curve
TAG_MIN_IMAGES = 10  # a tag with fewer evaluated images says too little to call its change clear
RESAMPLE_CELLS = 4_000_000  # resamples x detections worked out at once: 32 MB per array


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


def classes_without_truth(truths: Sequence[ImageTruth], class_names: Sequence[str]) -> list[str]:
    """The classes no image of `truths` has a human box of: COCO's mAP leaves them out, so a model can be worse
    on them unseen (empty when there are no images: nothing is judged, and the caller says so otherwise)."""
    if not truths:
        return []
    held = {int(label) for truth in truths for label in truth.labels}
    return [name for category, name in enumerate(class_names, start=1) if category not in held]


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
        # Only COCO's first area range ('all') is read: its small, medium and large ones would match every
        # image's boxes three more times (4x the time, for figures nobody here shows).
        evaluator.params.areaRng, evaluator.params.areaRngLbl = evaluator.params.areaRng[:1], ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][..., 0, -1]  # [iou, recall, class] in 'all', at 100 detections
    per_class = {name: _mean_known(precision[:, :, k]) for k, name in enumerate(class_names)}
    overall, at_50 = _mean_known(precision), _mean_known(precision[:1])  # iouThrs[0] is 0.5
    return EvalResult(overall or 0.0, at_50 or 0.0,
                      {name: ap for name, ap in per_class.items() if ap is not None}, len(truths),
                      tables=_class_tables(evaluator, [t.image_id for t in truths]))


def _mean_known(precision: np.ndarray) -> float | None:
    """The mean of the precisions COCO could read (-1: a class with no human box), as COCOeval.summarize
    takes it; None when there are none."""
    known = precision[precision > -1]
    return float(known.mean()) if known.size else None


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
    return float(map_of_resamples(tables, np.asarray(counts, dtype=float)[None, :])[0])


def map_of_resamples(tables: Sequence[ClassTable], counts: np.ndarray) -> np.ndarray:
    """map_of_resample for each row of `counts` (resamples x images), worked out together: thousands of
    resamples of a tag's images take a fraction of a second, not one Python loop each."""
    resamples = counts.shape[0]
    total, classes = np.zeros(resamples), np.zeros(resamples)
    for table in tables:
        truths = counts @ table.truths
        counted = truths > 0
        if counted.any():
            ap = np.zeros(resamples)
            if len(table.image):
                step = max(1, RESAMPLE_CELLS // len(table.image))
                for first in range(0, resamples, step):
                    rows = slice(first, first + step)
                    ap[rows] = _average_precision(table, counts[rows], truths[rows])
            total += np.where(counted, ap, 0.0)
            classes += counted
    return np.where(classes > 0, total / np.maximum(classes, 1), 0.0)


def _average_precision(table: ClassTable, counts: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """One class's AP@[.5:.95] in each resample, read as COCOeval.accumulate reads it: precision (made
    non-increasing) at the first detection whose recall reaches each of 101 steps, 0 past the last.

    Only the true positives of each IoU threshold are looked at: recall first reaches a step at one of
    them, and precision, which falls at every false positive, peaks at one of them, so the envelope at a
    true positive is the largest precision among the true positives from there on. A real detector's
    list is mostly false positives (low scores), so this reads a fraction of it per threshold."""
    weight = counts[:, table.image]                                           # (R, D) copies of each detection
    counted = table.tp | table.fp                                             # (T, D) not ignored
    shared = bool((counted == counted[0]).all())  # no ignored detections: one running count for all thresholds
    running = np.cumsum(weight * counted[0], axis=1) if shared else None
    steps = len(RECALL_STEPS)
    ap = np.zeros(counts.shape[0])
    for threshold in range(table.tp.shape[0]):
        hits = np.flatnonzero(table.tp[threshold])
        if not hits.size:
            continue
        kept = (running if shared else np.cumsum(weight * counted[threshold], axis=1))[:, hits]   # (R, K)
        found = np.cumsum(weight[:, hits], axis=1)
        precision = found / np.maximum(kept, np.spacing(1))
        precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # COCO's precision envelope
        recall = found / np.maximum(truths, np.spacing(1))[:, None]
        rows, hit_count = recall.shape
        # A searchsorted per row, done for all at once: the true positives whose recall is below each step,
        # counted from each recall's first step above it (the same float comparisons as COCO's own).
        first_above = np.searchsorted(RECALL_STEPS, recall, side="right")
        below = np.bincount((np.arange(rows)[:, None] * (steps + 1) + first_above).ravel(),
                            minlength=rows * (steps + 1)).reshape(rows, steps + 1)
        at = np.cumsum(below, axis=1)[:, :steps]                               # (R, steps)
        picked = precision[np.arange(rows)[:, None], np.minimum(at, hit_count - 1)]
        ap += np.where(at < hit_count, picked, 0.0).mean(axis=1)
    return ap / table.tp.shape[0]


def map_of_groups(result: EvalResult, groups: dict[str, Sequence[int]]) -> dict[str, float]:
    """COCO mAP@[.5:.95] of each group of the evaluated images (their positions in the evaluation's
    order), from the matches already made: no box is matched again."""
    counts = np.zeros((len(groups), result.images))
    for row, positions in enumerate(groups.values()):
        counts[row, list(positions)] = 1.0
    return dict(zip(groups, map_of_resamples(result.tables, counts).tolist()))


def map_gains(new: EvalResult, old: EvalResult, *, positions: Sequence[int] | None = None, resamples: int = 200,
              seed: int = 0) -> np.ndarray | None:
    """The gain in mAP (new - old) on `resamples` draws with replacement of the evaluated images, or of
    those at `positions` only (a tag's): the same draw for both models, a paired bootstrap. None when
    there is nothing to resample."""
    if not new.images or new.images != old.images:
        return None
    new_tables, old_tables, images = new.tables, old.tables, new.images
    if positions is not None:
        new_tables, old_tables = _tables_of(new, positions), _tables_of(old, positions)
        images = len(positions)
    if not images:
        return None
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, images, (resamples, images))
    counts = np.zeros((resamples, images))
    np.add.at(counts, (np.arange(resamples)[:, None], drawn), 1.0)
    return map_of_resamples(new_tables, counts) - map_of_resamples(old_tables, counts)


def _tables_of(result: EvalResult, positions: Sequence[int]) -> tuple[ClassTable, ...]:
    """The class tables of some of the evaluated images, numbered 0.. in the order given: a resample of
    a few images then works on their detections only."""
    positions = list(positions)
    index = np.full(result.images, -1)
    index[positions] = np.arange(len(positions))
    tables = []
    for table in result.tables:
        keep = index[table.image] >= 0
        tables.append(ClassTable(index[table.image[keep]], table.tp[:, keep], table.fp[:, keep], table.truths[positions]))
    return tuple(tables)


def map_gain_interval(new: EvalResult, old: EvalResult, *, resamples: int = 200, level: float = 0.9,
                      seed: int = 0) -> tuple[float, float] | None:
    """How sure a gain in holdout mAP is: the central `level` share of the gains over paired resamples of
    the held-out images (map_gains). A few dozen held-out images give a wide interval; one that holds 0
    may be chance. None when there is nothing to resample."""
    gains = map_gains(new, old, resamples=resamples, seed=seed)
    if gains is None:
        return None
    low, high = np.quantile(gains, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def tag_changes(new: EvalResult, old: EvalResult, groups: dict[str, Sequence[int]], *, min_images: int = TAG_MIN_IMAGES,
                resamples: int = 200, risk: float = 0.05) -> dict[str, dict]:
    """How sure each tag's change in mAP is, for the tags with at least `min_images` of the evaluated
    images (their positions in `groups`): the central 90% of the change over paired resamples of the
    tag's images (`interval`), and `bound`, the mean change plus z standard deviations: the change is
    below it beyond chance, z chosen for `risk` shared among the tags judged (Bonferroni). A bound below
    0 is a clear loss: a model that changed nothing is called clearly worse on some tag at most `risk`
    of the time, however many tags there are; below -0.05, clearly worse by more than 0.05."""
    judged = {name: positions for name, positions in groups.items() if len(positions) >= min_images}
    z = NormalDist().inv_cdf(1 - risk / max(len(judged), 1))
    changes = {}
    for name, positions in judged.items():
        gains = map_gains(new, old, positions=positions, resamples=resamples)
        if gains is None:
            continue
        low, high = np.quantile(gains, [0.05, 0.95])
        bound = float(gains.mean() + z * gains.std())
        changes[name] = {"interval": (float(low), float(high)), "bound": bound, "clear_loss": bound < 0}
    return changes


def tag_change_fields(change: dict | None) -> dict:
    """One tag's change (from tag_changes) as stored and served: nulls for a tag too small to judge."""
    return {"change_interval": change and [round(bound, 4) for bound in change["interval"]],
            "change_bound": change and round(change["bound"], 4), "clear_loss": bool(change and change["clear_loss"])}
