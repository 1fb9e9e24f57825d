"""The stale-run sweeper: running jobs whose worker went quiet are resumed, then failed; healthy ones are left alone."""
from datetime import timedelta

import pytest
from django.utils import timezone

from datasets.models import DatasetExport
from inference.models import InferenceChunk, InferenceRun, ModelExport, RerankRun
from project.jobs import JobProgress, JobStatus, job_attempt_start
from project.sweeper import job_models, stale_runs_sweep
from tests.factories import add_images, add_model_version, make_project
from review.models import ProjectDeletion
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_every_run_model_knows_how_to_resume():
    assert {m.__name__ for m in job_models()} == {"InferenceRun", "TrainingRun", "DatasetImport", "DatasetExport",
                                                  "RerankRun", "ProjectDeletion",
                                                  "ModelVersionDeletion", "ModelExport"}


def test_a_quiet_model_export_is_sent_again(settings, django_capture_on_commit_callbacks):
    project = make_project()
    version = add_model_version(project)
    old = timezone.now() - timedelta(minutes=settings.JOB_STALE_MINUTES + 1)
    export = ModelExport.objects.create(project=project, model_version=version, version_number=version.number,
                                        status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
    with django_capture_on_commit_callbacks(execute=False):
        assert stale_runs_sweep()["resumed"] == [f"ModelExport #{export.pk}"]
    assert export.pending_tasks() == [("inference.tasks.model_export_execute", [export.pk])]


def test_a_quiet_rerank_is_sent_again(settings, django_capture_on_commit_callbacks):
    project = make_project()
    old = timezone.now() - timedelta(minutes=settings.JOB_STALE_MINUTES + 1)
    rerank = RerankRun.objects.create(project=project, score_threshold=0.4, status=JobStatus.RUNNING, attempts=1,
                                      heartbeat_at=old)
    with django_capture_on_commit_callbacks(execute=False):
        assert stale_runs_sweep()["resumed"] == [f"RerankRun #{rerank.pk}"]
    assert rerank.pending_tasks() == [("inference.tasks.rerank_run_execute", [rerank.pk])]


def test_quiet_running_jobs_are_resumed_then_failed(settings, django_capture_on_commit_callbacks):
    settings.JOB_MAX_ATTEMPTS = 2
    project = make_project()
    old = timezone.now() - timedelta(minutes=settings.JOB_STALE_MINUTES + 1)
    quiet = DatasetExport.objects.create(project=project, status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
    healthy = DatasetExport.objects.create(project=project, status=JobStatus.RUNNING, attempts=1,
                                           heartbeat_at=timezone.now())
    exhausted = DatasetExport.objects.create(project=project, status=JobStatus.RUNNING, attempts=2, heartbeat_at=old)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        outcome = stale_runs_sweep()
    assert outcome == {"resumed": [f"DatasetExport #{quiet.pk}"], "failed": [f"DatasetExport #{exhausted.pk}"],
                       "resent": []}
    assert len(sent) == 1  # the resumed export's task, sent once the sweep commits
    quiet.refresh_from_db(), healthy.refresh_from_db(), exhausted.refresh_from_db()
    assert quiet.status == JobStatus.RUNNING and quiet.heartbeat_at > old
    assert healthy.status == JobStatus.RUNNING
    assert exhausted.status == JobStatus.FAILED and "stopped reporting" in exhausted.error
    assert stale_runs_sweep() == {"resumed": [], "failed": [], "resent": []}  # the resumed one has time to start again


def test_an_inference_run_resumes_only_its_unfinished_chunks():
    project = make_project()
    add_images(project, 3, size=64)
    version = add_model_version(project)
    run = InferenceRun.objects.create(project=project, model_version=version, status=JobStatus.RUNNING)
    done = InferenceChunk.objects.create(run=run, number=0, image_ids=[1], finished=True)
    left = InferenceChunk.objects.create(run=run, number=1, image_ids=[2])
    assert run.pending_tasks() == [("inference.tasks.inference_chunk_execute", [left.pk])]
    assert done.pk != left.pk


def test_progress_and_attempts_are_heartbeats(settings):
    project = make_project()
    export = DatasetExport.objects.create(project=project)
    run = job_attempt_start(DatasetExport, run_id=export.pk)
    first = run.heartbeat_at
    assert first is not None
    progress = JobProgress(run, interval=0)
    progress.add(1)
    run.refresh_from_db()
    assert run.heartbeat_at > first and run.progress_done == 1
    assert TrainingRun(pk=5).pending_tasks() == [("training.tasks.training_run_execute", [5])]


def test_a_run_queued_too_long_is_sent_again_once_a_period(settings, django_capture_on_commit_callbacks):
    """Its message may be lost (a queued project deletion would hide its project for good); if it was only
    waiting, the first of its two messages to come holds it and the other leaves it alone (test_jobs.py)."""
    project = make_project()
    stale = timedelta(minutes=settings.JOB_STALE_MINUTES + 1)
    deletion = ProjectDeletion.objects.create(project=project, project_name=project.name,
                                              created_at=timezone.now() - stale)
    rerank = RerankRun.objects.create(project=make_project(), score_threshold=0.4, created_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert stale_runs_sweep()["resent"] == [f"ProjectDeletion #{deletion.pk}"]  # the rerank is not late yet
        assert stale_runs_sweep()["resent"] == []  # just sent: not again this period
    assert len(sent) == 1
    with django_capture_on_commit_callbacks(execute=False):
        assert sorted(stale_runs_sweep(now=timezone.now() + stale)["resent"]) == [
            f"ProjectDeletion #{deletion.pk}", f"RerankRun #{rerank.pk}"]
    ProjectDeletion.objects.filter(pk=deletion.pk).update(status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    assert stale_runs_sweep(now=timezone.now() + stale / 2)["resent"] == []  # started: the running rules apply


def test_a_resumed_job_is_taken_by_the_first_message_to_come(settings, django_capture_on_commit_callbacks):
    """Its holder went with its worker: the sweeper releases the run (and an inference run's chunks)."""
    project = make_project()
    add_images(project, 2, size=64)
    old = timezone.now() - timedelta(minutes=settings.JOB_STALE_MINUTES + 1)
    export = DatasetExport.objects.create(project=project, status=JobStatus.RUNNING, attempts=1, heartbeat_at=old,
                                          held_by_task="lost")
    run = InferenceRun.objects.create(project=project, model_version=add_model_version(project),
                                      status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
    done = InferenceChunk.objects.create(run=run, number=0, image_ids=[1], finished=True, held_by_task="a")
    left = InferenceChunk.objects.create(run=run, number=1, image_ids=[2], held_by_task="b")
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sorted(stale_runs_sweep()["resumed"]) == [f"DatasetExport #{export.pk}", f"InferenceRun #{run.pk}"]
    assert len(sent) == 2
    export.refresh_from_db(), done.refresh_from_db(), left.refresh_from_db()
    assert (export.held_by_task, left.held_by_task, done.held_by_task) == ("", "", "a")


def test_the_demo_resumes_a_job_its_last_stop_interrupted_at_once(settings, django_capture_on_commit_callbacks):
    """Ctrl-C in a fine-tune takes its worker and, on the filesystem broker, its message: `rundemo` resumes
    every running job before it starts the demo's workers, not after 30 quiet minutes."""
    import io

    from review.management.commands.rundemo import Command

    settings.JOB_MAX_ATTEMPTS = 2
    project = make_project()
    just_now = timezone.now() - timedelta(seconds=5)
    interrupted = RerankRun.objects.create(project=project, score_threshold=0.4, status=JobStatus.RUNNING, attempts=1,
                                           heartbeat_at=just_now)
    worn_out = DatasetExport.objects.create(project=project, status=JobStatus.RUNNING, attempts=2, heartbeat_at=just_now)
    assert stale_runs_sweep() == {"resumed": [], "failed": [], "resent": []}  # quiet for 5 s: not stale
    command = Command(stdout=io.StringIO())
    with django_capture_on_commit_callbacks(execute=False) as sent:
        command._resume_interrupted()
    assert len(sent) == 1
    said = command.stdout.getvalue()
    assert f"resumed RerankRun #{interrupted.pk}" in said and f"failed DatasetExport #{worn_out.pk}" in said
    worn_out.refresh_from_db()
    assert worn_out.status == JobStatus.FAILED and "its workers were stopped" in worn_out.error
