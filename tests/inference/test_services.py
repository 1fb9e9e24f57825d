"""Inference runs: creation checks and chunk execution in this process (the worker path is in integration/)."""
import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from inference import execution
from inference.detector import Detections
from inference.execution import _write_batch, inference_chunk_execute
from inference.models import BoxOutcome, InferenceRun, ModelVersion, Prediction
from inference.outcomes import box_outcomes_refresh, reviewed_box_counts
from inference.pipeline import ImageResult
from inference.services import inference_run_cancel, inference_run_create, model_version_create
from project.jobs import JobStatus
from review.models import Image, ReviewStatus
from review.services import (
    BoxIn, image_boxes_save, image_delete, label_class_delete, label_class_update, project_delete,
)
from tests.factories import TINY_ARCHITECTURE, add_images, add_model_version, make_project, tiny_weights

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project():
    project = make_project()
    add_images(project, 6, size=96)
    add_model_version(project)
    return project


def execute_all(run: InferenceRun) -> InferenceRun:
    for chunk in run.chunks.order_by("number"):
        inference_chunk_execute(chunk_id=chunk.pk)
    run.refresh_from_db()
    return run


def test_run_predicts_every_image_and_records_progress(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all", chunk_size=4)
    assert run.chunks_total == 2 and run.progress_total == 6
    run = execute_all(run)
    assert run.status == JobStatus.SUCCEEDED and run.percent == 100.0
    assert run.predictions_written == Prediction.objects.count() > 0
    assert run.images_per_second > 0 and run.device == "cpu, onnxruntime"  # INFERENCE_CPU_RUNTIME's default
    assert set(Prediction.objects.values_list("image_id", flat=True)) <= set(run.image_ids)
    assert not Image.objects.filter(uncertainty__isnull=True).exists()


def test_rerunning_a_chunk_replaces_instead_of_duplicating(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all")
    execute_all(run)
    count = Prediction.objects.count()
    chunk = run.chunks.get()
    chunk.finished = False  # as if the broker redelivered it after the worker died
    chunk.save()
    inference_chunk_execute(chunk_id=chunk.pk)
    assert Prediction.objects.count() == count


def test_unreviewed_scope_skips_reviewed_images(project, django_capture_on_commit_callbacks):
    Image.objects.filter(pk__in=list(project.images.values_list("pk", flat=True)[:2])).update(
        status=ReviewStatus.REVIEWED)
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None)
    assert run.progress_total == 4


def test_corrupt_image_is_marked_failed_and_the_run_goes_on(project, django_capture_on_commit_callbacks):
    broken = project.images.first()
    with default_storage.open(broken.file.name, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n this is not the rest of a png")
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all")
    run = execute_all(run)
    assert run.status == JobStatus.SUCCEEDED and run.images_failed == 1
    broken.refresh_from_db()
    assert "Could not read the image" in broken.inference_error
    assert not Prediction.objects.filter(image=broken).exists()
    assert Prediction.objects.exclude(image=broken).values("image_id").distinct().count() >= 1


def test_cancel_stops_queued_chunks(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all", chunk_size=2)
    InferenceRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING)
    run.refresh_from_db()
    inference_run_cancel(run=run)
    run = execute_all(run)
    assert run.status == JobStatus.CANCELLED
    assert not Prediction.objects.exists()
    with pytest.raises(ValidationError, match="nothing to cancel"):
        inference_run_cancel(run=run)


def test_missing_weights_fail_the_run_at_once_with_a_clear_message(project, django_capture_on_commit_callbacks):
    version = ModelVersion.objects.get(project=project)
    default_storage.delete(version.weights.name)
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all", chunk_size=2)
    run = execute_all(run)
    assert run.status == JobStatus.FAILED and "missing" in run.error
    assert not Prediction.objects.exists()


def test_a_chunk_that_keeps_killing_its_worker_fails_the_run(project, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all")
    run.chunks.update(attempts=settings.JOB_MAX_ATTEMPTS)  # every earlier attempt died mid-chunk
    run = execute_all(run)
    assert run.status == JobStatus.FAILED and "gave up" in run.error


def test_a_chunk_is_worked_on_only_by_the_message_that_holds_it(project, django_capture_on_commit_callbacks):
    """A second message for a chunk (sent again while the first only waited) leaves it to the first one."""
    from inference.tasks import inference_chunk_execute as chunk_task

    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all")
    chunk = run.chunks.get()
    chunk.held_by_task, chunk.attempts = "first", 1  # its worker died mid-chunk
    chunk.save()
    chunk_task.apply(args=[chunk.pk], task_id="second")
    chunk.refresh_from_db()
    assert (chunk.attempts, chunk.finished, Prediction.objects.count()) == (1, False, 0)
    chunk_task.apply(args=[chunk.pk], task_id="first")  # the holder's own redelivery takes it up again
    run.refresh_from_db(), chunk.refresh_from_db()
    assert (run.status, chunk.attempts, chunk.finished) == (JobStatus.SUCCEEDED, 2, True)
    assert Prediction.objects.values("image").distinct().count() == 6


def test_bad_requests_are_refused_before_anything_is_queued(project):
    other = make_project()
    foreign_image = add_images(other, 1, first_seed=50)[0]
    with pytest.raises(ValidationError, match="Unknown scope"):
        inference_run_create(project=project, user=None, scope="everything")
    with pytest.raises(ValidationError, match="Not images of this project"):
        inference_run_create(project=project, user=None, scope="ids", image_ids=[foreign_image.pk])
    with pytest.raises(ValidationError, match="no active model"):
        inference_run_create(project=other, user=None)
    with pytest.raises(ValidationError, match="another project"):
        inference_run_create(project=other, user=None, model_version=ModelVersion.objects.get(project=project))
    assert not InferenceRun.objects.exists()


def test_weights_upload_checks_architecture_and_shape_and_stores_nothing_when_bad(project):
    before = ModelVersion.objects.count()
    with pytest.raises(ValidationError, match="Unknown architecture"):
        model_version_create(project=project, architecture="nope", weights=tiny_weights(), class_names=None, user=None)
    with pytest.raises(ValidationError, match="do not fit"):
        model_version_create(project=project, architecture="ssdlite320_mobilenet_v3_large",
                             weights=tiny_weights(), class_names=["a", "b"], user=None)
    assert ModelVersion.objects.count() == before
    version = model_version_create(project=project, architecture=TINY_ARCHITECTURE,
                                   weights=tiny_weights(["circle", "square", "dog"]), class_names=None, user=None)
    assert version.number == 2 and version.class_names == ["circle", "square", "dog"]
    assert project.label_classes.filter(name="dog").exists()


def _torch_file(architecture: str, class_count: int) -> bytes:
    """A state dict as people's own training code saves it: torch.save, no metadata."""
    import io

    import torch

    from inference import detector

    buffer = io.BytesIO()
    torch.save(detector.build_model(architecture, class_count).state_dict(), buffer)
    return buffer.getvalue()


def test_weights_without_metadata_are_told_apart_by_their_tensors(project):
    """A torch file names neither its architecture nor its classes: the tensors say which and how many."""
    ssd = _torch_file("ssdlite320_mobilenet_v3_large", 4)
    with pytest.raises(ValidationError, match=r"give class_names, in class-id order \(4 of them\)"):
        model_version_create(project=project, architecture=None, weights=ssd, class_names=None, user=None)
    with pytest.raises(ValidationError, match="with 3 classes: .*they fit ssdlite320_mobilenet_v3_large with 4 classes"):
        model_version_create(project=project, architecture=None, weights=ssd, class_names=["a", "b", "c"], user=None)
    with pytest.raises(ValidationError, match="do not fit fcos_resnet50_fpn .*they fit ssdlite320_mobilenet_v3_large "
                                              "with 4 classes"):
        model_version_create(project=project, architecture="fcos_resnet50_fpn", weights=ssd,
                             class_names=["a", "b", "c", "d"], user=None)
    twins = _torch_file("fasterrcnn_mobilenet_v3_large_fpn", 2)
    with pytest.raises(ValidationError, match="fit both fasterrcnn_mobilenet_v3_large_320_fpn and "
                                              "fasterrcnn_mobilenet_v3_large_fpn .*choose"):
        model_version_create(project=project, architecture="", weights=twins, class_names=["a", "b"], user=None)
    before = ModelVersion.objects.count()
    version = model_version_create(project=project, architecture=None, weights=ssd,
                                   class_names=["circle", "square", "triangle", "dog"], user=None)
    assert version.architecture == "ssdlite320_mobilenet_v3_large" and ModelVersion.objects.count() == before + 1
    again = model_version_create(project=project, architecture=None, weights=tiny_weights(), class_names=None, user=None)
    assert again.architecture == "ssdlite320_mobilenet_v3_large"  # a file with metadata names its own


def test_an_image_deleted_while_its_chunk_runs_loses_only_its_own_predictions(project):
    """A reviewer deletes an image after the chunk read it: the batch stores the others and the run goes on."""
    version = project.model_versions.get()
    kept, gone = Image.objects.filter(project=project).order_by("pk")[:2]
    circle = project.label_classes.get(index=0).pk
    results = [ImageResult(image.pk, 96, 96, Detections(np.array([[1, 1, 20, 20]], np.float32),
                                                        np.array([1]), np.array([0.9], np.float32)))
               for image in (kept, gone)]
    image_delete(image=gone)
    assert _write_batch(version, results, {1: circle}) == (1, 0)
    assert list(Prediction.objects.values_list("image_id", flat=True)) == [kept.pk]
    image_delete(image=kept)
    assert _write_batch(version, results, {1: circle}) == (0, 0)  # every image gone: nothing to write


def test_a_chunk_whose_writes_fail_fails_the_run_at_once_with_the_reason(project, monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    """The database refusing a batch (here: made to, at its edge) ends the run with the reason, not a silent stall."""
    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")
    monkeypatch.setattr(execution, "rows_insert", database_gone)
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all", chunk_size=4)
    run = execute_all(run)
    assert run.status == JobStatus.FAILED
    assert run.error == "Chunk 0 failed: server closed the connection unexpectedly"
    assert not run.chunks.filter(finished=False).exists() and not Prediction.objects.exists()


def test_a_runs_chunks_read_the_reviewed_box_counts_once_per_worker(project, monkeypatch,
                                                                    django_capture_on_commit_callbacks):
    """The count anomaly's reference is one GROUP BY over every reviewed image: once per run, not per chunk."""
    circle = project.label_classes.get(index=0).pk
    for image in Image.objects.filter(project=project).order_by("pk")[:2]:
        image_boxes_save(image=image, user=None, version=image.version, boxes=[BoxIn(circle, 1, 1, 10, 10)])
    reads = []
    monkeypatch.setattr(execution, "reviewed_box_counts",
                        lambda project_id: reads.append(project_id) or reviewed_box_counts(project_id))
    for expected_reads in (1, 2):
        with django_capture_on_commit_callbacks(execute=False):
            run = inference_run_create(project=project, user=None, scope="unreviewed", chunk_size=2)
        assert execute_all(run).status == JobStatus.SUCCEEDED and run.chunks_total == 2
        assert reads == [project.pk] * expected_reads
        assert not Image.objects.filter(pk__in=run.image_ids, count_anomaly__isnull=True).exists()


def test_chunk_size_comes_from_the_setting_unless_given(project, settings, django_capture_on_commit_callbacks):
    settings.INFERENCE_CHUNK_SIZE = 4
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all")
        assert (run.chunk_size, run.chunks_total) == (4, 2)
        assert inference_run_create(project=project, user=None, scope="all", chunk_size=6).chunks_total == 1
        with pytest.raises(ValidationError, match="at least 1"):
            inference_run_create(project=project, user=None, scope="all", chunk_size=0)
    assert InferenceRun.objects.count() == 2


def test_a_run_whose_project_is_deleted_stops_at_its_next_check(project, monkeypatch,
                                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = inference_run_create(project=project, user=None, scope="all")
    model = execution.detector_for(run.model_version)
    predicted = []

    def predict_then_delete_the_project(images):
        predicted.append(len(images))
        if len(predicted) == 1:
            project_delete(project=project)
        return original(images)
    original = model.predict
    monkeypatch.setattr(model, "predict", predict_then_delete_the_project)
    inference_chunk_execute(chunk_id=run.chunks.get().pk, batch_size=2)  # 6 images: 3 batches
    assert predicted == [2]
    assert not InferenceRun.objects.exists() and not Prediction.objects.exists() and not Image.objects.exists()


def _project_with_predictions(count: int):
    project = make_project()
    [image] = add_images(project, 1, size=64)
    version = add_model_version(project)
    circle = project.label_classes.get(index=0)
    Prediction.objects.bulk_create([Prediction(image=image, model_version=version, label_class=circle, x=i % 50,
                                               y=1, w=5, h=5, score=0.9) for i in range(count)])
    image_boxes_save(image=image, user=None, version=image.version, boxes=[BoxIn(circle.pk, 1, 1, 5, 5)])
    box_outcomes_refresh(image_ids=[image.pk])
    assert BoxOutcome.objects.filter(image=image).count() >= count  # one per prediction
    return project, image


@pytest.mark.parametrize("delete", ["project", "image"])
def test_deleting_images_deletes_their_predictions_in_bulk_not_one_by_one(delete, django_capture_on_commit_callbacks):
    """Django's cascade loads every prediction (and deletes in batches): a 20,000-image project took
    41 s to delete on PostgreSQL, 10 s with the predictions deleted by one statement first."""
    statements = []
    for count in (5, 3000):
        project, image = _project_with_predictions(count)
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
            if delete == "project":
                project_delete(project=project)
            else:
                image_delete(image=image)
        statements.append(len(queries))
        assert not Prediction.objects.filter(image_id=image.pk).exists()
        assert not BoxOutcome.objects.filter(image_id=image.pk).exists() and not Image.objects.filter(pk=image.pk)
    assert statements[0] == statements[1]  # however many predictions


def test_a_renamed_class_keeps_the_models_predictions_of_it(project, django_capture_on_commit_callbacks):
    """The model knows its classes by name (ModelVersion.class_names): a rename renames them there too."""
    def predicted_classes() -> list[int]:
        with django_capture_on_commit_callbacks(execute=False):
            run = inference_run_create(project=project, user=None, scope="all")
        execute_all(run)
        return sorted(Prediction.objects.values_list("label_class_id", flat=True))

    before = predicted_classes()
    circle = project.label_classes.get(name="circle")
    assert circle.pk in before
    ModelVersion.objects.update(metrics={"map": 0.5, "per_class": {"circle": 0.4, "square": 0.6},
                                         "operating_point": {"threshold": 0.3, "per_class": {"circle": {"f1": 0.7}}}})
    label_class_update(label_class=circle, name="disc")
    version = ModelVersion.objects.get(project=project)
    assert version.class_names == ["disc", "square", "triangle"]
    assert version.metrics == {"map": 0.5, "per_class": {"disc": 0.4, "square": 0.6},
                               "operating_point": {"threshold": 0.3, "per_class": {"disc": {"f1": 0.7}}}}
    assert predicted_classes() == before


def test_a_rename_to_the_name_of_a_deleted_class_does_not_give_the_model_two_of_it():
    project = make_project()
    names = ["circle", "square", "triangle", "ring"]
    version = model_version_create(project=project, architecture=TINY_ARCHITECTURE,
                                   weights=tiny_weights(names), class_names=names, user=None)
    label_class_delete(label_class=project.label_classes.get(name="ring"))  # unused: deleted
    label_class_update(label_class=project.label_classes.get(name="circle"), name="ring")
    version.refresh_from_db()
    assert version.class_names == ["ring", "square", "triangle", "ring (deleted)"]
