import numpy as np
import pytest

from inference.matching import ImagePredictions, ImageTruth, match_boxes
from training.evaluation import coco_evaluate

CLASSES = ["circle", "square"]


def truth(image_id, boxes, labels):
    return ImageTruth(image_id, 100, 100, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels))


def predicted(image_id, boxes, labels, scores):
    return ImagePredictions(image_id, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels),
                            np.array(scores, np.float32))


def test_perfect_predictions_score_one():
    truths = [truth(1, [[10, 10, 50, 50], [60, 60, 90, 90]], [1, 2]), truth(2, [[5, 5, 40, 30]], [1])]
    preds = [predicted(t.image_id, t.boxes_xyxy, t.labels, [0.9] * len(t.labels)) for t in truths]
    result = coco_evaluate(truths, preds, CLASSES)
    assert result.map == pytest.approx(1.0) and result.ap50 == pytest.approx(1.0)
    assert result.per_class == {"circle": pytest.approx(1.0), "square": pytest.approx(1.0)}


def test_hand_computed_case():
    """Two circles; the model finds one exactly (score 0.9) and puts a 0.8 box on empty ground.

    Precision/recall points: (1.0, 0.5) then (0.5, 0.5): recall never reaches 1, so COCO's 101-point
    interpolated AP is 51/101 (recall 0.00..0.50 at precision 1) at every IoU threshold.
    """
    truths = [truth(1, [[10, 10, 50, 50], [60, 60, 90, 90]], [1, 1])]
    preds = [predicted(1, [[10, 10, 50, 50], [0, 70, 20, 95]], [1, 1], [0.9, 0.8])]
    result = coco_evaluate(truths, preds, ["circle"])
    assert result.ap50 == pytest.approx(51 / 101, abs=1e-6)
    assert result.map == pytest.approx(51 / 101, abs=1e-6)


def test_no_predictions_score_zero():
    assert coco_evaluate([truth(1, [[10, 10, 50, 50]], [1])], [], CLASSES).map == 0.0


def test_matcher_tells_the_kinds_of_error_apart():
    t = truth(1, [[10, 10, 50, 50], [60, 60, 90, 90], [0, 60, 20, 80]], [1, 2, 1])
    p = predicted(1, [[11, 11, 50, 50],    # tp
                      [60, 60, 90, 90],    # right place, class 1 instead of 2: wrong_class
                      [0, 60, 12, 70],     # overlaps the third truth a little: poor_localisation
                      [70, 0, 95, 20]],    # nothing there: fp
                  [1, 1, 1, 2], [0.9, 0.8, 0.7, 0.6])
    match = match_boxes(t, p)
    assert match.prediction_outcomes == ["tp", "wrong_class", "poor_localisation", "fp"]
    assert match.truth_matched == [True, False, False] and match.false_negatives == 2
    assert match.matched_truth[0] == 0


def test_matcher_gives_each_human_box_to_one_prediction():
    t = truth(1, [[10, 10, 50, 50]], [1])
    p = predicted(1, [[10, 10, 50, 50], [10, 10, 51, 51]], [1, 1], [0.6, 0.9])
    # The higher-scored box takes the human box; the other, same class and place, has nothing left.
    assert match_boxes(t, p).prediction_outcomes == ["fp", "tp"]
