"""A model version as ONNX (inference/onnx_export.py, inference/model_exports.py): the file predicts what the
model does on images of any size, says what it is, and a file that predicts otherwise is refused; the job's
reuse, cancel and bad input; the API and the models page.

Who may call each page and endpoint is in tests/project/test_page_permissions.py and test_api_permissions.py;
a real worker runs one in tests/integration/test_inference_worker.py.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.urls import reverse

from inference import detector, onnx_export
from inference.model_exports import CHECK_IMAGES, model_export_cancel, model_export_execute, model_export_start
from inference.models import ModelExport, ModelVersion
from inference.services import model_version_create
from inference.version_deletion import model_version_deletion_execute, model_version_deletion_start
from project.jobs import JobStatus
from review.demo_images import CLASS_NAMES, generate_scene
from review.models import Role
from review.services import label_class_update
from tests.factories import (
    UserFactory, add_images, add_member, add_model_version, api_client, calibrated_weights, make_project,
)

ARCH = "fasterrcnn_mobilenet_v3_large_320_fpn"


def _model(architecture: str = ARCH, seed: int = 0) -> torch.nn.Module:
    data = calibrated_weights(tuple(CLASS_NAMES), architecture, seed)
    return detector.load_model(data, architecture=architecture, num_classes=len(CLASS_NAMES))


def _scene(seed: int, width: int, height: int) -> np.ndarray:
    return np.asarray(generate_scene(seed, width=width, height=height).image).copy()


@pytest.mark.parametrize("architecture", [ARCH, "ssdlite320_mobilenet_v3_large"])
def test_the_file_predicts_what_the_model_does_on_images_of_other_sizes(architecture):
    """Traced on 640 x 480; the camera's frames may be any size. SSD's outputs come in another order than
    Faster R-CNN's (its dict's keys): the file's are boxes, labels, scores for both."""
    model = _model(architecture)
    data = onnx_export.onnx_from_model(model, metadata={})
    session, check = onnx_export.onnx_session(data), onnx_export.OnnxCheck()
    for seed, (width, height) in enumerate([(160, 128), (200, 150), (128, 224), (320, 240)]):
        onnx_export.onnx_check_image(session, model, _scene(100 + seed, width, height), check, min_score=0.25)
    assert [output.name for output in session.get_outputs()] == ["boxes", "labels", "scores"]
    assert check.images == 4 and check.boxes >= 10, check
    assert check.passed and check.matched == check.boxes, check.first_mismatch
    assert check.max_score_difference < 1e-3 and check.max_box_difference < 0.1


def test_a_file_that_predicts_otherwise_fails_the_check_and_says_which_box():
    other = onnx_export.onnx_from_model(_model(seed=1), metadata={})
    model, check = _model(seed=0), onnx_export.OnnxCheck()
    onnx_export.onnx_check_image(onnx_export.onnx_session(other), model, _scene(101, 200, 150), check, name="cam-1.jpg",
                                 min_score=0.25)
    assert check.boxes and not check.passed
    assert check.first_mismatch.startswith("cam-1.jpg: the model's box of class ")


def test_the_file_says_what_it_holds():
    metadata = onnx_export.metadata_for(architecture=ARCH, class_names=["car", "person"], score_threshold=0.42,
                                        version="v3", project="Gate")
    data = onnx_export.onnx_from_model(_model(), metadata=metadata)
    said = onnx_export.onnx_metadata(data)
    assert json.loads(said["class_names"]) == ["car", "person"] and said["score_threshold"] == "0.42"
    assert said["architecture"] == ARCH and said["model_version"] == "v3"


def test_a_deployment_runs_the_file_with_onnxruntime_alone(tmp_path):
    """tools/onnx_predict.py (numpy, Pillow, onnxruntime: no torch) gives the model's boxes above the file's
    threshold, with their class names."""
    model = _model()
    metadata = onnx_export.metadata_for(architecture=ARCH, class_names=CLASS_NAMES, score_threshold=0.3,
                                        version="v1", project="p")
    (tmp_path / "m.onnx").write_bytes(onnx_export.onnx_from_model(model, metadata=metadata))
    generate_scene(103, width=200, height=150).image.save(tmp_path / "frame.png")
    tool = Path(__file__).resolve().parents[2] / "tools" / "onnx_predict.py"
    # Run from elsewhere: the tool needs none of the project's modules.
    done = subprocess.run([sys.executable, str(tool), str(tmp_path / "m.onnx"), str(tmp_path / "frame.png")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True)
    said = json.loads(done.stdout)
    with torch.inference_mode():
        out = model([torch.from_numpy(_scene(103, 200, 150)).permute(2, 0, 1).float() / 255])[0]
    keep = out["scores"] >= 0.3
    assert said["threshold"] == 0.3 and len(said["boxes"]) == int(keep.sum()) > 0
    assert [box["class"] for box in said["boxes"]] == [CLASS_NAMES[int(i) - 1] for i in out["labels"][keep]]
    assert np.allclose([box["box"] for box in said["boxes"]], out["boxes"][keep].numpy(), atol=0.1)


# --- The job ----------------------------------------------------------------------------------------

@pytest.fixture
def version(db):
    project = make_project(holdout_fraction=0.5)
    add_images(project, 6, size=160)
    return model_version_create(project=project, architecture=ARCH, weights=calibrated_weights(),
                                class_names=list(CLASS_NAMES), user=None, activate=True)


def _manager(project):
    return project.memberships.get(role=Role.MANAGER).user


@pytest.mark.django_db
def test_an_export_is_checked_and_stored_and_asked_again_is_the_same(version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        export, created = model_export_start(version=version)
    assert created and export.status == JobStatus.QUEUED
    assert model_export_start(version=version) == (export, False)  # queued: not a second one
    export = model_export_execute(run_id=export.pk, progress_interval=0)
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.check_result["images"] == CHECK_IMAGES and export.check_result["passed"]
    assert export.progress_done == export.progress_total == CHECK_IMAGES + 2
    data = export.file.read()
    assert export.size_bytes == len(data) > 1_000_000
    assert json.loads(onnx_export.onnx_metadata(data)["class_names"]) == list(CLASS_NAMES)
    assert model_export_start(version=version) == (export, False)  # done: downloaded again, not made again


@pytest.mark.django_db
def test_a_class_renamed_since_makes_a_new_file(version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        first, _ = model_export_start(version=version)
    model_export_execute(run_id=first.pk, progress_interval=0)
    label_class_update(label_class=version.project.label_classes.get(name=CLASS_NAMES[0]), name="disc")
    with django_capture_on_commit_callbacks(execute=False):
        second, created = model_export_start(version=ModelVersion.objects.get(pk=version.pk))
    assert created and second.class_names[0] == "disc"


@pytest.mark.django_db
def test_bad_requests_are_refused_and_change_nothing(version, django_capture_on_commit_callbacks):
    with pytest.raises(ValidationError, match="Unknown export format"):
        model_export_start(version=version, format="tflite")
    external = ModelVersion.objects.create(project=version.project, number=9, architecture=ARCH, class_names=["a"])
    with pytest.raises(ValidationError, match="no weights to export"):
        model_export_start(version=external)
    other = add_model_version(version.project, activate=False)
    with django_capture_on_commit_callbacks(execute=False):
        model_version_deletion_start(version=other)
    with pytest.raises(ValidationError, match="being deleted"):
        model_export_start(version=other)
    assert not ModelExport.objects.exists()


@pytest.mark.django_db
def test_weights_gone_bad_fail_the_export_with_the_reason(version, django_capture_on_commit_callbacks):
    version.weights.save("broken.safetensors", ContentFile(b"not weights"))
    with django_capture_on_commit_callbacks(execute=False):
        export, _ = model_export_start(version=version)
    export = model_export_execute(run_id=export.pk, progress_interval=0)
    assert export.status == JobStatus.FAILED
    assert export.error.startswith(f"The weights of {version} could not be loaded")
    assert not export.file


@pytest.mark.django_db
def test_cancel_queued_at_once_running_at_the_next_step(version, django_capture_on_commit_callbacks, monkeypatch):
    with django_capture_on_commit_callbacks(execute=False):
        export, _ = model_export_start(version=version)
    assert model_export_cancel(export=export).status == JobStatus.CANCELLED
    with django_capture_on_commit_callbacks(execute=False):
        export, created = model_export_start(version=version)  # a cancelled one is not reused
    assert created
    export_file = onnx_export.onnx_from_model

    def cancelled_meanwhile(*args, **kwargs):  # the user presses Cancel while the worker writes the file
        data = export_file(*args, **kwargs)
        model_export_cancel(export=ModelExport.objects.get(pk=export.pk))
        return data
    monkeypatch.setattr(onnx_export, "onnx_from_model", cancelled_meanwhile)
    export = model_export_execute(run_id=export.pk, progress_interval=0)
    assert export.status == JobStatus.CANCELLED and not export.file and export.progress_done == 1


@pytest.mark.django_db
def test_an_exporter_that_breaks_fails_the_export_at_once(version, django_capture_on_commit_callbacks, monkeypatch):
    """Not left running until the sweeper looks, and not retried on a loop."""
    with django_capture_on_commit_callbacks(execute=False):
        export, _ = model_export_start(version=version)

    def broken(*args, **kwargs):  # torch's exporter meeting an operator it cannot write, say
        raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX opset version 17 is not supported")
    monkeypatch.setattr(onnx_export, "onnx_from_model", broken)
    export = model_export_execute(run_id=export.pk, progress_interval=0)
    assert export.status == JobStatus.FAILED and not export.file
    assert export.error.startswith("The export failed (RuntimeError: Exporting the operator 'aten::frobnicate'")


@pytest.mark.django_db(transaction=True)
def test_deleting_the_version_takes_its_files(media_root):
    project = make_project()
    add_images(project, 2, size=160)
    add_model_version(project)
    old = model_version_create(project=project, architecture=ARCH, weights=calibrated_weights(),
                               class_names=list(CLASS_NAMES), user=None, activate=False)
    export, _ = model_export_start(version=old)
    export = model_export_execute(run_id=export.pk, progress_interval=0)
    assert export.status == JobStatus.SUCCEEDED, export.error
    path = media_root / export.file.name
    assert path.exists()
    deletion = model_version_deletion_start(version=old)
    model_version_deletion_execute(run_id=deletion.pk)
    assert not ModelExport.objects.exists() and not path.exists()


@pytest.mark.django_db(transaction=True)  # predictions are written by the worker's writer thread
def test_cpu_workers_predict_through_onnxruntime_what_torch_predicts(version, settings,
                                                                     django_capture_on_commit_callbacks):
    """INFERENCE_CPU_RUNTIME: the stored predictions are the same either way (boxes a deployment keeps)."""
    from inference import execution
    from inference.models import InferenceRun, Prediction
    from inference.services import inference_run_create

    def predicted(runtime: str) -> tuple[str, dict]:
        settings.INFERENCE_CPU_RUNTIME = runtime
        execution._DETECTORS.clear()  # a worker started with that setting
        with django_capture_on_commit_callbacks(execute=False):
            run = inference_run_create(project=version.project, user=None, scope="all")
        for chunk in run.chunks.all():
            execution.inference_chunk_execute(chunk_id=chunk.pk)
        rows = {}
        for p in Prediction.objects.filter(model_version=version, score__gte=0.3):
            rows.setdefault(p.image_id, []).append((p.label_class_id, p.score, (p.x, p.y, p.w, p.h)))
        return InferenceRun.objects.get(pk=run.pk).device, rows

    torch_device, torch_rows = predicted("torch")
    onnx_device, onnx_rows = predicted("onnxruntime")
    execution._DETECTORS.clear()
    assert (torch_device, onnx_device) == ("cpu", "cpu, onnxruntime")
    assert torch_rows.keys() == onnx_rows.keys() and sum(map(len, torch_rows.values())) > 10
    for image_id, rows in torch_rows.items():
        assert len(rows) == len(onnx_rows[image_id])
        for label, score, box in rows:
            assert any(other_label == label and abs(other_score - score) < 1e-3
                       and max(abs(a - b) for a, b in zip(box, other_box)) < 1.0
                       for other_label, other_score, other_box in onnx_rows[image_id]), (image_id, label, score)


# --- API and page -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_api_starts_follows_and_downloads(version, django_capture_on_commit_callbacks):
    client = api_client(_manager(version.project))
    url = f"/api/v1/model-versions/{version.pk}/exports/"
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {"format": "onnx"}, format="json")
    assert response.status_code == 202, response.content
    export_id = response.json()["id"]
    assert response["Location"] == f"/api/v1/model-exports/{export_id}/"
    assert client.post(url, {"format": "onnx"}, format="json").status_code == 200  # the same one
    assert client.get(f"/api/v1/model-exports/{export_id}/file/").status_code == 404  # not made yet
    model_export_execute(run_id=export_id, progress_interval=0)
    body = client.get(f"/api/v1/model-exports/{export_id}/").json()
    assert body["status"] == "succeeded" and body["download_ready"] and body["check_result"]["passed"]
    assert [row["id"] for row in client.get(url).json()["results"]] == [export_id]
    download = client.get(f"/api/v1/model-exports/{export_id}/file/")
    assert download.status_code == 200
    assert f"v{version.number}-{ARCH}.onnx" in download["Content-Disposition"]
    assert b"".join(download.streaming_content) == ModelExport.objects.get(pk=export_id).file.read()
    assert client.post(url, {"format": "tflite"}, format="json").status_code == 400


@pytest.mark.django_db
def test_api_cancel_and_a_finished_one_cannot_be(version, django_capture_on_commit_callbacks):
    client = api_client(_manager(version.project))
    with django_capture_on_commit_callbacks(execute=False):
        export_id = client.post(f"/api/v1/model-versions/{version.pk}/exports/", {}, format="json").json()["id"]
    response = client.post(f"/api/v1/model-exports/{export_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/model-exports/{export_id}/cancel/").status_code == 400


@pytest.mark.django_db
def test_models_page_offers_onnx_to_managers_and_the_file_once_made(version, client,
                                                                     django_capture_on_commit_callbacks):
    annotator = add_member(version.project, Role.ANNOTATOR, UserFactory())
    page = reverse("training:project_models", args=[version.project_id])
    client.force_login(annotator)
    assert b"Export ONNX" not in client.get(page).content
    client.force_login(_manager(version.project))
    assert b"Export ONNX" in client.get(page).content
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("inference:model_export_start", args=[version.pk]))
    assert response.status_code == 302
    export = ModelExport.objects.get()
    html = client.get(page).content.decode()
    assert f'data-model-export-id="{export.pk}"' in html and "queued" in html
    model_export_execute(run_id=export.pk, progress_interval=0)
    html = client.get(page).content.decode()
    assert reverse("api:model_export_file", args=[export.pk]) in html
    assert f"{CHECK_IMAGES} image(s)" in html
    # Ten later exports (of other versions, cancelled) push it out of the table: the version still links its file.
    other = add_model_version(version.project, activate=False)
    ModelExport.objects.bulk_create(ModelExport(project=version.project, model_version=other,
                                                version_number=other.number, status=JobStatus.CANCELLED)
                                    for _ in range(10))
    html = client.get(page).content.decode()
    assert f'data-model-export-id="{export.pk}"' not in html
    assert f'class="onnx-link" href="{reverse("api:model_export_file", args=[export.pk])}"' in html
