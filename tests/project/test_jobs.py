import threading
import time
from datetime import timedelta

import pytest
from celery import shared_task
from django.test import Client
from django.utils import timezone

from inference.models import InferenceRun
from inference.services import inference_run_create
from project.jobs import JobProgress, JobStatus, job_attempt_start, job_cancel_request, job_finish, job_heartbeat
from review.models import ProjectDeletion, Role
from review.project_deletion import project_deletion_start
from tests.factories import TINY_ARCHITECTURE, add_images, add_model_version, api_client, make_project
from training.models import TrainingRun
from workers.models import Worker
from workers.services import worker_gone, worker_seen


@pytest.fixture
def run(db):
    project = make_project()
    version = add_model_version(project)
    return InferenceRun.objects.create(project=project, model_version=version, progress_total=10)


def test_attempt_start_counts_and_marks_running(run):
    started = job_attempt_start(InferenceRun, run_id=run.pk)
    assert started.status == JobStatus.RUNNING and started.attempts == 1 and started.started_at


@shared_task(name="tests.project.attempt_start")
def attempt_start_task(run_id: int) -> InferenceRun | None:
    return job_attempt_start(InferenceRun, run_id=run_id)


def attempt_start_by(message: str, run: InferenceRun) -> InferenceRun | None:
    """job_attempt_start as the Celery message `message` calls it."""
    return attempt_start_task.apply(args=[run.pk], task_id=message).get()


def test_a_job_is_held_by_the_message_that_started_it(run):
    assert attempt_start_by("first", run).held_by_task == "first"
    assert attempt_start_by("second", run) is None  # sent again while the first only waited: left alone
    run.refresh_from_db()
    assert (run.status, run.attempts, run.held_by_task) == (JobStatus.RUNNING, 1, "first")
    assert attempt_start_by("first", run).attempts == 2  # the holder's redelivery, after its worker died
    run.holders_release()  # the sweeper: the holder is gone, the next message to come takes it
    assert attempt_start_by("second", run).held_by_task == "second"
    assert attempt_start_by("first", run) is None


def test_attempts_exhausted_fail_the_run_with_a_reason(run, settings):
    InferenceRun.objects.filter(pk=run.pk).update(attempts=settings.JOB_MAX_ATTEMPTS)
    assert job_attempt_start(InferenceRun, run_id=run.pk) is None
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "Gave up after" in run.error


def test_cancel_before_start_cancels_at_once(run):
    job_cancel_request(run)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert job_attempt_start(InferenceRun, run_id=run.pk) is None


def test_cancel_of_a_run_read_queued_but_started_since_leaves_it_to_its_worker(run):
    stale = InferenceRun.objects.get(pk=run.pk)  # read while queued, say by the page that shows the button
    job_attempt_start(InferenceRun, run_id=run.pk)
    cancelled = job_cancel_request(stale)
    assert (cancelled.status, cancelled.cancel_requested, cancelled.finished_at) == (JobStatus.RUNNING, True, None)


def test_progress_is_throttled_then_flushed(run):
    progress = JobProgress(run, interval=3600)
    progress.add(3)
    progress.add(4)
    assert InferenceRun.objects.get(pk=run.pk).progress_done == 0  # not yet written
    progress.flush()
    run.refresh_from_db()
    assert run.progress_done == 7 and run.percent == 70.0


def test_progress_sees_cancel_request(run):
    progress = JobProgress(run, interval=0)
    assert not progress.cancelled()
    InferenceRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    assert progress.cancelled()


def test_finish_keeps_the_first_outcome(run):
    job_finish(run, status=JobStatus.SUCCEEDED)
    job_finish(run, status=JobStatus.FAILED, error="late")
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.error == ""


def test_progress_of_a_deleted_run_says_stop(run):
    """A run deleted with its project: its worker stops at the next check instead of running to the end."""
    progress = JobProgress(run, interval=0)
    assert not progress.cancelled()
    run.project.delete()
    assert progress.cancelled()


@pytest.mark.django_db(transaction=True)
def test_a_quiet_job_is_kept_alive_by_its_heartbeat_until_its_block_ends():
    """An hour of evaluation with no progress report is not a dead worker: the sweeper leaves it alone."""
    project = make_project()
    run = InferenceRun.objects.create(project=project, model_version=add_model_version(project))
    run = job_attempt_start(InferenceRun, run_id=run.pk)
    started = run.heartbeat_at

    def heartbeat():
        return InferenceRun.objects.values_list("heartbeat_at", flat=True).get(pk=run.pk)
    with job_heartbeat(run, every=0.05):
        deadline = time.monotonic() + 10
        while heartbeat() == started and time.monotonic() < deadline:
            time.sleep(0.05)  # the job itself says nothing
        assert heartbeat() > started  # fresh, so the sweeper passes it over (tests/project/test_sweeper.py)
    last = heartbeat()
    time.sleep(0.3)
    assert heartbeat() == last  # the beats stop with the block
    assert not any(thread.name.startswith("heartbeat-") for thread in threading.enumerate())


def _queued_since(run, seconds: float):
    type(run).objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))
    run.refresh_from_db()
    return run


def test_a_job_queued_a_minute_says_which_queue_it_waits_for(db, settings):
    settings.JOB_WAIT_NOTICE_SECONDS = 60
    project = make_project()
    add_model_version(project)
    add_images(project, 2)
    inference = inference_run_create(project=project, user=None, scope="all")
    training = TrainingRun.objects.create(project=project, architecture=TINY_ARCHITECTURE)
    assert inference.waiting == "" and training.waiting == ""  # just queued: nothing to say yet

    inference, training = _queued_since(inference, 61), _queued_since(training, 3 * 3600)
    assert inference.waiting == ("waiting 1 min for a worker of the inference queue: none is running; "
                                 "start one with `celery -A project worker -Q inference`")
    assert training.waiting.startswith("waiting 3 h for a worker of the training queue")

    deletion = _queued_since(project_deletion_start(project=project), 600)  # it cancels the others
    assert "10 min for a worker of the default queue" in deletion.waiting
    inference.refresh_from_db()
    assert inference.status == JobStatus.CANCELLED and inference.waiting == ""

    ProjectDeletion.objects.filter(pk=deletion.pk).update(status=JobStatus.RUNNING)
    deletion.refresh_from_db()
    assert deletion.waiting == ""  # a worker has it


def test_a_waiting_job_says_whether_its_queue_has_a_worker_and_what_that_worker_does(db, settings):
    settings.JOB_WAIT_NOTICE_SECONDS, settings.WORKER_BEAT_SECONDS = 60, 20
    run = _queued_since(TrainingRun.objects.create(project=make_project(), architecture=TINY_ARCHITECTURE), 300)
    now = timezone.now()
    start = now - timedelta(hours=1)
    # A worker of another queue is no help; one of this queue killed 10 min ago is said as the last seen.
    worker_seen(name="cpu@host-1", queues=["default", "inference"], concurrency=1, pid=1, tasks=[], started_at=start)
    Worker.objects.create(name="gpu-train@host-2", queues=["training"], seen_at=now - timedelta(minutes=10))
    assert run.waiting == ("waiting 5 min for a worker of the training queue: none is running (one was last seen "
                           "10 min ago); start one with `celery -A project worker -Q training`")
    assert "host" not in run.waiting  # the machines' names are for the admin's Workers page

    # Back, and busy: the job waits its turn.
    busy = [{"id": "t1", "name": "training.tasks.training_run_execute", "args": [7], "since": now.isoformat()}]
    worker_seen(name="gpu-train@host-2", queues=["training"], concurrency=1, pid=2, tasks=busy, started_at=start)
    assert run.waiting == "waiting 5 min for a worker of the training queue: its worker is busy with other jobs"
    worker_seen(name="gpu-train@host-3", queues=["default", "training"], concurrency=2, pid=3, tasks=busy * 2,
                started_at=start)
    assert run.waiting.endswith("training queue: its 2 workers are busy with other jobs")

    # Free, and the job still waits: the message may be lost (the sweeper sends it again).
    worker_seen(name="gpu-train@host-3", queues=["default", "training"], concurrency=2, pid=3, tasks=busy,
                started_at=start)
    assert run.waiting == ("waiting 5 min for a worker of the training queue: 1 of its 2 workers was free at the last "
                           "beat and has not taken it; if that lasts, its message may be lost, and it is sent again "
                           f"once the job has waited {settings.JOB_STALE_MINUTES} min")

    # Three beats unseen is stopped; a clean stop takes the row with it.
    Worker.objects.update(seen_at=now - timedelta(seconds=61))
    assert "none is running (one was last seen 1 min ago)" in run.waiting
    worker_gone(name="gpu-train@host-2")
    worker_gone(name="gpu-train@host-3")
    assert run.waiting.endswith("queue: none is running; start one with `celery -A project worker -Q training`")


def test_the_api_and_the_project_page_say_it(db, settings):
    settings.JOB_WAIT_NOTICE_SECONDS = 60
    project = make_project()
    manager = project.memberships.get(role=Role.MANAGER).user
    run = _queued_since(TrainingRun.objects.create(project=project, architecture=TINY_ARCHITECTURE), 300)
    data = api_client(manager).get(f"/api/v1/training-runs/{run.pk}/").json()
    assert data["status"] == "queued" and data["waiting"].startswith("waiting 5 min for a worker of the training queue")
    browser = Client()
    browser.force_login(manager)
    page = browser.get(f"/projects/{project.pk}/").content.decode()
    assert "queued: waiting 5 min for a worker of the training queue" in page
