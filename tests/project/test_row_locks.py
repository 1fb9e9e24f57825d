"""A delete that runs while a writer is adding rows that point at what it deletes: both succeed.

Each test holds a writer's transaction open on one thread (an inference batch, a box save), starts
the delete on another, checks that the delete waits, then lets the writer commit. On PostgreSQL,
without the locks of project/row_locks.py, one of the two commits failed on a foreign key.
"""
import threading

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.transaction import TransactionManagementError

from inference.detector import Detections
from inference.execution import _write_batch
from inference import rerank
from inference import version_deletion
from inference.models import ModelVersion, ModelVersionDeletion, Prediction, RerankRun
from inference.pipeline import ImageResult
from project.row_locks import key_share_lock
from project import chunked_deletion
from project.jobs import JobStatus
from review import project_deletion
from review.models import Annotation, Image, LabelClass, Project, ProjectDeletion
from review.services import BoxIn, image_boxes_save, image_delete, label_class_delete, project_delete
from tests.factories import add_images, add_model_version, make_project

pytestmark = pytest.mark.django_db(transaction=True)
WAIT_S = 0.5  # long enough for a delete that does not wait to have finished


class InThread:
    """Run `work` on its own thread and connection; with `hold`, keep its transaction open until `release()`."""

    def __init__(self, work, *, hold: bool = False):
        self.error: Exception | None = None
        self.opened, self.released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(work, hold))
        self.thread.start()
        if hold:
            assert self.opened.wait(30), "the writer did not get going"

    def _run(self, work, hold: bool) -> None:
        try:
            with transaction.atomic():
                work()
                self.opened.set()
                if hold:
                    self.released.wait(30)
        except Exception as exc:  # the test asserts on it
            self.error = exc
        finally:
            self.opened.set()
            connections.close_all()

    def waiting(self) -> bool:
        self.thread.join(WAIT_S)
        return self.thread.is_alive()

    def release(self) -> None:
        self.released.set()
        self.thread.join(30)


@pytest.fixture
def project():
    project = make_project()
    add_images(project, 2, size=96)
    add_model_version(project)
    return project


def _batch_writer(project: Project, image: Image, *label_classes: LabelClass, version=None):
    """An inference batch predicting one box of each class on `image`, as the worker writes it."""
    version = version or project.model_versions.get()
    label_map = {index + 1: label_class.pk for index, label_class in enumerate(label_classes)}
    count = len(label_classes)
    result = ImageResult(image.pk, 96, 96, Detections(
        np.tile(np.array([[1, 1, 20, 20]], np.float32), (count, 1)), np.arange(1, count + 1),
        np.full(count, 0.9, np.float32)))
    return lambda: _write_batch(version, [result], label_map)


def test_an_image_deleted_while_a_batch_writes_it_waits_and_takes_the_new_predictions(project):
    image, other = Image.objects.filter(project=project).order_by("pk")
    circle = project.label_classes.get(index=0)
    writer = InThread(_batch_writer(project, image, circle), hold=True)
    deleter = InThread(lambda: image_delete(image=image))
    assert deleter.waiting()
    writer.release()
    deleter.release()
    assert writer.error is None and deleter.error is None
    assert not Image.objects.filter(pk=image.pk).exists() and not Prediction.objects.exists()
    assert Image.objects.filter(pk=other.pk).exists()


def test_a_class_deleted_while_a_batch_writes_its_boxes_waits_and_takes_them(project):
    image = Image.objects.filter(project=project).first()
    circle, square = project.label_classes.order_by("index")[:2]
    writer = InThread(_batch_writer(project, image, circle, square), hold=True)
    deleter = InThread(lambda: label_class_delete(label_class=circle))
    assert deleter.waiting()
    writer.release()
    deleter.release()
    assert writer.error is None and deleter.error is None
    assert not LabelClass.objects.filter(pk=circle.pk).exists()
    assert list(Prediction.objects.values_list("label_class_id", flat=True)) == [square.pk]


def test_a_batch_after_its_class_was_deleted_stores_the_other_classes(project):
    """The chunk read the classes before the delete: the batch drops the deleted class's boxes instead of failing."""
    image = Image.objects.filter(project=project).first()
    circle, square = project.label_classes.order_by("index")[:2]
    write = _batch_writer(project, image, circle, square)
    label_class_delete(label_class=circle)
    with transaction.atomic():
        assert write() == (1, 0)
    assert list(Prediction.objects.values_list("label_class_id", flat=True)) == [square.pk]


def test_a_class_deleted_while_a_box_of_it_is_saved_is_kept_with_the_box(project):
    image = Image.objects.filter(project=project).first()
    circle = project.label_classes.get(index=0)
    saver = InThread(lambda: image_boxes_save(image=image, user=None, version=image.version,
                                              boxes=[BoxIn(circle.pk, 1, 1, 20, 20)]), hold=True)
    deleter = InThread(lambda: label_class_delete(label_class=circle))
    assert deleter.waiting()
    saver.release()
    deleter.release()
    assert saver.error is None
    assert isinstance(deleter.error, ValidationError) and "1 human box use" in deleter.error.messages[0]
    assert LabelClass.objects.filter(pk=circle.pk).exists()
    assert list(Annotation.objects.values_list("label_class_id", flat=True)) == [circle.pk]


def test_a_project_deleted_while_a_batch_writes_into_it_waits_and_takes_everything(project):
    image = Image.objects.filter(project=project).first()
    writer = InThread(_batch_writer(project, image, project.label_classes.get(index=0)), hold=True)
    deleter = InThread(lambda: project_delete(project=project))
    assert deleter.waiting()
    writer.release()
    deleter.release()
    assert writer.error is None and deleter.error is None
    assert not Project.objects.exists() and not Image.objects.exists() and not Prediction.objects.exists()


def test_a_class_and_its_project_deleted_at_once_take_turns(project):
    """Without the project row taken first, the class delete held its class while the project delete
    took the predictions; each then waited for the other's rows, and PostgreSQL aborted one."""
    image = Image.objects.filter(project=project).first()
    circle = project.label_classes.get(index=0)
    with transaction.atomic():
        _batch_writer(project, image, circle)()  # a prediction of the class: both deletes want it
    class_locked, go_on = threading.Event(), threading.Event()

    def pause_after_the_class_lock(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "FOR UPDATE" in sql and '"review_labelclass"' in sql.split("FROM")[1].split("WHERE")[0]:
            class_locked.set()
            go_on.wait(30)
        return result

    def delete_the_class():
        with connections["default"].execute_wrapper(pause_after_the_class_lock):
            label_class_delete(label_class=circle)

    class_deleter = InThread(delete_the_class)
    if connections["default"].vendor == "postgresql":  # SQLite has no FOR UPDATE: its transactions take turns
        assert class_locked.wait(30)
    project_deleter = InThread(lambda: project_delete(project=project))
    project_deleter.waiting()  # let it take what it can before the class delete goes on
    go_on.set()
    class_deleter.release()
    project_deleter.release()
    assert class_deleter.error is None and project_deleter.error is None
    assert not Project.objects.exists() and not LabelClass.objects.exists() and not Prediction.objects.exists()


def test_a_threshold_change_waits_for_a_rerank_chunk_and_an_upload_does_not(project):
    """The chunk ranks at the threshold it read; a change that committed meanwhile would leave it stale."""
    run = RerankRun.objects.create(project=project, score_threshold=0.5)
    chunk = InThread(lambda: rerank._threshold_hold(run), hold=True)
    if connections["default"].vendor == "postgresql":  # SQLite's transactions all take turns
        uploader = InThread(lambda: add_images(project, 1, first_seed=9, size=96))
        assert not uploader.waiting() and uploader.error is None
    changer = InThread(lambda: Project.objects.filter(pk=project.pk).update(score_threshold=0.3))
    assert changer.waiting()
    chunk.release()
    changer.release()
    assert chunk.error is None and changer.error is None
    with transaction.atomic(), pytest.raises(rerank.Superseded):
        rerank._threshold_hold(run)


def test_a_cancel_during_a_deletions_last_step_waits_and_finds_it_finished(project):
    """The project goes with the run's row held: never a 'cancelled' deletion whose project is gone."""
    deletion = ProjectDeletion.objects.create(project=project, project_name=project.name, status=JobStatus.RUNNING)
    last_step = InThread(lambda: chunked_deletion._last_step(ProjectDeletion, deletion, project_deletion._project_delete),
                         hold=True)
    canceller = InThread(lambda: project_deletion.project_deletion_cancel(deletion=deletion))
    assert canceller.waiting()
    last_step.release()
    canceller.release()
    assert last_step.error is None
    assert isinstance(canceller.error, ValidationError), canceller.error
    assert canceller.error.messages == ["The run already succeeded; there is nothing to cancel."]
    assert not Project.objects.exists() and ProjectDeletion.objects.get().status == JobStatus.SUCCEEDED


def test_a_version_deleted_while_a_batch_writes_its_predictions_waits_and_takes_them(project):
    image = Image.objects.filter(project=project).first()
    circle = project.label_classes.get(index=0)
    old = add_model_version(project, activate=False)
    deletion = ModelVersionDeletion.objects.create(project=project, model_version=old, version_number=old.number,
                                                   status=JobStatus.RUNNING)
    writer = InThread(_batch_writer(project, image, circle, version=old), hold=True)
    last_step = InThread(lambda: chunked_deletion._last_step(ModelVersionDeletion, deletion,
                                                             version_deletion._version_delete))
    assert last_step.waiting()
    writer.release()
    last_step.release()
    assert writer.error is None and last_step.error is None
    assert not ModelVersion.objects.filter(pk=old.pk).exists() and not Prediction.objects.filter(
        model_version_id=old.pk).exists()
    with transaction.atomic():  # a batch of the run that was still going: nothing to write, no error
        assert _batch_writer(project, image, circle, version=old)() == (0, 0)


def test_a_job_started_while_its_project_is_being_deleted_is_refused_or_cancelled(project):
    """Either the deletion starts first (the job waits, then is refused) or the job does (the deletion waits,
    then cancels it with the others): never a job left running in a project being deleted."""
    from inference.models import InferenceRun
    from inference.services import inference_run_create

    deletion = InThread(lambda: project_deletion.project_deletion_start(project=project), hold=True)
    starter = InThread(lambda: inference_run_create(project=project, user=None, scope="all"))
    assert starter.waiting()
    deletion.release()
    starter.release()
    assert deletion.error is None
    assert isinstance(starter.error, ValidationError) and "is being deleted" in str(starter.error)
    assert not InferenceRun.objects.exists()

    project_deletion.project_deletion_cancel(deletion=ProjectDeletion.objects.get())
    starter = InThread(lambda: inference_run_create(project=project, user=None, scope="all"), hold=True)
    deletion = InThread(lambda: project_deletion.project_deletion_start(project=project))
    assert deletion.waiting()
    starter.release()
    deletion.release()
    assert starter.error is None and deletion.error is None
    run = InferenceRun.objects.get()
    assert run.status == JobStatus.CANCELLED or run.cancel_requested


def test_key_share_lock_outside_a_transaction_is_refused_a_transaction_is_refused(project):
    with pytest.raises(TransactionManagementError):
        key_share_lock(LabelClass.objects.all())


def test_key_share_lock_of_nothing_asks_nothing():
    with transaction.atomic():
        assert key_share_lock(LabelClass.objects.filter(pk__in=[])) == set()
