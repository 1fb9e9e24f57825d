"""Which score threshold to deploy a detector at: precision, recall and F1 at every threshold.

No Django here: plain arrays in, dataclasses out. A deployed detector keeps the boxes scored at or
above one threshold, and mAP does not say which: this gives, per class and for all classes
pooled, what each threshold would keep on reviewed holdout images (true positives, false
positives, missed boxes), and picks one by a rule (best F1, or the lowest threshold that still
reaches a precision, or the highest that still reaches a recall).

One greedy match per image over every prediction is enough for all thresholds: the match is made
in descending score order and each prediction takes a human box only from those that higher
scored ones left, so the predictions scored at or above any threshold match exactly as they would
on their own. A match is class-aware at IoU 0.5 (inference/matching.py, the same rule as error
review and AP50).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from inference.matching import MATCH_IOU, ImagePredictions, ImageTruth, box_iou, confident, match_boxes

ALL_CLASSES = "all classes"
CHOOSE_RULES = ("f1", "precision", "recall")
PLOT_POINTS = 100  # thresholds kept per curve for plotting; the chosen points are exact


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    missed: int


@dataclass(frozen=True)
class Curve:
    name: str                  # a class name, or ALL_CLASSES
    human_boxes: int
    predictions: int
    chosen: OperatingPoint | None  # by the rule asked for; None when no threshold meets it
    best_f1: OperatingPoint | None
    points: list[OperatingPoint]   # at most PLOT_POINTS, highest threshold first

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Scored:
    """Every prediction of one curve, highest score first, and whether each found a human box."""

    scores: np.ndarray
    hits: np.ndarray
    human_boxes: int

    def at(self, end: int) -> OperatingPoint:
        """The point that keeps the first `end` predictions (end > 0)."""
        tp = int(self.hits[:end].sum())
        lowest_kept = float(self.scores[end - 1])
        next_score = float(self.scores[end]) if end < len(self.scores) else -1.0
        return _point(_short_threshold(lowest_kept, next_score), tp, end - tp, self.human_boxes)


def _short_threshold(lowest_kept: float, next_score: float) -> float:
    """The threshold written with 4 decimals, rounded down, when that keeps the same boxes; else exact.

    Scores are float32 (0.9 is 0.89999998): rounded up, a threshold would drop the very box it was
    chosen to keep, and the exact value reads badly and compares differently in float32 and float64.
    """
    short = math.floor(lowest_kept * 10_000) / 10_000
    return short if short > next_score else lowest_kept


def operating_points(truths: Sequence[ImageTruth], predictions: Sequence[ImagePredictions],
                     class_names: Sequence[str], *, choose: str = "f1", target: float | None = None) -> list[Curve]:
    """One curve for all classes pooled, then one per class that has human boxes or predictions.

    `truths` and `predictions` are the same images in the same order; labels are 1..len(class_names).
    `choose`: "f1" picks the threshold with the best F1; "precision" the lowest threshold whose
    precision is at least `target` (the most boxes found at that precision); "recall" the highest
    threshold whose recall is at least `target` (the fewest false positives at that recall).
    """
    if choose not in CHOOSE_RULES:
        raise ValueError(f"choose must be one of {', '.join(CHOOSE_RULES)} (got {choose!r})")
    if choose != "f1" and (target is None or not 0 <= target <= 1):
        raise ValueError(f"choosing by {choose} needs a target between 0 and 1")
    scores, hits, labels, human_labels = [], [], [], []
    for truth, prediction in zip(truths, predictions, strict=True):
        match = match_boxes(truth, prediction)
        scores.append(prediction.scores)
        hits.append(np.asarray([outcome == "tp" for outcome in match.prediction_outcomes], dtype=bool))
        labels.append(prediction.labels)
        human_labels.append(truth.labels)
    all_scores, all_hits = _concat(scores, np.float64), _concat(hits, bool)
    all_labels, all_human = _concat(labels, np.int64), _concat(human_labels, np.int64)
    curves = [_curve(ALL_CLASSES, all_scores, all_hits, len(all_human), choose, target)]
    for index, name in enumerate(class_names, start=1):
        mine = all_labels == index
        human = int((all_human == index).sum())
        if human or mine.any():
            curves.append(_curve(name, all_scores[mine], all_hits[mine], human, choose, target))
    return curves


@dataclass(frozen=True)
class Confusion:
    """Which class the kept boxes gave each human box: counts[true][predicted].

    Rows are the classes and then "nothing there" (a kept box on no human box); columns are the
    classes and then "missed" (no kept box on the human box). The diagonal is what was found.
    """

    threshold: float
    classes: list[str]
    counts: list[list[int]]  # (classes + 1) x (classes + 1)

    def as_dict(self) -> dict:
        return asdict(self)


def confusion_matrix(truths: Sequence[ImageTruth], predictions: Sequence[ImagePredictions],
                     class_names: Sequence[str], *, threshold: float) -> Confusion:
    """The boxes scored at or above `threshold` against the human boxes, matched whatever their class.

    Unlike the class-aware match of the curves, a box of the wrong class on a human box (IoU >= 0.5)
    counts here as that confusion instead of as a false positive plus a miss: highest score first,
    each kept box takes the free human box it overlaps most.
    """
    n = len(class_names)
    counts = np.zeros((n + 1, n + 1), dtype=np.int64)  # row n: nothing there; column n: missed
    for truth, prediction in zip(truths, predictions, strict=True):
        kept = confident(prediction, threshold)
        ious = box_iou(kept.boxes_xyxy, truth.boxes_xyxy)
        free = np.ones(len(truth.labels), dtype=bool)
        for p in np.argsort(-kept.scores, kind="stable"):
            overlaps = np.where(free, ious[p], -1.0) if len(truth.labels) else np.zeros(0)
            t = int(np.argmax(overlaps)) if len(overlaps) else -1
            if t >= 0 and overlaps[t] >= MATCH_IOU:
                free[t] = False
                counts[truth.labels[t] - 1, kept.labels[p] - 1] += 1
            else:
                counts[n, kept.labels[p] - 1] += 1
        for t in np.flatnonzero(free):
            counts[truth.labels[t] - 1, n] += 1
    return Confusion(threshold, list(class_names), counts.tolist())


def best_f1_summary(curves: list[Curve]) -> dict | None:
    """The pooled best-F1 point and each class's best-F1 threshold: what a deployment is told (small JSON)."""
    pooled = curves[0].best_f1 if curves else None
    if pooled is None or not pooled.f1:
        return None  # nothing found at any threshold: no threshold to recommend
    return {"threshold": pooled.threshold, "precision": pooled.precision, "recall": pooled.recall, "f1": pooled.f1,
            "per_class": {c.name: c.best_f1.threshold for c in curves[1:] if c.best_f1 is not None}}


def _concat(parts: list, dtype) -> np.ndarray:
    return np.concatenate([np.asarray(p, dtype=dtype).reshape(-1) for p in parts]) if parts else np.zeros(0, dtype)


def _curve(name: str, scores: np.ndarray, hits: np.ndarray, human_boxes: int, choose: str,
           target: float | None) -> Curve:
    order = np.argsort(-scores, kind="stable")
    scored = _Scored(scores[order], hits[order], human_boxes)
    if not len(order):
        return Curve(name, human_boxes, 0, None, None, [])
    # Only the last prediction of each run of equal scores ends a threshold: a threshold keeps all of a tie.
    ends = np.flatnonzero(np.append(scored.scores[1:] != scored.scores[:-1], True)) + 1
    tp = np.cumsum(scored.hits)[ends - 1]
    precision = tp / ends
    recall = tp / human_boxes if human_boxes else np.zeros(len(ends))
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(ends)), where=precision + recall > 0)
    best_f1 = scored.at(int(ends[int(np.argmax(f1))])) if human_boxes else None  # argmax: the highest of tied thresholds
    if choose == "f1":
        chosen = best_f1
    elif choose == "precision":
        meets = np.flatnonzero(precision >= target)
        chosen = scored.at(int(ends[meets[-1]])) if len(meets) and human_boxes else None
    else:
        meets = np.flatnonzero(recall >= target)
        chosen = scored.at(int(ends[meets[0]])) if len(meets) and human_boxes else None
    keep = np.unique(np.linspace(0, len(ends) - 1, min(PLOT_POINTS, len(ends))).round().astype(int))
    points = [scored.at(int(ends[k])) for k in keep]
    return Curve(name, human_boxes, len(order), chosen, best_f1, points)


def _point(threshold: float, tp: int, fp: int, human_boxes: int) -> OperatingPoint:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / human_boxes if human_boxes else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return OperatingPoint(threshold, round(precision, 4), round(recall, 4), round(f1, 4), tp, fp, human_boxes - tp)
