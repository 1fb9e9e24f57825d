import numpy as np
import pytest

from inference.matching import ImagePredictions, ImageTruth, confident, match_boxes
from training.operating_points import ALL_CLASSES, PLOT_POINTS, best_f1_summary, confusion_matrix, operating_points


def truth(image_id, boxes, labels):
    return ImageTruth(image_id, 100, 100, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64))


def predicted(image_id, boxes, labels, scores):
    return ImagePredictions(image_id, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64),
                            np.array(scores, np.float32))


def two_circles():
    """Two circles; the model finds the first (0.9), puts a box on empty ground (0.8), finds the second (0.6)
    and repeats the first (0.3).

    threshold  kept  tp  fp  precision  recall  F1
    0.9        1     1   0   1.000      0.5     0.667
    0.8        2     1   1   0.500      0.5     0.500
    0.6        3     2   1   0.667      1.0     0.800
    0.3        4     2   2   0.500      1.0     0.667
    """
    truths = [truth(1, [[10, 10, 50, 50], [60, 60, 90, 90]], [1, 1])]
    preds = [predicted(1, [[10, 10, 50, 50], [0, 70, 20, 95], [61, 61, 90, 90], [11, 11, 50, 50]], [1, 1, 1, 1],
                       [0.9, 0.8, 0.6, 0.3])]
    return truths, preds


def test_hand_computed_curve_and_best_f1():
    curves = operating_points(*two_circles(), ["circle"])
    pooled, circle = curves
    assert pooled.name == ALL_CLASSES and circle.name == "circle"
    assert pooled.human_boxes == 2 and pooled.predictions == 4
    points = [(p.threshold, p.true_positives, p.false_positives, p.missed) for p in circle.points]
    assert points == [(0.8999, 1, 0, 1), (0.8, 1, 1, 1), (0.6, 2, 1, 0),
                      (0.3, 2, 2, 0)]
    assert [p.f1 for p in circle.points] == [0.6667, 0.5, 0.8, 0.6667]
    best = circle.best_f1
    assert best.threshold == 0.6 and (best.precision, best.recall, best.f1) == (0.6667, 1.0, 0.8)
    assert circle.chosen == best


def test_choose_by_precision_takes_the_lowest_threshold_that_reaches_it():
    circle = operating_points(*two_circles(), ["circle"], choose="precision", target=0.6)[1]
    assert circle.chosen.threshold == 0.6 and circle.chosen.precision == 0.6667
    strict = operating_points(*two_circles(), ["circle"], choose="precision", target=0.9)[1]
    assert strict.chosen.threshold == 0.8999 and strict.chosen.recall == 0.5
    assert strict.best_f1.threshold == 0.6  # the best F1 is still given beside it


def test_choose_by_recall_takes_the_highest_threshold_that_reaches_it():
    circle = operating_points(*two_circles(), ["circle"], choose="recall", target=1.0)[1]
    assert circle.chosen.threshold == 0.6 and circle.chosen.false_positives == 1
    half = operating_points(*two_circles(), ["circle"], choose="recall", target=0.5)[1]
    assert half.chosen.threshold == 0.8999


def test_a_target_nothing_reaches_chooses_nothing():
    truths = [truth(1, [[10, 10, 50, 50]], [1])]
    preds = [predicted(1, [[0, 70, 20, 95]], [1], [0.9])]  # only a false positive
    circle = operating_points(truths, preds, ["circle"], choose="precision", target=0.5)[1]
    assert circle.chosen is None and circle.best_f1.f1 == 0.0


def test_a_tie_in_score_is_kept_or_dropped_whole():
    truths = [truth(1, [[10, 10, 50, 50]], [1])]
    preds = [predicted(1, [[0, 70, 20, 95], [10, 10, 50, 50]], [1, 1], [0.7, 0.7])]
    circle = operating_points(truths, preds, ["circle"])[1]
    assert [(p.threshold, p.true_positives, p.false_positives) for p in circle.points] == [(0.6999, 1, 1)]


def test_thresholds_read_short_but_keep_exactly_the_boxes_they_name():
    """Scores are float32: 0.9 is 0.89999998. Written 0.8999 it keeps the same boxes; where a lower score lies
    between the two, the exact value stays."""
    truths = [truth(1, [[10, 10, 50, 50]], [1])]
    apart = operating_points(truths, [predicted(1, [[10, 10, 50, 50], [0, 70, 20, 95]], [1, 1], [0.9, 0.5])], ["c"])[1]
    assert [p.threshold for p in apart.points] == [0.8999, 0.5]
    close = operating_points(truths, [predicted(1, [[10, 10, 50, 50], [0, 70, 20, 95]], [1, 1], [0.9, 0.89995])],
                             ["c"])[1]
    assert close.points[0].threshold == float(np.float32(0.9)) and close.points[0].false_positives == 0
    assert close.points[1].threshold == 0.8999  # nothing lower: rounded down


def test_classes_apart_and_pooled():
    """A square nobody predicted and a triangle nobody drew get curves; a class with neither does not."""
    truths = [truth(1, [[10, 10, 50, 50], [60, 60, 90, 90]], [1, 2])]
    preds = [predicted(1, [[10, 10, 50, 50], [0, 70, 20, 95]], [1, 3], [0.9, 0.4])]
    curves = {c.name: c for c in operating_points(truths, preds, ["circle", "square", "triangle", "star"])}
    assert set(curves) == {ALL_CLASSES, "circle", "square", "triangle"}
    assert curves["square"].predictions == 0 and curves["square"].best_f1 is None and curves["square"].points == []
    assert curves["triangle"].human_boxes == 0 and curves["triangle"].best_f1 is None
    assert curves["triangle"].points[0].false_positives == 1
    pooled = curves[ALL_CLASSES]
    assert (pooled.human_boxes, pooled.predictions) == (2, 2)
    assert pooled.best_f1.threshold == 0.8999 and pooled.best_f1.missed == 1


def test_wrong_class_on_a_box_is_not_a_hit():
    truths = [truth(1, [[10, 10, 50, 50]], [1])]
    preds = [predicted(1, [[10, 10, 50, 50]], [2], [0.9])]
    curves = {c.name: c for c in operating_points(truths, preds, ["circle", "square"])}
    assert curves[ALL_CLASSES].best_f1.true_positives == 0 and curves[ALL_CLASSES].best_f1.missed == 1
    assert (curves["circle"].human_boxes, curves["circle"].predictions) == (1, 0)
    assert curves["square"].points[0].false_positives == 1


def test_one_pass_agrees_with_matching_only_the_kept_boxes_at_every_threshold():
    """The greedy match of all predictions, cut at a threshold, equals matching only those at or above it."""
    rng = np.random.default_rng(3)
    truths, preds = [], []
    for image_id in range(20):
        n, m = rng.integers(0, 6), rng.integers(0, 12)
        corners = rng.uniform(0, 70, (n, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(8, 30, (n, 2))], axis=1)
        truths.append(truth(image_id, boxes, rng.integers(1, 3, n)))
        picks = rng.integers(0, max(n, 1), m)
        jitter = rng.normal(0, 4, (m, 4))
        near = boxes[picks] + jitter if n else rng.uniform(0, 90, (m, 4))
        near = np.concatenate([np.minimum(near[:, :2], near[:, 2:] - 1), np.maximum(near[:, 2:], near[:, :2] + 1)], 1)
        preds.append(predicted(image_id, near, rng.integers(1, 3, m), rng.uniform(0, 1, m).round(2)))
    curves = operating_points(truths, preds, ["circle", "square"])
    for curve in curves:
        label = None if curve.name == ALL_CLASSES else ["circle", "square"].index(curve.name) + 1
        for point in curve.points:
            tp = fp = 0
            for t, p in zip(truths, preds):
                match = match_boxes(t, confident(p, point.threshold))
                kept = confident(p, point.threshold)
                for outcome, lab in zip(match.prediction_outcomes, kept.labels):
                    if label is None or lab == label:
                        tp, fp = tp + (outcome == "tp"), fp + (outcome != "tp")
            assert (point.true_positives, point.false_positives) == (tp, fp), (curve.name, point.threshold)


def test_long_curves_are_thinned_for_plotting_but_the_best_point_is_exact():
    rng = np.random.default_rng(0)
    truths = [truth(i, [[10, 10, 50, 50]], [1]) for i in range(300)]
    scores = rng.uniform(0, 1, 300)
    preds = [predicted(i, [[10, 10, 50, 50]] if i % 3 else [[60, 60, 90, 90]], [1], [s]) for i, s in enumerate(scores)]
    circle = operating_points(truths, preds, ["circle"])[1]
    assert len(circle.points) == PLOT_POINTS
    thresholds = [p.threshold for p in circle.points]
    assert thresholds == sorted(thresholds, reverse=True)
    assert circle.points[0].threshold == pytest.approx(scores.max(), abs=1e-4)
    assert circle.points[-1].threshold == pytest.approx(scores.min(), abs=1e-4)
    hits = np.array([i % 3 != 0 for i in range(300)])
    f1s = []
    for t in np.unique(scores.astype(np.float32)):
        keep = scores.astype(np.float32) >= t
        tp = int((keep & hits).sum())
        f1s.append((2 * tp / (keep.sum() + 300), t))
    assert circle.best_f1.f1 == pytest.approx(max(f1s)[0], abs=1e-4)


def test_the_summary_a_deployment_is_told():
    truths = [truth(1, [[10, 10, 50, 50], [60, 60, 90, 90]], [1, 2])]
    preds = [predicted(1, [[10, 10, 50, 50], [60, 60, 90, 90], [0, 70, 20, 95]], [1, 2, 2], [0.9, 0.5, 0.7])]
    summary = best_f1_summary(operating_points(truths, preds, ["circle", "square"]))
    assert summary["threshold"] == 0.5 and summary["f1"] == 0.8  # 2 found, 1 false positive
    assert summary["per_class"] == {"circle": 0.8999, "square": 0.5}
    nothing = [predicted(1, [[0, 70, 20, 95]], [1], [0.9])]
    assert best_f1_summary(operating_points(truths, nothing, ["circle", "square"])) is None


@pytest.mark.parametrize("choose, target", [("accuracy", None), ("precision", None), ("recall", 1.5)])
def test_bad_rules_are_refused(choose, target):
    with pytest.raises(ValueError):
        operating_points(*two_circles(), ["circle"], choose=choose, target=target)


def test_confusion_counts_what_each_human_box_was_taken_for():
    """circle found; square taken for a circle; triangle missed; a circle where nothing is; a square below the
    threshold ignored; a second circle on the found circle is a box where nothing (free) is."""
    truths = [truth(1, [[10, 10, 50, 50], [60, 60, 90, 90], [0, 60, 30, 95]], [1, 2, 3])]
    preds = [predicted(1, [[10, 10, 50, 50], [61, 61, 90, 90], [70, 0, 95, 30], [0, 60, 30, 95], [11, 11, 50, 50]],
                       [1, 1, 1, 2, 1], [0.9, 0.8, 0.7, 0.2, 0.6])]
    confusion = confusion_matrix(truths, preds, ["circle", "square", "triangle"], threshold=0.5)
    assert confusion.classes == ["circle", "square", "triangle"]
    assert confusion.counts == [
        # circle square triangle missed
        [1, 0, 0, 0],  # circle
        [1, 0, 0, 0],  # square
        [0, 0, 0, 1],  # triangle
        [2, 0, 0, 0],  # nothing there
    ]
    lower = confusion_matrix(truths, preds, ["circle", "square", "triangle"], threshold=0.1)
    assert lower.counts[2] == [0, 1, 0, 0]  # the 0.2 square sits on the triangle


def test_confusion_of_images_without_boxes():
    truths = [truth(1, [], []), truth(2, [[10, 10, 50, 50]], [1])]
    preds = [predicted(1, [[10, 10, 50, 50]], [1], [0.9]), predicted(2, [], [], [])]
    assert confusion_matrix(truths, preds, ["circle"], threshold=0.5).counts == [[0, 1], [1, 0]]
