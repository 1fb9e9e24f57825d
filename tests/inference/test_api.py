"""REST endpoints of the inference app: model versions, predictions and inference runs."""
import io

import pytest
from django.urls import reverse

from inference.models import InferenceRun, ModelVersion, Prediction
from review.models import Role
from tests.factories import add_images, add_member, add_model_version, api_client, make_project, tiny_weights

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return make_project()


@pytest.fixture
def manager(project):
    return project.memberships.get(role=Role.MANAGER).user


def weights_file(data: bytes, name: str = "base.safetensors"):
    file = io.BytesIO(data)
    file.name = name
    return file


def test_upload_base_weights_list_and_detail(project, manager):
    client = api_client(manager)
    url = reverse("api:model_version_list", args=[project.pk])
    response = client.post(url, {"weights": weights_file(tiny_weights(["circle", "square", "truck"])),
                                 "architecture": "ssdlite320_mobilenet_v3_large", "activate": "true",
                                 "note": "from the vendor"}, format="multipart")
    assert response.status_code == 201, response.data
    assert response.data["number"] == 1 and response.data["is_active"] is True
    assert response.data["class_names"] == ["circle", "square", "truck"]  # read from the weights' metadata
    assert project.label_classes.filter(name="truck").exists()  # a new name became a class
    listing = client.get(url).data
    assert [v["id"] for v in listing["results"]] == [response.data["id"]]
    detail = client.get(reverse("api:model_version_detail", args=[response.data["id"]])).data
    assert detail["training_run"] is None and detail["snapshot"] is None and detail["parent"] is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"architecture": "yolo9000"}, "architecture"),
    ({"weights": b"not a state dict"}, "weights"),
    ({"class_names": ["a", "b"]}, "weights"),  # the weights have three classes
    ({"weights": None}, "weights"),
])
def test_upload_refuses_bad_weights_and_changes_nothing(project, manager, fields, message):
    body = {"weights": weights_file(tiny_weights()), "architecture": "ssdlite320_mobilenet_v3_large"}
    for key, value in fields.items():
        if value is None:
            del body[key]
        else:
            body[key] = weights_file(value) if key == "weights" else value
    response = api_client(manager).post(reverse("api:model_version_list", args=[project.pk]), body,
                                        format="multipart")
    assert response.status_code == 400 and message in response.data["fields"], response.data
    assert not ModelVersion.objects.exists()


def test_promote_and_roll_back(project, manager):
    first = add_model_version(project)
    second = add_model_version(project, activate=False)
    ModelVersion.objects.filter(pk=second.pk).update(parent=first)
    client = api_client(manager)
    promoted = client.post(reverse("api:model_version_promote", args=[second.pk]))
    assert promoted.status_code == 200 and promoted.data["is_active"]
    assert not ModelVersion.objects.get(pk=first.pk).is_active
    back = client.post(reverse("api:model_version_rollback", args=[project.pk]))
    assert back.status_code == 200 and back.data["id"] == first.pk
    nowhere = client.post(reverse("api:model_version_rollback", args=[project.pk]))
    assert nowhere.status_code == 400 and "no earlier version" in nowhere.data["detail"]


def test_predictions_by_model_version(project):
    first = add_model_version(project)
    second = add_model_version(project, activate=False)
    image = add_images(project, 1)[0]
    circle = project.label_classes.first()
    for version, score in ((first, 0.9), (first, 0.2), (second, 0.7)):
        Prediction.objects.create(image=image, model_version=version, label_class=circle, x=1, y=1, w=5, h=5,
                                  score=score)
    client = api_client(add_member(project))
    url = reverse("api:prediction_list", args=[project.pk])
    active = client.get(url).data["results"]
    assert sorted(p["score"] for p in active) == [0.2, 0.9]
    assert [p["score"] for p in client.get(url, {"model_version": second.pk}).data["results"]] == [0.7]
    assert [p["score"] for p in client.get(url, {"min_score": 0.5}).data["results"]] == [0.9]
    other = make_project(name="Other")
    outsider_version = add_model_version(other)
    assert client.get(url, {"model_version": outsider_version.pk}).data["results"] == []


def test_inference_run_create_progress_cancel(project):
    add_model_version(project)
    images = add_images(project, 3)
    client = api_client(add_member(project, Role.REVIEWER))
    url = reverse("api:inference_run_list", args=[project.pk])
    created = client.post(url, {"scope": "ids", "image_ids": [images[0].pk, images[2].pk]}, format="json")
    assert created.status_code == 201, created.data
    assert created.data["progress_total"] == 2 and created.data["status"] == "queued"
    assert created.data["percent"] == 0.0
    run_id = created.data["id"]
    assert client.get(reverse("api:inference_run_detail", args=[run_id])).data["id"] == run_id
    assert [r["id"] for r in client.get(url).data["results"]] == [run_id]
    cancelled = client.post(reverse("api:inference_run_cancel", args=[run_id]))
    assert cancelled.status_code == 200 and cancelled.data["cancel_requested"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({"scope": "everything"}, "scope"),
    ({"scope": "ids", "image_ids": []}, "image_ids"),
    ({"scope": "ids", "image_ids": [999999]}, "image_ids"),
    ({"scope": "ids", "image_ids": ["x"]}, "image_ids"),
    ({"model_version": 999999}, "model_version"),
])
def test_inference_run_refuses_bad_input(project, body, field):
    add_model_version(project)
    add_images(project, 1)
    response = api_client(add_member(project, Role.REVIEWER)).post(
        reverse("api:inference_run_list", args=[project.pk]), body, format="json")
    assert response.status_code == 400 and field in response.data["fields"], response.data
    assert not InferenceRun.objects.exists()


def test_inference_run_needs_an_active_model(project):
    add_images(project, 1)
    response = api_client(add_member(project, Role.REVIEWER)).post(
        reverse("api:inference_run_list", args=[project.pk]), {}, format="json")
    assert response.status_code == 400 and "no active model" in response.data["detail"]


def test_weights_download_uploads_into_another_project(project, manager):
    """A version's weights travel: downloaded from one project, uploaded into another, same classes."""
    version = add_model_version(project)
    client = api_client(manager)
    response = client.get(reverse("api:model_version_weights", args=[version.pk]))
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    with version.weights.open("rb") as handle:
        assert data == handle.read()
    other = make_project(owner=manager)
    uploaded = client.post(reverse("api:model_version_list", args=[other.pk]),  # the file names its architecture
                           {"weights": weights_file(data)}, format="multipart")
    assert uploaded.status_code == 201, uploaded.data
    assert uploaded.data["class_names"] == list(version.class_names)
    assert uploaded.data["architecture"] == version.architecture


def test_weights_download_of_an_imported_version_is_404(project, manager):
    from inference.services import model_version_external_create
    version = model_version_external_create(project=project, name="vendor", class_names=["circle"], user=manager)
    response = api_client(manager).get(reverse("api:model_version_weights", args=[version.pk]))
    assert response.status_code == 404 and "no weights" in response.json()["detail"]
