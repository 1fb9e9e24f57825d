import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inference.matching import ImagePredictions, ImageTruth, match_boxes
from training.evaluation import (RECALL_STEPS, ClassTable, coco_evaluate, map_gain_interval, map_gains, map_of_groups, map_of_resample,
                                 map_of_resamples, tag_changes)

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


def noisy_world(seed: int, images: int = 30, jitter: float = 2.0, misses: float = 0.2):
    """Human boxes of three classes, and a model that finds them with `jitter` pixels of error, misses some,
    mistakes some classes and adds boxes where nothing is."""
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for image_id in range(1, images + 1):
        count = int(rng.integers(0, 5))
        xy = rng.uniform(0, 60, (count, 2))
        boxes = np.hstack([xy, xy + rng.uniform(10, 40, (count, 2))])
        labels = rng.integers(1, 4, count)
        truths.append(ImageTruth(image_id, 100, 100, boxes.astype(np.float32), labels))
        kept = rng.random(count) > misses
        found = boxes[kept] + rng.normal(0, jitter, (int(kept.sum()), 4))
        found_labels = np.where(rng.random(int(kept.sum())) < 0.1, rng.integers(1, 4, int(kept.sum())), labels[kept])
        extra = int(rng.integers(0, 3))
        ghost_xy = rng.uniform(0, 70, (extra, 2))
        ghosts = np.hstack([ghost_xy, ghost_xy + 20])
        preds.append(ImagePredictions(image_id, np.vstack([found, ghosts]).astype(np.float32),
                                      np.concatenate([found_labels, rng.integers(1, 4, extra)]),
                                      np.concatenate([rng.uniform(0.3, 1.0, len(found)),
                                                      rng.uniform(0.05, 0.8, extra)]).astype(np.float32)))
    return truths, preds


def pycocotools_as_shipped(truths, preds, classes) -> tuple[float, float, dict]:
    """mAP, AP50 and per-class AP from COCOeval with its default parameters and its own summary (human box
    ids from 1: COCOeval takes a match with id 0 for none)."""
    gt = COCO()
    gt.dataset = {"images": [{"id": t.image_id, "width": t.width, "height": t.height} for t in truths],
                  "categories": [{"id": n + 1, "name": name} for n, name in enumerate(classes)],
                  "annotations": [{"id": n + 1, "image_id": t.image_id, "category_id": int(label), "iscrowd": 0,
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
                                  for n, (t, (x1, y1, x2, y2), label) in enumerate(
                                      (t, box, label) for t in truths for box, label in
                                      zip(t.boxes_xyxy.tolist(), t.labels.tolist()))]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes([
            {"image_id": p.image_id, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
            for p in preds for (x1, y1, x2, y2), label, score in zip(p.boxes_xyxy.tolist(), p.labels.tolist(),
                                                                     p.scores.tolist())]), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]
    per_class = {name: precision[:, :, k, 0, -1][precision[:, :, k, 0, -1] > -1].mean()
                 for k, name in enumerate(classes) if (precision[:, :, k, 0, -1] > -1).any()}
    return evaluator.stats[0], evaluator.stats[1], per_class


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_figures_are_pycocotools_own_with_its_default_parameters(seed):
    """coco_evaluate reads COCO's 'all' area range only; the figures are the ones COCOeval gives as shipped."""
    truths, preds = noisy_world(seed, images=40)
    classes = ["a", "b", "c", "never drawn"]
    result = coco_evaluate(truths, preds, classes)
    expected_map, expected_ap50, expected_per_class = pycocotools_as_shipped(truths, preds, classes)
    assert 0.05 < result.map < 0.95
    assert (result.map, result.ap50) == (pytest.approx(expected_map, abs=1e-12), pytest.approx(expected_ap50, abs=1e-12))
    assert result.per_class == pytest.approx(expected_per_class, abs=1e-12) and "never drawn" not in result.per_class


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_map_of_the_images_as_they_are_is_pycocotools_own(seed):
    truths, preds = noisy_world(seed)
    result = coco_evaluate(truths, preds, ["a", "b", "c"])
    assert 0.05 < result.map < 0.95
    assert map_of_resample(result.tables, np.ones(len(truths))) == pytest.approx(result.map, abs=1e-9)
    # drawing an image twice is the same as evaluating a copy of it under another id
    doubled = truths + [ImageTruth(t.image_id + 1000, t.width, t.height, t.boxes_xyxy, t.labels) for t in truths[:10]]
    doubled_preds = preds + [ImagePredictions(p.image_id + 1000, p.boxes_xyxy, p.labels, p.scores) for p in preds[:10]]
    counts = np.array([2.0] * 10 + [1.0] * (len(truths) - 10))
    assert map_of_resample(result.tables, counts) == pytest.approx(
        coco_evaluate(doubled, doubled_preds, ["a", "b", "c"]).map, abs=0.01)


def test_the_gain_interval_says_how_sure_a_gain_is():
    truths, sharp = noisy_world(0, images=60, jitter=1.0, misses=0.05)
    _, blurry = noisy_world(0, images=60, jitter=8.0, misses=0.4)
    better, worse = (coco_evaluate(truths, preds, ["a", "b", "c"]) for preds in (sharp, blurry))
    low, high = map_gain_interval(better, worse)
    assert 0 < low < better.map - worse.map < high  # clearly better: the whole interval above 0
    assert map_gain_interval(better, better) == (0.0, 0.0)
    few = truths[:6]
    low_few, high_few = map_gain_interval(*(coco_evaluate(few, preds[:6], ["a", "b", "c"]) for preds in (sharp, blurry)))
    assert high_few - low_few > high - low  # six images say less than sixty


@pytest.mark.parametrize("seed", [0, 1])
def test_the_map_of_a_group_of_images_is_pycocotools_own_on_those_images(seed):
    truths, preds = noisy_world(seed)
    result = coco_evaluate(truths, preds, ["a", "b", "c"])
    groups = {"gate": range(0, 12), "yard": [3, 15, 16, 29]}
    scores = map_of_groups(result, groups)
    for name, positions in groups.items():
        alone = coco_evaluate([truths[n] for n in positions], [preds[n] for n in positions], ["a", "b", "c"])
        assert scores[name] == pytest.approx(alone.map, abs=1e-9), name
    assert scores["gate"] != scores["yard"]


def test_resamples_worked_out_together_are_each_worked_out_alone():
    truths, preds = noisy_world(3, images=25)
    result = coco_evaluate(truths, preds, ["a", "b", "c"])
    counts = np.random.default_rng(0).integers(0, 3, (40, 25)).astype(float)
    counts[0] = 0.0  # a resample with no human box at all scores 0, as one alone does
    together = map_of_resamples(result.tables, counts)
    alone = [map_of_resample(result.tables, row) for row in counts]
    assert together == pytest.approx(alone, abs=1e-12) and together[0] == 0.0
    assert len(set(np.round(together, 9))) > 20  # the draws differ, and so do their scores


def coco_accumulate_read(table: ClassTable, counts: np.ndarray) -> float:
    """One class's AP@[.5:.95] read as COCOeval.accumulate reads it, on the detections written out as
    many times as their image is drawn: the plain reading the fast one must equal."""
    copies = counts[table.image].astype(int)
    tp, fp = np.repeat(table.tp, copies, axis=1), np.repeat(table.fp, copies, axis=1)
    truths = counts @ table.truths
    aps = []
    for t in range(tp.shape[0]):
        found, wrong = np.cumsum(tp[t]).astype(float), np.cumsum(fp[t]).astype(float)
        recall, precision = found / max(truths, np.spacing(1)), list(found / np.maximum(found + wrong, np.spacing(1)))
        for i in range(len(precision) - 1, 0, -1):
            precision[i - 1] = max(precision[i - 1], precision[i])
        at = np.searchsorted(recall, RECALL_STEPS, side="left")
        aps.append(np.mean([precision[i] if i < len(precision) else 0.0 for i in at]))
    return float(np.mean(aps))


def test_the_fast_reading_of_resamples_is_coco_s_reading_of_every_detection():
    """Detections ignored at some IoU thresholds and not others, images drawn 0 to 2 times, more true
    positives than human boxes: every case the true-positives-only reading must get right."""
    rng = np.random.default_rng(1)
    for trial in range(60):
        images, detections = 12, int(rng.integers(0, 60))
        tp = rng.random((10, detections)) < rng.random()
        ignored = rng.random((10, detections)) < (0.2 if trial % 2 else 0.0)
        tp &= ~ignored
        table = ClassTable(rng.integers(0, images, detections), tp, ~tp & ~ignored,
                           rng.integers(0, 4, images).astype(float))
        counts = rng.integers(0, 3, (8, images)).astype(float)
        expected = [coco_accumulate_read(table, row) if row @ table.truths > 0 else 0.0 for row in counts]
        assert map_of_resamples([table], counts) == pytest.approx(expected, abs=1e-12), trial


def test_a_tag_s_resamples_draw_its_images_only():
    truths, sharp = noisy_world(0, images=60, jitter=1.0, misses=0.05)
    _, blurry = noisy_world(0, images=60, jitter=8.0, misses=0.4)
    # the first 20 images sharper in the new model's eyes, the rest the same in both
    new_preds = sharp[:20] + blurry[20:]
    new, old = (coco_evaluate(truths, preds, ["a", "b", "c"]) for preds in (new_preds, blurry))
    assert (map_gains(new, old, positions=range(20, 60)) == 0).all()  # the images where nothing changed
    assert (map_gains(new, old, positions=range(20)) > 0).mean() > 0.95


def test_a_clear_loss_on_a_tag_is_told_from_chance():
    truths, sharp = noisy_world(0, images=60, jitter=1.0, misses=0.05)
    _, blurry = noisy_world(0, images=60, jitter=8.0, misses=0.4)
    new_preds = sharp[:40] + blurry[40:]  # better on 0-39, worse on 40-59 ("night")
    new, old = (coco_evaluate(truths, preds, ["a", "b", "c"]) for preds in (new_preds, sharp[:40] + sharp[40:]))
    groups = {"day": range(0, 40), "night": range(40, 60), "few": range(40, 45)}
    changes = tag_changes(new, old, groups, min_images=10)
    assert set(changes) == {"day", "night"}  # 5 images are too few to judge
    assert changes["night"]["clear_loss"] and changes["night"]["interval"][1] < 0
    night_loss = map_of_groups(new, groups)["night"] - map_of_groups(old, groups)["night"]
    assert night_loss < changes["night"]["bound"] < 0  # worse beyond chance, by less than the mean loss
    assert not changes["day"]["clear_loss"] and changes["day"]["interval"] == (0.0, 0.0) == (changes["day"]["bound"],) * 2
    # a model compared with a near twin (one box less on one image) loses nothing clearly anywhere
    twin = list(sharp)
    first = next(n for n, p in enumerate(twin) if len(p.scores) > 1)
    p = twin[first]
    twin[first] = type(p)(p.image_id, p.boxes_xyxy[1:], p.labels[1:], p.scores[1:])
    near = coco_evaluate(truths, twin, ["a", "b", "c"])
    full = coco_evaluate(truths, sharp, ["a", "b", "c"])
    groups = {f"tag {n}": range(n * 6, n * 6 + 12) for n in range(9)}
    assert not any(change["clear_loss"] for change in tag_changes(near, full, groups, min_images=10).values())

