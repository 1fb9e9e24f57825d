"""Which score threshold to deploy a version at: the API and the page over stored predictions."""
import pytest
from django.urls import reverse

from inference.models import Prediction
from review.models import Annotation, Image, ReviewStatus, Role, Split
from tests.factories import add_images, add_member, add_model_version, api_client, make_project, review_with_truth

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged():
    """Five reviewed holdout images: the version finds every box (0.9) and adds one false box per image (0.6).
    Beside them, images that must not count: a reviewed training image and an unreviewed holdout image
    (both predicted, all wrong), and a reviewed holdout image the version never predicted."""
    project = make_project()
    images = add_images(project, 8, size=96)
    for seed, image in enumerate(images[:7]):
        review_with_truth(image, seed=seed, size=96)
    Image.objects.filter(pk__in=[i.pk for i in images]).update(split=Split.HOLDOUT)
    Image.objects.filter(pk=images[5].pk).update(split=Split.TRAIN)
    Image.objects.filter(pk=images[7].pk).update(status=ReviewStatus.UNREVIEWED)
    version = add_model_version(project)
    circle = project.label_classes.get(name="circle")
    rows = []
    for image in images[:5]:
        for a in Annotation.objects.filter(image=image):
            rows.append(Prediction(image=image, model_version=version, label_class_id=a.label_class_id,
                                   x=a.x, y=a.y, w=a.w, h=a.h, score=0.9))
        rows.append(Prediction(image=image, model_version=version, label_class=circle, x=0, y=0, w=3, h=3, score=0.6))
    for image in (images[5], images[7]):
        rows.append(Prediction(image=image, model_version=version, label_class=circle, x=0, y=0, w=3, h=3, score=0.95))
    Prediction.objects.bulk_create(rows)
    human = Annotation.objects.filter(image__in=images[:5]).count()
    assert human > 0
    return project, version, human


def test_the_api_gives_each_threshold_and_picks_one_by_the_rule_asked(judged):
    project, version, human = judged
    client = api_client(add_member(project, Role.ANNOTATOR))  # reading is for every member
    url = reverse("api:model_version_operating_points", args=[version.pk])
    body = client.get(url).json()
    assert (body["images"], body["holdout_reviewed"], body["choose"]) == (5, 6, "f1")
    pooled = body["curves"][0]
    assert pooled["name"] == "all classes" and (pooled["human_boxes"], pooled["predictions"]) == (human, human + 5)
    assert pooled["best_f1"] == pooled["chosen"] == {
        "threshold": 0.8999, "precision": 1.0, "recall": 1.0, "f1": 1.0, "true_positives": human,
        "false_positives": 0, "missed": 0}
    assert [p["threshold"] for p in pooled["points"]] == [0.8999, 0.6]
    assert pooled["points"][1]["false_positives"] == 5
    assert sum(c["human_boxes"] for c in body["curves"][1:]) == human

    confusion = body["confusion"]
    n = len(confusion["classes"])
    assert confusion["threshold"] == 0.8999 and len(confusion["counts"]) == n + 1
    assert sum(confusion["counts"][i][i] for i in range(n)) == human  # every box found at 0.9 ...
    assert sum(map(sum, confusion["counts"])) == human  # ... and nothing else kept there
    by_precision = client.get(url, {"choose": "precision", "target": "0.1"}).json()["confusion"]
    assert by_precision["threshold"] == 0.6 and by_precision["counts"][n][0] == 5  # the 5 false circles

    by_recall = client.get(url, {"choose": "recall", "target": "1"}).json()["curves"][0]["chosen"]
    assert by_recall["threshold"] == 0.8999
    strict = client.get(url, {"choose": "precision", "target": "1.0"}).json()["curves"][0]["chosen"]
    assert strict["threshold"] == 0.8999


@pytest.mark.parametrize("query, field", [({"choose": "precision"}, "target"), ({"choose": "recall", "target": "2"}, "target"),
                                          ({"choose": "accuracy"}, "choose"), ({"target": "x"}, "target")])
def test_bad_rules_are_refused_by_name(judged, query, field):
    project, version, _ = judged
    client = api_client(add_member(project, Role.ANNOTATOR))
    response = client.get(reverse("api:model_version_operating_points", args=[version.pk]), query)
    assert response.status_code == 400 and field in str(response.json())


def test_only_members_see_a_version_s_thresholds(judged):
    _, version, _ = judged
    outsider = add_member(make_project(), Role.MANAGER)
    assert api_client(outsider).get(reverse("api:model_version_operating_points", args=[version.pk])).status_code == 404
    assert api_client().get(reverse("api:model_version_operating_points", args=[version.pk])).status_code in (401, 403)


def test_the_page_shows_the_chosen_threshold_and_says_what_it_left_out(judged, client):
    project, version, human = judged
    client.force_login(add_member(project, Role.ANNOTATOR))
    models = client.get(reverse("training:project_models", args=[project.pk])).content.decode()
    assert reverse("training:thresholds", args=[version.pk]) in models
    page = client.get(reverse("training:thresholds", args=[version.pk])).content.decode()
    table = page.split('id="operating-points"')[1].split("</table>")[0]
    first_row = table.split('data-curve="all classes"')[1].split("</tr>")[0]
    assert '<td class="threshold">0.900</td>' in first_row and f"<td>{human}</td>" in first_row
    assert 'id="unpredicted"' in page and "6 holdout images are reviewed" in page
    assert 'id="threshold-data"' in page
    confusion = page.split('id="confusion"')[1].split("</table>")[0]
    assert "<th>nothing there</th>" in confusion and "<th>missed</th>" in confusion and 'class="found"' in confusion


def test_a_bad_rule_on_the_page_says_so_and_shows_the_best_f1(judged, client):
    project, version, _ = judged
    client.force_login(add_member(project, Role.ANNOTATOR))
    page = client.get(reverse("training:thresholds", args=[version.pk]), {"choose": "precision"}).content.decode()
    assert 'class="error"' in page and "target" in page
    assert '<td class="threshold">0.900</td>' in page


def test_a_version_with_nothing_to_judge_says_why(client):
    project = make_project()
    version = add_model_version(project)
    client.force_login(add_member(project, Role.ANNOTATOR))
    page = client.get(reverse("training:thresholds", args=[version.pk])).content.decode()
    assert 'id="no-holdout"' in page and 'id="operating-points"' not in page
    outsider = add_member(make_project(), Role.MANAGER)
    client.force_login(outsider)
    assert client.get(reverse("training:thresholds", args=[version.pk])).status_code == 404


def test_the_page_s_matrix_leaves_out_classes_with_no_box_either_way():
    from training.views import _confusion_without_empty_classes

    # rows: human a, b, c, nothing there; columns: kept as a, b, c, missed. b: no human box, never kept.
    confusion = {"classes": ["a", "b", "c"], "counts": [[5, 0, 1, 2],
                                                       [0, 0, 0, 0],
                                                       [0, 0, 3, 1],
                                                       [2, 0, 0, 0]]}
    names, counts = _confusion_without_empty_classes(confusion)
    assert names == ["a", "c"]
    assert counts == [[5, 1, 2], [0, 3, 1], [2, 0, 0]]  # a and c still on the diagonal
    confusion["counts"][3][1] = 4  # b kept on empty ground: it stays, as a column and as its (empty) row
    assert _confusion_without_empty_classes(confusion)[0] == ["a", "b", "c"]
