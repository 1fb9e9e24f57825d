"""REST endpoints of the training app: training runs, snapshots and the comparison of two versions."""
import json

import pytest
from django.urls import reverse

from inference.models import ModelVersion, Prediction
from review.models import Annotation, Image, Role, Split
from review.services import label_class_create
from tests.factories import add_images, add_member, add_model_version, api_client, make_project, review_with_truth
from training.models import TrainingRun
from training.services import snapshot_freeze

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    project = make_project(holdout_fraction=0.4)
    for seed, image in enumerate(add_images(project, 12)):
        review_with_truth(image, seed=seed)
    return project


@pytest.fixture
def manager(project):
    return project.memberships.get(role=Role.MANAGER).user


def test_training_run_start_detail_cancel(project, manager):
    add_model_version(project)
    client = api_client(manager)
    url = reverse("api:training_run_list", args=[project.pk])
    created = client.post(url, {"epochs": 2, "batch_size": 2}, format="json")
    assert created.status_code == 201, created.data
    assert created.data["params"]["epochs"] == 2 and created.data["status"] == "queued"
    assert created.data["architecture"] == "ssdlite320_mobilenet_v3_large"
    run_id = created.data["id"]
    again = client.post(url, {}, format="json")
    assert again.status_code == 400 and "already has a training run" in again.data["detail"]

    TrainingRun.objects.filter(pk=run_id).update(loss_history=[{"step": 1, "epoch": 0, "loss": 2.5}])
    detail = client.get(reverse("api:training_run_detail", args=[run_id])).data
    assert detail["loss_history"] == [{"step": 1, "epoch": 0, "loss": 2.5}]
    listed = client.get(url).data["results"][0]
    assert listed["id"] == run_id and "loss_history" not in listed
    cancelled = client.post(reverse("api:training_run_cancel", args=[run_id]))
    assert cancelled.status_code == 200 and cancelled.data["cancel_requested"]


@pytest.mark.parametrize(("body", "field"), [
    ({"epochs": 0}, "epochs"),
    ({"epochs": "many"}, "epochs"),
    ({"learning_rate": 5}, "learning_rate"),
    ({"architecture": "yolo"}, "architecture"),
])
def test_training_run_refuses_bad_params(project, manager, body, field):
    response = api_client(manager).post(reverse("api:training_run_list", args=[project.pk]), body, format="json")
    assert response.status_code == 400 and field in response.data["fields"]
    assert not TrainingRun.objects.exists()


def test_training_run_refuses_too_few_reviews():
    empty = make_project()
    add_images(empty, 2)
    response = api_client(empty.memberships.get().user).post(
        reverse("api:training_run_list", args=[empty.pk]), {}, format="json")
    assert response.status_code == 400 and "Too few reviewed images" in response.data["detail"]


def test_snapshots_list_detail_download(project, manager):
    client = api_client(manager)
    snapshot_freeze(project=project, user=manager)  # as a training worker does when a run starts
    listing = client.get(reverse("api:snapshot_list", args=[project.pk])).data["results"]
    assert len(listing) == 1 and listing[0]["image_count"] == 12
    detail = client.get(reverse("api:snapshot_detail", args=[listing[0]["id"]])).data
    assert len(detail["train_image_ids"]) + len(detail["holdout_image_ids"]) == 12
    download = client.get(reverse("api:snapshot_download", args=[listing[0]["id"]]))
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    coco = json.loads(b"".join(download.streaming_content))
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    assert len(coco["images"]) == 12 and coco["annotations"]


def test_compare_two_versions_on_the_same_holdout_images(project):
    older, newer = add_model_version(project), add_model_version(project, activate=False)
    holdout = list(Image.objects.filter(project=project, split=Split.HOLDOUT).order_by("id"))
    assert len(holdout) >= 2
    for image in holdout:
        truth = list(image.annotations.all())
        for box in truth:  # the newer version finds every box exactly
            Prediction.objects.create(image=image, model_version=newer, label_class_id=box.label_class_id, x=box.x,
                                      y=box.y, w=box.w, h=box.h, score=0.9)
        # the older one finds the first box of the first image only, plus a confident false positive
        if image == holdout[0]:
            Prediction.objects.create(image=image, model_version=older, label_class_id=truth[0].label_class_id,
                                      x=truth[0].x, y=truth[0].y, w=truth[0].w, h=truth[0].h, score=0.9)
        Prediction.objects.create(image=image, model_version=older, label_class_id=truth[0].label_class_id,
                                  x=0, y=0, w=2, h=2, score=0.8)
    label_class_create(project=project, name="bicycle")  # added since: no held-out image has one
    client = api_client(add_member(project))
    url = reverse("api:model_version_compare", args=[project.pk])
    result = client.get(url, {"first": older.pk, "second": newer.pk}).data
    assert result["images"] == len(holdout)
    boxed = set(Annotation.objects.filter(image__in=holdout).values_list("label_class__name", flat=True))
    assert result["unjudged"] == [c.name for c in project.label_classes.order_by("index") if c.name not in boxed]
    assert "bicycle" in result["unjudged"]
    old_scores, new_scores = result["versions"]
    assert new_scores["map"] > 0.99 and old_scores["map"] < new_scores["map"]
    assert new_scores["errors"] == 0 and old_scores["errors"] > 0
    assert {row["image"] for row in result["fixed"]} == {i.pk for i in holdout}
    assert result["broke"] == []
    reverse_order = client.get(url, {"first": newer.pk, "second": older.pk}).data
    assert {row["image"] for row in reverse_order["broke"]} == {i.pk for i in holdout}

    other_version = add_model_version(make_project(name="Other"))
    for bad in ({"first": older.pk}, {"first": older.pk, "second": other_version.pk},
                {"first": older.pk, "second": newer.pk, "score_threshold": "high"}):
        response = client.get(url, bad)
        assert response.status_code == 400 and response.data["fields"], bad
    assert ModelVersion.objects.filter(project=project).count() == 2
