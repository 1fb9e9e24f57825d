"""Error review on constructed cases: the matcher's ties, stored per-box outcomes, and the review priority."""
import numpy as np
import pytest

from inference.detector import Detections
from inference.execution import _write_batch
from inference.matching import ImagePredictions, ImageTruth, match_boxes
from inference.models import BoxOutcome, Prediction
from inference.outcomes import box_outcomes_refresh
from inference.pipeline import ImageResult
from inference.ranking import count_anomaly, disagreement, image_uncertainty, review_priority
from review.models import Image, LabelClass
from review.services import BoxIn, image_boxes_save
from tests.factories import add_images, add_model_version, api_client, make_project, outcome_case


def _truth(boxes, labels):
    return ImageTruth(1, 100, 100, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64))


def _predicted(boxes, labels, scores):
    return ImagePredictions(1, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64),
                            np.array(scores, np.float32))


def test_equal_scores_keep_the_predictions_order_and_equal_overlaps_go_to_the_first_human_box():
    truth = _truth([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 1])
    match = match_boxes(truth, _predicted([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [1, 1, 1], [0.7] * 3))
    assert match.prediction_outcomes == ["tp", "tp", "fp"] and match.matched_truth[:2] == [0, 1]


def test_several_boxes_per_image_each_get_an_outcome():
    truth = _truth([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60], [80, 80, 95, 95]], [1, 2, 1, 2])
    match = match_boxes(truth, _predicted([[20, 20, 40, 40], [0, 0, 10, 10], [52, 50, 70, 62]], [2, 2, 1],
                                          [0.9, 0.8, 0.7]))
    assert match.prediction_outcomes == ["tp", "wrong_class", "poor_localisation"]
    assert match.truth_matched == [False, True, False, False]
    assert match.matched_truth == [1, 0, 2]


def test_disagreement_and_count_anomaly():
    same = _predicted([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2], [0.9, 0.9])
    assert disagreement(same, same) == 0.0
    assert disagreement(same, _predicted([], [], [])) == 1.0
    assert disagreement(_predicted([], [], []), _predicted([], [], [])) == 0.0
    assert disagreement(same, _predicted([[0, 0, 10, 10]], [1], [0.9])) == pytest.approx(1 - 2 / 3)
    reviewed = {1: 10, 2: 20, 3: 5}  # boxes per image -> reviewed images
    assert count_anomaly(2, reviewed) == 0.0 and count_anomaly(1, reviewed) == 0.5
    assert count_anomaly(3, reviewed) == pytest.approx(0.75) and count_anomaly(20, reviewed) == 1.0
    assert count_anomaly(3, {}) is None and count_anomaly(3, None) is None
    # Silence where every reviewed image holds objects (a blind model on a new domain) is as unusual as it gets;
    # where empty frames are common it is not.
    assert count_anomaly(0, reviewed) == 1.0 and count_anomaly(0, {0: 30, 1: 10}) == 0.0
    assert review_priority(uncertainty=1, disagreement=1, count_anomaly=1) == pytest.approx(1.0)


def _result(image, boxes, labels, scores):
    return ImageResult(image.pk, image.width, image.height, Detections(
        np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64), np.array(scores, np.float32)))


@pytest.mark.django_db
def test_an_uncertain_image_ranks_above_a_confident_one_and_shows_why():
    project = make_project()
    sure, unsure, crowded = add_images(project, 3, size=96)
    version = add_model_version(project)
    label_map = {1: project.label_classes.get(index=0).pk}
    _write_batch(version, [
        _result(sure, [[0, 0, 20, 20]], [1], [0.98]),
        _result(unsure, [[0, 0, 20, 20]], [1], [0.52]),
        _result(crowded, [[i * 4, 0, i * 4 + 3, 3] for i in range(12)], [1] * 12, [0.99] * 12),
    ], label_map, reviewed_counts={2: 4, 1: 1})
    ranked = list(Image.objects.filter(project=project).order_by("-priority").values_list("pk", flat=True))
    assert ranked == [unsure.pk, crowded.pk, sure.pk]
    crowded.refresh_from_db()
    assert crowded.count_anomaly == 1.0  # no reviewed image has 12 boxes
    assert crowded.disagreement is None  # only one version has predicted it
    # A second version that disagrees with the first on `sure` raises its priority.
    second = add_model_version(project)
    _write_batch(second, [_result(sure, [[50, 50, 90, 90]], [1], [0.98])], label_map, reviewed_counts={2: 4, 1: 1})
    sure.refresh_from_db()
    assert sure.disagreement == 1.0 and sure.priority == pytest.approx(0.3 * sure.uncertainty + 0.3 * 1.0 + 0.4 * (1 - 1 / 4))


@pytest.mark.django_db
def test_disagreement_is_with_the_newest_earlier_version_even_when_it_was_unsure():
    project = make_project()
    [image] = add_images(project, 1, size=96)
    label_map = {1: project.label_classes.get(index=0).pk}
    box = [[10, 10, 40, 40]]
    first, second, third = (add_model_version(project) for _ in range(3))
    _write_batch(first, [_result(image, box, [1], [0.95])], label_map)
    _write_batch(second, [_result(image, box, [1], [0.2])], label_map)  # the box again, below the threshold
    _write_batch(third, [_result(image, box, [1], [0.95])], label_map)
    image.refresh_from_db()
    # The second version showed nothing where the third shows a box: full disagreement, although the
    # first version agreed with the third.
    assert image.disagreement == 1.0


@pytest.mark.django_db
def test_outcomes_are_stored_and_follow_the_review():
    project = make_project()
    [image] = add_images(project, 1, size=96)
    version = add_model_version(project)
    circle, square = (LabelClass.objects.get(project=project, name=n) for n in ("circle", "square"))
    boxes = outcome_case(image, version, circle, square)
    assert box_outcomes_refresh(image_ids=[image.pk]) == 0  # unreviewed: nothing to judge by
    client = api_client(project.memberships.get().user)
    response = client.put(f"/api/v1/images/{image.pk}/boxes/", {"version": image.version, "boxes": boxes},
                          format="json")
    assert response.status_code == 200
    # The save queued the refresh for a worker (tests/integration/test_outcomes_worker.py runs one); do its work here.
    box_outcomes_refresh(image_ids=[image.pk])
    kinds = sorted(BoxOutcome.objects.filter(image=image, model_version=version).values_list("kind", flat=True))
    assert kinds == ["missed", "missed", "tp", "wrong_class"]  # the 0.3 box was never shown: not an error
    wrong = BoxOutcome.objects.get(kind="wrong_class")
    assert wrong.annotation.label_class == square and wrong.score == pytest.approx(0.8)
    client.post(f"/api/v1/images/{image.pk}/status/", {"status": "unreviewed"}, format="json")
    box_outcomes_refresh(image_ids=[image.pk])
    assert not BoxOutcome.objects.exists()


@pytest.mark.django_db
def test_outcomes_of_reviewed_images_are_written_with_new_predictions():
    project = make_project()
    [image] = add_images(project, 1, size=96)
    circle = LabelClass.objects.get(project=project, name="circle")
    image_boxes_save(image=image, user=None, version=image.version, boxes=[BoxIn(circle.pk, 10, 10, 20, 20)])
    version = add_model_version(project)
    _write_batch(version, [_result(image, [[10, 10, 30, 30], [50, 50, 70, 70]], [1, 1], [0.9, 0.95])],
                 {1: circle.pk})
    assert sorted(BoxOutcome.objects.values_list("kind", flat=True)) == ["fp", "tp"]
    later = add_model_version(project)
    _write_batch(later, [_result(image, [[10, 10, 30, 30]], [1], [0.9])], {1: circle.pk})
    _write_batch(version, [_result(image, [], [], [])], {1: circle.pk})  # a re-run replaces them
    assert list(BoxOutcome.objects.filter(model_version=version).values_list("kind", flat=True)) == ["missed"]
    # Another version's boxes and outcomes on the same image are not touched.
    assert list(BoxOutcome.objects.filter(model_version=later).values_list("kind", flat=True)) == ["tp"]
    assert Prediction.objects.filter(model_version=later).count() == 1


def test_uncertainty_peaks_at_the_threshold():
    assert image_uncertainty(np.array([], np.float32)) == 0.0
    assert image_uncertainty(np.array([0.99, 0.98])) < 0.05
    assert image_uncertainty(np.array([0.99, 0.5])) == pytest.approx(1.0)
    assert image_uncertainty(np.array([0.3])) == pytest.approx(0.6)
