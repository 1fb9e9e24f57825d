"""Media in an S3-compatible bucket (MEDIA_STORAGE=s3://...): the web process and a real worker share
nothing but the bucket, the database and the broker, as on many machines. Every job that reads or
writes files goes through it once: import, inference, fine-tuning, export, the image view, delete."""
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from datasets.models import DatasetExport, DatasetImport
from inference.models import InferenceRun, Prediction
from project.jobs import JobStatus
from review.models import Image, ProjectDeletion, Role
from tests.datasets.helpers import coco_doc, scene_png, zip_of
from review.services import image_create
from tests.factories import add_images, add_model_version, api_client, make_project
from tests.integration.conftest import finished, wait_for
from tests.review.test_thumbnails import camera_frame
from tests.training.test_services import review_with_truth
from training.models import TrainingRun

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_every_job_keeps_its_files_in_the_bucket(s3_media, start_worker, broker, media_root):
    if broker["url"].startswith("redis"):
        pytest.skip("storage is independent of the broker; the filesystem broker's case is enough")
    project = make_project(holdout_fraction=0.3)
    client = api_client(project.memberships.get(role=Role.MANAGER).user)
    review_with_truth(add_images(project, 8, size=96))  # stored by this (web) process
    base = add_model_version(project)
    start_worker(**s3_media.worker_env)

    # Import: the worker reads the uploaded archive from the bucket and stores its images there.
    doc = coco_doc([(f"{n}.png", 96, 96) for n in range(3)], [(n, "circle", [n, n, 20, 20]) for n in range(3)])
    files = {f"images/{n}.png": scene_png(100 + n) for n in range(3)} | {"annotations.json": json.dumps(doc).encode()}
    response = client.post(f"/api/v1/projects/{project.pk}/imports/",
                           {"file": SimpleUploadedFile("more.zip", zip_of(files).getvalue())}, format="multipart")
    assert response.status_code == 202, response.data
    job = wait_for(lambda: finished(DatasetImport, response.data["id"]), message="the import")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert Image.objects.filter(project=project).count() == 11

    # Inference: weights and images come from the bucket.
    response = client.post(f"/api/v1/projects/{project.pk}/inference-runs/", {"scope": "all"}, format="json")
    run = wait_for(lambda: finished(InferenceRun, response.data["id"]), message="the inference run")
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.progress_done == 11 and run.images_failed == 0
    assert run.predictions_written == Prediction.objects.filter(model_version=base).count()

    # Fine-tuning: checkpoints and the new version's weights go to the bucket.
    response = client.post(f"/api/v1/projects/{project.pk}/training-runs/", {"epochs": 2, "batch_size": 4},
                           format="json")
    assert response.status_code == 201, response.data
    run = wait_for(lambda: finished(TrainingRun, response.data["id"]), timeout=240, message="the training run")
    assert run.status == JobStatus.SUCCEEDED, run.error
    weights = client.get(f"/api/v1/model-versions/{run.result_version.pk}/weights/")
    assert weights.status_code == 200 and len(b"".join(weights.streaming_content)) > 1000

    # Export: the worker writes the archive to the bucket; the download streams it back.
    response = client.post(f"/api/v1/projects/{project.pk}/exports/", {"format": "coco"}, format="json")
    job = wait_for(lambda: finished(DatasetExport, response.data["id"]), message="the export")
    assert job.status == JobStatus.SUCCEEDED, job.error
    download = client.get(f"/api/v1/exports/{job.pk}/download/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert len([name for name in archive.namelist() if name.startswith("images/")]) == 11

    # The image view streams a member the stored bytes.
    imported = Image.objects.get(project=project, original_name="0.png")
    browser = Client()
    browser.force_login(project.memberships.get(role=Role.MANAGER).user)
    page = browser.get(f"/images/{imported.pk}/file")
    assert page.status_code == 200 and b"".join(page.streaming_content) == scene_png(100)
    # A large one's thumbnail is made from the bucket, into the bucket (and leaves with the project below).
    large = image_create(project=project, data=camera_frame(), filename="gate-cam.jpg")
    thumbnail = browser.get(f"/images/{large.pk}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    large.refresh_from_db()
    assert large.thumbnail and any(key.endswith(large.thumbnail.name) for key in s3_media.keys())

    keys = s3_media.keys()
    assert keys and all(key.startswith("media/") for key in keys), keys
    assert not any(path.is_file() for path in media_root.rglob("*")), "nothing may land on the local disk"

    # Deleting an image removes its file; the worker deleting the project removes its files from the bucket.
    assert client.delete(f"/api/v1/images/{imported.pk}/").status_code == 204
    assert not any(key.endswith(imported.file.name) for key in s3_media.keys())
    response = client.delete(f"/api/v1/projects/{project.pk}/")
    assert response.status_code == 202
    job = wait_for(lambda: finished(ProjectDeletion, response.data["id"]), message="the project deletion")
    assert job.status == JobStatus.SUCCEEDED, job.error
    # The files go once the deletion has committed (review.services.project_delete): the run can read
    # "succeeded" a moment before the worker has deleted the last of them.
    left = lambda: [key for key in s3_media.keys() if f"/projects/{project.pk}/" in key]  # noqa: E731
    try:
        wait_for(lambda: not left(), timeout=30, message="the project's files to leave the bucket")
    except TimeoutError:
        pytest.fail(f"left in the bucket: {left()}")
