"""Deleting a project in a worker (review/project_deletion.py): hidden at once, deleted a chunk at a time,
progress, cancel (the project comes back with what is left), failure, and the API.

The pages' and endpoints' access rules are in tests/project/test_page_permissions.py and
test_api_permissions.py; tests/integration/test_s3_media.py deletes a project through a real worker.
"""
import pytest
from django.core.management.base import CommandError
from django.core.files.storage import default_storage
from django.urls import reverse

from datasets.models import BucketWatch
from datasets.watches import bucket_watches_run
from inference.models import ModelVersion, Prediction, RerankRun
from project.cli import project_from_arg
from project.jobs import JobStatus
from review import project_deletion
from review.models import Image, Project, ProjectDeletion, Role
from review.project_deletion import project_deletion_cancel, project_deletion_execute, project_deletion_start
from tests.factories import UserFactory, add_images, add_member, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    project = make_project(name="Old cameras")
    images = add_images(project, 5, size=32)
    version = ModelVersion.objects.create(project=project, number=1, architecture="ssdlite320_mobilenet_v3_large",
                                          class_names=["circle", "square", "triangle"])
    label_class = project.label_classes.first()
    Prediction.objects.bulk_create(Prediction(image=image, model_version=version, label_class=label_class,
                                              x=1, y=1, w=5, h=5, score=0.9) for image in images for _ in range(3))
    return project


def _manager(project):
    return project.memberships.get(role=Role.MANAGER).user


def _start(project, django_capture_on_commit_callbacks, user=None) -> ProjectDeletion:
    with django_capture_on_commit_callbacks(execute=False) as queued:
        deletion = project_deletion_start(project=project, user=user)
    assert len(queued) == 1  # the worker's task, once the start commits
    return deletion


def test_a_deleted_project_is_gone_for_everyone_at_once(project, client, django_capture_on_commit_callbacks):
    reviewer = add_member(project, Role.REVIEWER)
    image = project.images.first()
    deletion = _start(project, django_capture_on_commit_callbacks, user=_manager(project))
    assert (deletion.status, deletion.progress_total, deletion.project_name) == (JobStatus.QUEUED, 5, "Old cameras")
    for user in (reviewer, _manager(project)):
        client.force_login(user)
        assert client.get(reverse("review:project_detail", args=[project.pk])).status_code == 404
        assert client.get(reverse("review:image_file", args=[image.pk])).status_code == 404
        assert project.name not in [p.name for p in client.get(reverse("review:project_list")).context["projects"]]
        assert api_client(user).get(f"/api/v1/images/{image.pk}/").status_code == 404
        assert api_client(user).get("/api/v1/projects/").data == []
    # Its manager follows the deletion on the project list; a reviewer does not see it there.
    assert [d.pk for d in client.get(reverse("review:project_list")).context["deletions"]] == [deletion.pk]
    client.force_login(reviewer)
    assert client.get(reverse("review:project_list")).context["deletions"] == []


def test_the_worker_deletes_the_images_a_chunk_at_a_time_then_the_project(
        project, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(project_deletion, "CHUNK", 2)
    files = list(project.images.values_list("file", flat=True))
    deletion = _start(project, django_capture_on_commit_callbacks)
    chunks = []
    real_images_delete = project_deletion.images_delete
    monkeypatch.setattr(project_deletion, "images_delete",
                        lambda images: chunks.append(real_images_delete(images=images)) or chunks[-1])
    with django_capture_on_commit_callbacks(execute=True):
        deletion = project_deletion_execute(run_id=deletion.pk, progress_interval=0)
    assert chunks == [2, 2, 1]
    assert (deletion.status, deletion.progress_done, deletion.progress_total, deletion.percent) == (
        JobStatus.SUCCEEDED, 5, 5, 100.0)
    assert deletion.project is None and deletion.project_name == "Old cameras"  # the record outlives the project
    assert not Project.objects.exists() and not Image.objects.exists() and not Prediction.objects.exists()
    assert not any(default_storage.exists(name) for name in files)
    assert project_deletion_execute(run_id=deletion.pk) is None  # a redelivered task: nothing left to do


def test_a_cancel_between_chunks_brings_the_project_back_with_what_is_left(
        project, client, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(project_deletion, "CHUNK", 2)
    deletion = _start(project, django_capture_on_commit_callbacks, user=_manager(project))
    real_images_delete = project_deletion.images_delete

    def delete_then_cancel(images):  # the manager presses Cancel on the project list after the first chunk
        deleted = real_images_delete(images=images)
        client.force_login(_manager(project))
        client.post(reverse("review:project_deletion_cancel", args=[deletion.pk]))
        return deleted
    monkeypatch.setattr(project_deletion, "images_delete", delete_then_cancel)
    deletion = project_deletion_execute(run_id=deletion.pk, progress_interval=0)
    assert (deletion.status, deletion.progress_done, deletion.progress_total) == (JobStatus.CANCELLED, 2, 5)
    assert project.images.count() == 3 and Prediction.objects.count() == 9
    assert client.get(reverse("review:project_detail", args=[project.pk])).status_code == 200


def test_a_queued_deletion_cancelled_changes_nothing(project, django_capture_on_commit_callbacks):
    deletion = _start(project, django_capture_on_commit_callbacks)
    deletion = project_deletion_cancel(deletion=deletion)
    assert deletion.status == JobStatus.CANCELLED
    assert project_deletion_execute(run_id=deletion.pk) is None  # its task, delivered later, does nothing
    assert project.images.count() == 5 and Prediction.objects.count() == 15
    with pytest.raises(Exception, match="already cancelled; there is nothing to cancel"):
        project_deletion_cancel(deletion=deletion)


def test_a_failed_deletion_says_why_and_the_project_comes_back(project, monkeypatch, client,
                                                               django_capture_on_commit_callbacks):
    deletion = _start(project, django_capture_on_commit_callbacks, user=_manager(project))

    def broken(images):
        raise OSError("storage unreachable")
    monkeypatch.setattr(project_deletion, "images_delete", broken)
    with django_capture_on_commit_callbacks(execute=False):
        deletion = project_deletion_execute(run_id=deletion.pk)
    assert deletion.status == JobStatus.FAILED
    assert deletion.error.startswith("The deletion failed (OSError: storage unreachable); the project is back")
    client.force_login(_manager(project))
    assert client.get(reverse("review:project_detail", args=[project.pk])).status_code == 200
    assert project.images.count() == 5
    # It stays on its requester's project list for a day, with the reason.
    assert [d.status for d in client.get(reverse("review:project_list")).context["deletions"]] == ["failed"]


def test_a_resumed_deletion_counts_what_an_earlier_attempt_deleted(project, django_capture_on_commit_callbacks):
    deletion = _start(project, django_capture_on_commit_callbacks)
    # A worker deleted three images, then died: the sweeper (or Celery) sends the task again.
    ProjectDeletion.objects.filter(pk=deletion.pk).update(status=JobStatus.RUNNING, attempts=1, progress_done=3)
    Image.objects.filter(pk__in=project.images.order_by("pk").values_list("pk", flat=True)[:3]).delete()
    deletion = project_deletion_execute(run_id=deletion.pk, progress_interval=0)
    assert (deletion.status, deletion.attempts, deletion.progress_done, deletion.progress_total) == (
        JobStatus.SUCCEEDED, 2, 5, 5)
    assert not Project.objects.exists()


def test_deleting_stops_the_projects_jobs_and_its_watches(project, django_capture_on_commit_callbacks):
    rerank = RerankRun.objects.create(project=project, score_threshold=0.4, status=JobStatus.RUNNING)
    other = make_project(name="Other")
    elsewhere = RerankRun.objects.create(project=other, score_threshold=0.4, status=JobStatus.RUNNING)
    watch = BucketWatch.objects.create(project=project, source_url="s3://cams/site-a/")
    _start(project, django_capture_on_commit_callbacks)
    rerank.refresh_from_db(), elsewhere.refresh_from_db()
    assert rerank.cancel_requested and not elsewhere.cancel_requested
    assert bucket_watches_run(watch_ids=[watch.pk]) == []  # no import into a project being deleted


def test_commands_do_not_find_a_project_being_deleted(project, django_capture_on_commit_callbacks):
    assert project_from_arg("Old cameras") == project
    _start(project, django_capture_on_commit_callbacks)
    for arg in ("Old cameras", str(project.pk)):
        with pytest.raises(CommandError, match="one being deleted does not count"):
            project_from_arg(arg)


def test_a_project_is_deleted_once(project, django_capture_on_commit_callbacks):
    _start(project, django_capture_on_commit_callbacks)
    with pytest.raises(Exception, match="This project is already being deleted."):
        project_deletion_start(project=project)
    assert ProjectDeletion.objects.count() == 1


def test_the_api_deletes_in_a_worker_and_follows_it(project, django_capture_on_commit_callbacks):
    manager, reviewer = _manager(project), add_member(project, Role.REVIEWER)
    assert api_client(reviewer).delete(f"/api/v1/projects/{project.pk}/").status_code == 403
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client(manager).delete(f"/api/v1/projects/{project.pk}/")
    assert response.status_code == 202, response.data
    body = response.data
    assert response["Location"] == f"/api/v1/project-deletions/{body['id']}/"
    assert (body["project"], body["project_name"], body["status"], body["progress_total"]) == (
        project.pk, "Old cameras", "queued", 5)
    assert api_client(manager).get(f"/api/v1/projects/{project.pk}/").status_code == 404
    assert api_client(manager).delete(f"/api/v1/projects/{project.pk}/").status_code == 404  # gone already
    assert api_client(reviewer).get(response["Location"]).status_code == 404  # not theirs to follow
    assert [d["id"] for d in api_client(manager).get("/api/v1/project-deletions/").data["results"]] == [body["id"]]

    project_deletion_execute(run_id=body["id"])
    done = api_client(manager).get(response["Location"]).data
    assert (done["project"], done["status"], done["progress_done"], done["percent"]) == (None, "succeeded", 5, 100.0)
    refused = api_client(manager).post(f"/api/v1/project-deletions/{body['id']}/cancel/")
    assert refused.status_code == 400 and "already succeeded" in str(refused.data)


def test_the_api_cancels_a_deletion(project, django_capture_on_commit_callbacks):
    manager = _manager(project)
    with django_capture_on_commit_callbacks(execute=False):
        deletion_id = api_client(manager).delete(f"/api/v1/projects/{project.pk}/").data["id"]
    response = api_client(manager).post(f"/api/v1/project-deletions/{deletion_id}/cancel/")
    assert response.status_code == 200 and response.data["status"] == "cancelled"
    assert api_client(manager).get(f"/api/v1/projects/{project.pk}/").data["image_count"] == 5


def test_staff_cancel_a_deletion_in_the_admin(project, client, django_capture_on_commit_callbacks):
    deletion = _start(project, django_capture_on_commit_callbacks)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(reverse("admin:review_projectdeletion_changelist"),
                           {"action": "cancel", "_selected_action": [deletion.pk]}, follow=True)
    assert f"Deletion #{deletion.pk} of Old cameras is stopping." in response.content.decode()
    deletion.refresh_from_db()
    assert deletion.status == JobStatus.CANCELLED and project.images.count() == 5


def test_no_job_of_a_project_being_deleted_starts(project, django_capture_on_commit_callbacks):
    """Pages and the API answer 404 already; the admin's actions and other direct callers are refused too."""
    from django.core.exceptions import ValidationError
    from django.core.files.base import ContentFile

    from datasets.exports import ExportSpec
    from datasets.models import DatasetExport, DatasetImport
    from datasets.services import dataset_export_start, dataset_import_start
    from inference.models import InferenceRun, ModelVersionDeletion
    from inference.services import inference_run_create, rerank_run_create
    from inference.version_deletion import model_version_deletion_start
    from training.models import TrainingRun
    from training.services import training_run_start

    version = ModelVersion.objects.get(project=project)
    _start(project, django_capture_on_commit_callbacks)
    starts = [
        lambda: inference_run_create(project=project, user=None, scope="all", model_version=version),
        lambda: rerank_run_create(project=project),
        lambda: training_run_start(project=project, user=None),
        lambda: dataset_export_start(project=project, user=None, spec=ExportSpec(format="coco")),
        lambda: dataset_import_start(project=project, user=None, file=ContentFile(b"{}"), name="labels.json"),
        lambda: model_version_deletion_start(version=version),
    ]
    for start in starts:
        with django_capture_on_commit_callbacks(execute=False) as queued, \
                pytest.raises(ValidationError, match="Old cameras is being deleted"):
            start()
        assert not queued
    for model in (InferenceRun, RerankRun, TrainingRun, DatasetExport, DatasetImport, ModelVersionDeletion):
        assert not model.objects.exists(), model
