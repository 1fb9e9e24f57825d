"""Deleting a model version in a worker (inference/version_deletion.py): its predictions a chunk at a time,
progress, cancel (the version stays with what is left), the guards while it runs, the page and the API.

Who may call each page and endpoint is in tests/project/test_page_permissions.py and test_api_permissions.py.
"""
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from datasets.exports import ExportSpec, export_spec_check
from datasets.models import DatasetExport
from inference import version_deletion
from inference.models import (
    BoxOutcome, InferenceRun, ModelVersion, ModelVersionDeletion, OutcomeKind, Prediction, SuspectedError,
)
from inference.services import inference_run_create, model_version_activate
from inference.version_deletion import (
    model_version_deletion_cancel, model_version_deletion_execute, model_version_deletion_start,
)
from project.jobs import JobStatus
from review.models import Role
from tests.factories import UserFactory, add_images, add_member, api_client, make_project

pytestmark = pytest.mark.django_db

ARCH = "ssdlite320_mobilenet_v3_large"


@pytest.fixture
def scene():
    """v1 active and v2 not, each with 3 predictions on each of 4 images; v2's judged on one image."""
    project = make_project()
    images = add_images(project, 4, size=32)
    names = ["circle", "square", "triangle"]
    versions = []
    for number in (1, 2):
        version = ModelVersion.objects.create(project=project, number=number, architecture=ARCH, class_names=names,
                                              is_active=number == 1)
        version.weights.save(f"v{number}.safetensors", ContentFile(b"weights"))
        versions.append(version)
    label_class = project.label_classes.first()
    for version in versions:
        Prediction.objects.bulk_create(Prediction(image=image, model_version=version, label_class=label_class,
                                                  x=1, y=1, w=5, h=5, score=0.9) for image in images for _ in range(3))
    old = versions[1]
    judged = Prediction.objects.filter(model_version=old).order_by("pk")
    BoxOutcome.objects.bulk_create(
        [BoxOutcome(image_id=p.image_id, model_version=old, kind=OutcomeKind.FALSE_POSITIVE, prediction=p, label_class=label_class,
                    x=1, y=1, w=5, h=5, score=0.9) for p in judged]
        + [BoxOutcome(image=images[0], model_version=old, kind=OutcomeKind.MISSED, label_class=label_class,
                      x=9, y=9, w=5, h=5)])
    SuspectedError.objects.create(image=images[0], model_version=old, kind="class_swap", label_class=label_class,
                                  x=1, y=1, w=2, h=2)
    return {"project": project, "active": versions[0], "old": old, "images": images}


def _manager(project):
    return project.memberships.get(role=Role.MANAGER).user


def _start(version, django_capture_on_commit_callbacks, user=None) -> ModelVersionDeletion:
    with django_capture_on_commit_callbacks(execute=False) as queued:
        deletion = model_version_deletion_start(version=version, user=user)
    assert len(queued) == 1
    return deletion


def test_the_active_version_is_not_deleted(scene):
    with pytest.raises(ValidationError, match="is the active model: make another version active first"):
        model_version_deletion_start(version=scene["active"])
    assert not ModelVersionDeletion.objects.exists()


def test_the_worker_deletes_the_predictions_a_chunk_at_a_time_then_the_version(
        scene, monkeypatch, django_capture_on_commit_callbacks):
    old, active = scene["old"], scene["active"]
    weights = old.weights.name
    exports = {}
    for source, version in (("predictions", old), ("reviewed", None)):
        exports[source] = DatasetExport.objects.create(project=scene["project"], source=source, model_version=version,
                                                       status=JobStatus.SUCCEEDED)
        exports[source].file.save(f"{source}.zip", ContentFile(b"zip"))
    monkeypatch.setattr(version_deletion, "CHUNK", 5)
    deletion = _start(old, django_capture_on_commit_callbacks)
    assert (deletion.status, deletion.progress_total, deletion.version_number) == (JobStatus.QUEUED, 12, 2)
    chunks = []
    real_chunk = version_deletion._chunk_delete
    monkeypatch.setattr(version_deletion, "_chunk_delete", lambda run: chunks.append(real_chunk(run)) or chunks[-1])
    with django_capture_on_commit_callbacks(execute=True):
        deletion = model_version_deletion_execute(run_id=deletion.pk, progress_interval=0)
    assert chunks == [5, 5, 2, 0]
    assert (deletion.status, deletion.progress_done, deletion.progress_total, deletion.model_version) == (
        JobStatus.SUCCEEDED, 12, 12, None)
    assert not ModelVersion.objects.filter(pk=old.pk).exists() and not default_storage.exists(weights)
    assert not BoxOutcome.objects.exists() and not SuspectedError.objects.exists()
    # Its predictions' export went with it, file and all; the reviewed labels' export stays.
    assert list(DatasetExport.objects.all()) == [exports["reviewed"]]
    assert not default_storage.exists(exports["predictions"].file.name)
    assert default_storage.exists(exports["reviewed"].file.name)
    # The active version is untouched.
    assert Prediction.objects.filter(model_version=active).count() == 12 and Prediction.objects.count() == 12
    assert default_storage.exists(active.weights.name)


def test_a_cancel_between_chunks_keeps_the_version_with_what_is_left(
        scene, monkeypatch, django_capture_on_commit_callbacks):
    old = scene["old"]
    monkeypatch.setattr(version_deletion, "CHUNK", 5)
    deletion = _start(old, django_capture_on_commit_callbacks)
    real_chunk = version_deletion._chunk_delete

    def chunk_then_cancel(run):  # the manager presses Cancel after the first chunk
        deleted = real_chunk(run)
        model_version_deletion_cancel(deletion=deletion)
        return deleted
    monkeypatch.setattr(version_deletion, "_chunk_delete", chunk_then_cancel)
    deletion = model_version_deletion_execute(run_id=deletion.pk, progress_interval=0)
    assert (deletion.status, deletion.progress_done) == (JobStatus.CANCELLED, 5)
    assert ModelVersion.objects.filter(pk=old.pk).exists() and Prediction.objects.filter(model_version=old).count() == 7
    # The outcomes of the deleted predictions went with them; the others stay.
    assert BoxOutcome.objects.filter(model_version=old, prediction__isnull=False).count() == 7
    model_version_activate(version=old)  # a version no longer being deleted can be used again


def test_while_a_version_is_deleted_it_is_not_promoted_predicted_with_or_exported(
        scene, django_capture_on_commit_callbacks):
    project, old = scene["project"], scene["old"]
    with django_capture_on_commit_callbacks(execute=False):
        running = inference_run_create(project=project, user=None, model_version=old)
    _start(old, django_capture_on_commit_callbacks)
    running.refresh_from_db()
    assert running.cancel_requested  # its chunks stop at their next check
    with pytest.raises(ValidationError, match="being deleted; it cannot be made active"):
        model_version_activate(version=old)
    with pytest.raises(ValidationError, match="is being deleted"):
        inference_run_create(project=project, user=None, model_version=old)
    with pytest.raises(ValidationError, match="is being deleted"):
        export_spec_check(project, ExportSpec(format="coco", source="predictions", model_version=old))
    with pytest.raises(ValidationError, match="already being deleted"):
        model_version_deletion_start(version=old)
    assert InferenceRun.objects.count() == 1


def test_a_failed_deletion_says_why_and_keeps_the_version(scene, monkeypatch, django_capture_on_commit_callbacks):
    deletion = _start(scene["old"], django_capture_on_commit_callbacks)

    def broken(run):
        raise OSError("database went away")
    monkeypatch.setattr(version_deletion, "_chunk_delete", broken)
    deletion = model_version_deletion_execute(run_id=deletion.pk)
    assert deletion.status == JobStatus.FAILED
    assert deletion.error.startswith("The deletion failed (OSError: database went away); the version is kept")
    assert ModelVersion.objects.filter(pk=scene["old"].pk).exists()


def test_the_models_page_deletes_a_version_and_shows_the_progress(scene, client, django_capture_on_commit_callbacks):
    project, old = scene["project"], scene["old"]
    client.force_login(_manager(project))
    page = client.get(reverse("training:project_models", args=[project.pk])).content.decode()
    assert page.count("Delete v") == 1 and "Delete v2 and its predictions" in page  # not the active v1
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("inference:model_version_delete", args=[old.pk]), follow=True)
    assert "Deleting v2 (ssdlite320_mobilenet_v3_large) with its 12 predictions" in response.content.decode()
    page = response.content.decode()
    assert "being deleted" in page and 'id="version-deletions"' in page and "Make active" not in page
    refused = client.post(reverse("inference:model_version_delete", args=[scene["active"].pk]), follow=True)
    assert "is the active model" in refused.content.decode()
    client.force_login(add_member(project, Role.REVIEWER))
    assert client.post(reverse("inference:model_version_delete", args=[old.pk])).status_code == 403


def test_the_api_deletes_a_version_in_a_worker_and_follows_it(scene, django_capture_on_commit_callbacks):
    project, old = scene["project"], scene["old"]
    manager, annotator = _manager(project), add_member(project, Role.ANNOTATOR)
    assert api_client(annotator).delete(f"/api/v1/model-versions/{old.pk}/").status_code == 403
    refused = api_client(manager).delete(f"/api/v1/model-versions/{scene['active'].pk}/")
    assert refused.status_code == 400 and "is the active model" in str(refused.data)
    assert api_client(manager).get(f"/api/v1/model-versions/{old.pk}/").data["being_deleted"] is False
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client(manager).delete(f"/api/v1/model-versions/{old.pk}/")
    assert response.status_code == 202, response.data
    body = response.data
    assert response["Location"] == f"/api/v1/model-version-deletions/{body['id']}/"
    assert (body["model_version"], body["version_number"], body["status"], body["progress_total"]) == (
        old.pk, 2, "queued", 12)
    versions = api_client(annotator).get(f"/api/v1/projects/{project.pk}/model-versions/").data["results"]
    assert [(v["number"], v["being_deleted"]) for v in versions] == [(2, True), (1, False)]
    listed = api_client(annotator).get(f"/api/v1/projects/{project.pk}/model-version-deletions/").data["results"]
    assert [d["id"] for d in listed] == [body["id"]]
    model_version_deletion_execute(run_id=body["id"])
    done = api_client(annotator).get(response["Location"]).data
    assert (done["model_version"], done["status"], done["progress_done"]) == (None, "succeeded", 12)
    assert api_client(manager).get(f"/api/v1/model-versions/{old.pk}/").status_code == 404
    again = api_client(manager).post(f"/api/v1/model-version-deletions/{body['id']}/cancel/")
    assert again.status_code == 400 and "already succeeded" in str(again.data)


def test_the_admin_deletes_a_version_through_the_worker(scene, client, django_capture_on_commit_callbacks):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:inference_modelversion_delete", args=[scene["old"].pk])
    confirm = client.get(url).content.decode()
    assert "a worker deletes them" in confirm  # a count, not one line per prediction
    with django_capture_on_commit_callbacks(execute=False):
        client.post(url, {"post": "yes"})
    deletion = ModelVersionDeletion.objects.get()
    assert model_version_deletion_execute(run_id=deletion.pk).status == JobStatus.SUCCEEDED
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [1]
