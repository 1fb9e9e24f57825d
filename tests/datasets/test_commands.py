"""The management commands: thin wrappers over the services, with progress on the terminal."""
import io
import zipfile

import pytest
from django.core.management import CommandError, call_command

from datasets.models import DatasetExport
from inference.models import InferenceRun
from review.models import Annotation, Image
from tests.datasets.helpers import scene_png, zip_of
from tests.factories import add_images, add_model_version, make_project, review_with_truth

pytestmark = pytest.mark.django_db


def _call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_export_then_import_into_another_project(tmp_path):
    source = make_project()
    for seed, image in enumerate(add_images(source, 3, size=96)):
        review_with_truth(image, seed=seed, size=96)
    target = make_project(name="Target", class_names=[])
    output = _call("export_dataset", str(source.pk), str(tmp_path / "out.zip"), "--format", "voc")
    assert "Export #" in output and "100.0% 3/3" in output and "Wrote" in output
    assert zipfile.ZipFile(tmp_path / "out.zip").testzip() is None
    output = _call("import_dataset", "Target", str(tmp_path / "out.zip"))
    assert "Format voc: 3 images added" in output and "Imported into 'Target'" in output
    assert Annotation.objects.filter(image__project=target).count() == Annotation.objects.filter(
        image__project=source).count()


def test_import_refusal_is_a_command_error_and_changes_nothing(tmp_path):
    project = make_project()
    path = tmp_path / "bad.zip"
    path.write_bytes(zip_of({"a.png": scene_png(1), "b.png": b"not an image"}).getvalue())
    with pytest.raises(CommandError, match="1 file was refused"):
        _call("import_dataset", str(project.pk), str(path))
    assert not Image.objects.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["import_dataset", "999", "x.zip"], "No single project"),
    (["import_dataset", "{project}", "/nonexistent.zip"], "no such file"),
    (["import_dataset", "{project}", "/tmp"], "a folder; give the .zip, COCO .json or video file"),
    (["export_dataset", "{project}", "/tmp/x.zip", "--source", "predictions"], "model version"),
    (["export_dataset", "{project}", "/nonexistent/x.zip"], "no such folder"),
    (["export_dataset", "{project}", "/tmp"], "is a folder: name the zip to write"),
    (["export_dataset", "{project}", "/proc/x.zip"], "cannot write there"),
    (["export_dataset", "{project}", "/tmp/x.zip", "--source", "predictions", "--model-version", "7"],
     "has no model version v7"),
    (["export_dataset", "{project}", "/tmp/x.zip", "--source", "snapshot", "--snapshot", "7"], "has no snapshot #7"),
    (["run_inference", "{project}", "--scope", "bogus"], "choose from 'all', 'unreviewed'"),
    (["run_inference", "{project}"], "no active model"),
    (["run_inference", "{project}", "--model-version", "7"], "has no model version v7"),
    (["finetune", "{project}", "--no-wait"], "Too few reviewed images"),
])
def test_commands_explain_what_is_wrong(args, message):
    project = make_project()
    with pytest.raises(CommandError, match=message):
        _call(*[a.format(project=project.pk) for a in args])
    assert not DatasetExport.objects.exists()  # refused before anything ran


def test_run_inference_no_wait_queues_a_run():
    project = make_project()
    add_images(project, 2, size=96)
    add_model_version(project)
    output = _call("run_inference", str(project.pk), "--no-wait", "--scope", "all")
    run = InferenceRun.objects.get()
    assert f"Inference run #{run.pk}" in output and run.progress_total == 2 and run.chunks_total == 1
