"""Import and export over the REST API, with the job run in-process (the worker path is in tests/integration)."""
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets.execution import dataset_export_execute, dataset_import_execute
from datasets.models import DatasetExport, DatasetImport
from project.jobs import JobStatus
from review.models import Image, Role
from tests.datasets.helpers import coco_doc, scene_png, zip_of
from tests.factories import add_images, add_member, api_client, make_project, review_with_truth

pytestmark = pytest.mark.django_db


def _manager(project):
    return api_client(project.memberships.get(role=Role.MANAGER).user)


def _upload(client, project, files: dict, **fields):
    archive = SimpleUploadedFile("data.zip", zip_of(files).getvalue(), content_type="application/zip")
    return client.post(f"/api/v1/projects/{project.pk}/imports/", {"file": archive, **fields}, format="multipart")


def test_import_is_queued_then_reports_per_file(django_capture_on_commit_callbacks):
    project = make_project()
    client = _manager(project)
    doc = coco_doc([("a.png", 96, 96), ("b.png", 96, 96)], [(0, "circle", [1, 1, 10, 10]), (1, "circle", [1, 1, 500, 1])])
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = _upload(client, project, {"a.png": scene_png(1), "b.png": scene_png(2), "l.json": json.dumps(doc)},
                           partial="true")
    assert response.status_code == 202, response.data
    assert response.data["status"] == "queued" and len(queued) == 1
    job = dataset_import_execute(job_id=response.data["id"], progress_interval=0)
    body = client.get(f"/api/v1/imports/{job.pk}/").data
    assert body["status"] == "succeeded" and body["percent"] == 100.0 and body["detected_format"] == "coco"
    assert body["report"]["images_added"] == 1 and body["report"]["rejected"][0]["file"] == "b.png"
    assert not DatasetImport.objects.get(pk=job.pk).file  # the upload is deleted once recorded


def test_refused_import_fails_with_the_reason_and_stores_nothing():
    project = make_project()
    response = _upload(_manager(project), project, {"a.png": scene_png(1), "bad.png": b"GIF89a not really"})
    job = dataset_import_execute(job_id=response.data["id"], progress_interval=0)
    assert job.status == JobStatus.FAILED and "1 file was refused, so nothing was imported" in job.error
    assert job.report["rejected"][0]["file"] == "bad.png" and not Image.objects.exists()


def test_unsafe_archive_fails_clearly():
    project = make_project()
    response = _upload(_manager(project), project, {"../../evil.png": scene_png(1)})
    job = dataset_import_execute(job_id=response.data["id"], progress_interval=0)
    assert job.status == JobStatus.FAILED and "points outside the archive" in job.error


@pytest.mark.parametrize(("name", "fields", "message"), [
    ("x.tar", {}, "Upload a .zip"),
    ("x.zip", {"format": "csv"}, "format"),
])
def test_bad_import_requests_are_400_and_create_nothing(name, fields, message):
    project = make_project()
    upload = SimpleUploadedFile(name, b"data")
    response = _manager(project).post(f"/api/v1/projects/{project.pk}/imports/", {"file": upload, **fields},
                                      format="multipart")
    assert response.status_code == 400 and message in response.data["detail"]
    assert not DatasetImport.objects.exists()


def test_only_managers_import_and_export():
    project = make_project()
    client = api_client(add_member(project, Role.REVIEWER))
    assert _upload(client, project, {"a.png": scene_png(1)}).status_code == 403
    assert client.post(f"/api/v1/projects/{project.pk}/exports/", {"format": "coco"}, format="json").status_code == 403


def test_cancel_a_queued_import():
    project = make_project()
    client = _manager(project)
    job_id = _upload(client, project, {"a.png": scene_png(1)}).data["id"]
    assert client.post(f"/api/v1/imports/{job_id}/cancel/").data["status"] == "cancelled"
    assert dataset_import_execute(job_id=job_id) is None and not Image.objects.exists()


def test_cancel_during_reading_keeps_nothing(monkeypatch, media_root):
    from datasets import imports

    project = make_project()
    job_id = _upload(_manager(project), project, {f"{n}.png": scene_png(n) for n in range(3)}).data["id"]
    read_one, seen = imports._read_one, []

    def read_then_cancel(*args, **kwargs):  # the user presses cancel while the second image is read
        seen.append(read_one(*args, **kwargs))
        if len(seen) == 2:
            DatasetImport.objects.filter(pk=job_id).update(cancel_requested=True)
        return seen[-1]
    monkeypatch.setattr(imports, "_read_one", read_then_cancel)
    job = dataset_import_execute(job_id=job_id, progress_interval=0)
    assert job.status == JobStatus.CANCELLED and len(seen) == 2 and not Image.objects.exists()
    stored = [p for p in media_root.rglob("*") if p.is_file()]
    assert stored == []  # the two images read before the cancel were deleted, and so was the upload


def test_export_download_streams_the_zip():
    project = make_project()
    for seed, image in enumerate(add_images(project, 3, size=96)):
        review_with_truth(image, seed=seed, size=96)
    client = _manager(project)
    response = client.post(f"/api/v1/projects/{project.pk}/exports/", {"format": "yolo"}, format="json")
    assert response.status_code == 202 and response.data["download_ready"] is False
    assert client.get(f"/api/v1/exports/{response.data['id']}/download/").status_code == 404
    job = dataset_export_execute(job_id=response.data["id"], progress_interval=0)
    assert job.status == JobStatus.SUCCEEDED and job.image_count == 3 and job.progress_done == 3
    download = client.get(f"/api/v1/exports/{job.pk}/download/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "data.yaml" in archive.namelist() and archive.testzip() is None


@pytest.mark.parametrize(("body", "message"), [
    ({"format": "csv"}, "format"),
    ({"format": "coco", "source": "predictions"}, "model_version"),
    ({"format": "coco", "source": "predictions", "model_version": 999999}, "model_version"),
    ({"format": "coco", "source": "snapshot"}, "snapshot"),
    ({"format": "coco", "min_score": 2}, "min_score"),
])
def test_bad_export_requests_are_400(body, message):
    project = make_project()
    response = _manager(project).post(f"/api/v1/projects/{project.pk}/exports/", body, format="json")
    assert response.status_code == 400 and message in response.data["detail"]
    assert not DatasetExport.objects.exists()


def test_another_projects_model_version_cannot_be_exported():
    from tests.factories import add_model_version
    mine, theirs = make_project(), make_project(name="Theirs")
    version = add_model_version(theirs)
    response = _manager(mine).post(f"/api/v1/projects/{mine.pk}/exports/",
                                   {"format": "coco", "source": "predictions", "model_version": version.pk},
                                   format="json")
    assert response.status_code == 400
