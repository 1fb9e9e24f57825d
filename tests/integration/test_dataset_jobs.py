"""Import and export jobs through real `celery worker` processes, on the filesystem broker and on Redis."""
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from datasets.models import DatasetExport, DatasetImport
from inference.models import InferenceRun
from review.models import Annotation, Image, Role
from tests.datasets.helpers import coco_doc, scene_png, zip_of
from tests.factories import add_images, add_model_version, api_client, make_project
from tests.integration.conftest import finished, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_import_then_export_through_a_worker(start_worker):
    project = make_project()
    client = api_client(project.memberships.get(role=Role.MANAGER).user)
    worker = start_worker(queues="default")
    doc = coco_doc([(f"{n}.png", 96, 96) for n in range(4)], [(n, "circle", [n, n, 20, 20]) for n in range(4)])
    files = {f"images/{n}.png": scene_png(n) for n in range(4)} | {"annotations.json": json.dumps(doc).encode()}
    upload = SimpleUploadedFile("shapes.zip", zip_of(files).getvalue())
    response = client.post(f"/api/v1/projects/{project.pk}/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 202
    job = wait_for(lambda: finished(DatasetImport, response.data["id"]), message="the import")
    assert job.status == "succeeded", job.error
    assert job.report["images_added"] == 4 and Annotation.objects.filter(image__project=project).count() == 4

    response = client.post(f"/api/v1/projects/{project.pk}/exports/", {"format": "coco"}, format="json")
    job = wait_for(lambda: finished(DatasetExport, response.data["id"]), message="the export")
    assert job.status == "succeeded", job.error
    download = client.get(f"/api/v1/exports/{job.pk}/download/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    exported = json.loads(archive.read("annotations.json"))
    assert len(exported["images"]) == 4 and len(exported["annotations"]) == 4
    assert len([n for n in archive.namelist() if n.startswith("images/")]) == 4
    # Imports and exports run no model: a worker of the default queue does them without torch.
    assert not worker.torch_loaded()

    from tests.datasets.helpers import clip
    response = client.post(f"/api/v1/projects/{project.pk}/imports/",
                           {"file": SimpleUploadedFile("gate.mp4", clip()), "frame_every": "1"}, format="multipart")
    job = wait_for(lambda: finished(DatasetImport, response.data["id"]), message="the video import")
    assert job.status == "succeeded", job.error
    assert sorted(Image.objects.filter(project=project, original_name__startswith="gate_")
                  .values_list("original_name", flat=True)) == ["gate_0.00s.jpg", "gate_1.00s.jpg", "gate_2.00s.jpg"]


def test_run_inference_command_follows_the_worker(start_worker, broker):
    if broker["url"].startswith("redis"):
        pytest.skip("the command only reads the run row; one broker is enough")
    project = make_project()
    add_images(project, 3, size=96)
    add_model_version(project)
    start_worker()
    out = io.StringIO()
    call_command("run_inference", str(project.pk), stdout=out)
    run = InferenceRun.objects.get()
    assert run.status == "succeeded" and "100.0% 3/3" in out.getvalue() and "Inference succeeded" in out.getvalue()
    assert Image.objects.filter(project=project, uncertainty__isnull=False).count() == 3
