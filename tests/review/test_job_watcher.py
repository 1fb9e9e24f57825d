"""The demo's terminal: one line per job as it starts, advances and ends (project.cli.JobWatcher)."""
import io
from datetime import timedelta

import pytest
from django.core.management.base import OutputWrapper
from django.utils import timezone

from inference.models import InferenceRun, ModelExport, ModelVersion
from project.cli import JobWatcher, follow_run
from project.jobs import JobStatus
from project.sweeper import job_models
from review.management.commands.rundemo import JOB_NAMES, describe
from review.models import ProjectDeletion
from tests.factories import add_model_version, make_project
from training.models import DatasetSnapshot, TrainingRun

pytestmark = pytest.mark.django_db


def test_a_line_when_a_job_advances_or_ends_and_none_when_nothing_changed():
    project = make_project()
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, status=JobStatus.RUNNING, epoch=1,
                                     params={"epochs": 3}, progress_total=30, progress_done=10,
                                     loss_history=[{"step": 10, "epoch": 0, "loss": 1.5}],
                                     eval_history=[{"epoch": 1, "map": 0.1, "ap50": 0.2}])
    version = ModelVersion.objects.create(project=project, number=1, architecture="ssdlite320_mobilenet_v3_large",
                                          class_names=["circle"])
    out = io.StringIO()
    watcher = JobWatcher(OutputWrapper(out), [TrainingRun, InferenceRun], describe)
    watcher.poll()
    watcher.poll()  # nothing changed: nothing said
    assert out.getvalue().splitlines() == [
        f"[jobs] Training run #{run.pk} training: epoch 1/3, 33%, loss 1.500, holdout mAP 0.100 AP50 0.200"]
    TrainingRun.objects.filter(pk=run.pk).update(epoch=2, progress_done=20)
    inference = InferenceRun.objects.create(project=project, model_version=version, status=JobStatus.SUCCEEDED,
                                            progress_total=5, progress_done=5, predictions_written=7,
                                            finished_at=timezone.now())
    watcher.poll()
    lines = out.getvalue().splitlines()[1:]
    assert lines[0].startswith(f"[jobs] Training run #{run.pk} training: epoch 2/3")
    assert lines[1] == f"[jobs] Inference #{inference.pk} done: 5 images, 7 boxes proposed. Open the review queue to see them."


def test_the_demo_follows_every_kind_of_job():
    """Reranks and deletions too: `make demo`'s terminal says when a project or a version is gone."""
    project = make_project()
    deletion = ProjectDeletion.objects.create(project=project, project_name=project.name, status=JobStatus.RUNNING,
                                              progress_done=2, progress_total=4)
    out = io.StringIO()
    watcher = JobWatcher(OutputWrapper(out), list(JOB_NAMES), describe)
    watcher.poll()
    ProjectDeletion.objects.filter(pk=deletion.pk).update(status=JobStatus.SUCCEEDED, progress_done=4,
                                                          finished_at=timezone.now())
    watcher.poll()
    assert out.getvalue().splitlines() == [f"[jobs] Project deletion #{deletion.pk} running: 50% (2/4)",
                                           f"[jobs] Project deletion #{deletion.pk} succeeded: 100% (4/4)"]
    assert set(JOB_NAMES) == set(job_models())


def test_a_finished_onnx_export_says_what_was_checked_and_where_it_is():
    project = make_project()
    version = add_model_version(project)
    export = ModelExport.objects.create(
        project=project, model_version=version, version_number=version.number, status=JobStatus.SUCCEEDED,
        size_bytes=9_000_000, check_result={"images": 4, "boxes": 12, "matched": 12, "min_score": 0.3,
                                            "max_score_difference": 2e-5})
    assert describe(export) == (f"[jobs] ONNX export #{export.pk} done: v1 as ONNX, 9 MB; 12 of 12 boxes scored ≥ 0.3 "
                                "agree on 4 image(s) (scores within 2e-05). Download it from the models page.")


def test_a_queued_job_says_once_which_queue_it_waits_for(settings):
    settings.JOB_WAIT_NOTICE_SECONDS = 60
    project = make_project()
    run = TrainingRun.objects.create(project=project, params={"epochs": 3})
    out = io.StringIO()
    watcher = JobWatcher(OutputWrapper(out), [TrainingRun], describe)
    watcher.poll()
    TrainingRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    watcher.poll()
    TrainingRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=3))
    watcher.poll()  # a minute more: said already
    assert out.getvalue().splitlines() == [
        f"[jobs] Training run #{run.pk} queued",
        f"[jobs] Training run #{run.pk} queued: waiting 2 min for a worker of the training queue: none is running; "
        "start one with `celery -A project worker -Q training`"]


def test_following_a_run_from_the_terminal_names_the_queue_it_waits_on(monkeypatch):
    project = make_project()
    run = TrainingRun.objects.create(project=project, params={"epochs": 3})

    def a_worker_takes_it(seconds):
        TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())

    monkeypatch.setattr("project.cli.time.sleep", a_worker_takes_it)
    out = io.StringIO()
    follow_run(run, OutputWrapper(out), "Training", hint_after=0)
    assert ("Still queued: is a worker of the training queue running? (.venv/bin/celery -A project worker -Q training)"
            in out.getvalue())
