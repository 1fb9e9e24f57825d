"""`make demo`'s workers: one that stops by itself is started again, one that keeps stopping is left with its log named."""
import io
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from project.jobs import JobStatus
from review.management.commands.rundemo import DemoWorkers
from tests.factories import make_project
from training.models import TrainingRun

STOPS = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
RUNS = [sys.executable, "-c", "import time; time.sleep(60)"]


def stopped(process) -> bool:
    deadline = time.monotonic() + 20
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.poll() is not None


def test_a_worker_that_stops_is_started_again_until_it_keeps_stopping(tmp_path):
    out = io.StringIO()
    workers = DemoWorkers(tmp_path, out, commands={"crashy": STOPS, "steady": RUNS})
    steady = workers.processes["steady"]
    try:
        pids = []
        for _ in range(DemoWorkers.MAX_RESTARTS):
            first = workers.processes["crashy"]
            assert stopped(first)
            workers.check()
            assert workers.processes["crashy"] is not first
            pids.append(workers.processes["crashy"].pid)
        assert out.getvalue().count("Worker crashy stopped (exit code 3;") == DemoWorkers.MAX_RESTARTS
        assert f"started it again (pid {pids[-1]})" in out.getvalue()

        assert stopped(workers.processes["crashy"])
        workers.check()
        workers.check()
        assert workers.processes["crashy"].pid == pids[-1]  # left stopped, said once
        assert out.getvalue().count("left stopped after 3 restarts") == 1
        assert str(tmp_path / "worker-crashy.log") in out.getvalue()
        assert (tmp_path / "worker-crashy.log").read_text().count("boom") == DemoWorkers.MAX_RESTARTS + 1

        assert workers.processes["steady"] is steady and steady.poll() is None
    finally:
        workers.stop()
    assert steady.poll() is not None


def test_nothing_is_started_again_once_the_demo_stops(tmp_path):
    out = io.StringIO()
    workers = DemoWorkers(tmp_path, out, commands={"w": RUNS})
    process = workers.processes["w"]
    workers.stop()
    assert stopped(process)
    workers.check()
    assert workers.processes["w"] is process and out.getvalue() == ""


@pytest.mark.django_db
def test_the_job_a_stopped_worker_left_running_resumes_once_its_heartbeats_are_overdue(tmp_path, settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.2  # overdue after 2.5 beats: 0.5 s; the sweep comes 0.6 s after the stop
    project = make_project()
    left = TrainingRun.objects.create(project=project, status=JobStatus.RUNNING, attempts=1,
                                      heartbeat_at=timezone.now() - timedelta(seconds=30))
    alive = TrainingRun.objects.create(project=make_project(name="other"), status=JobStatus.RUNNING, attempts=1)
    out = io.StringIO()
    marker = tmp_path / "stopped-once"
    stops_once = [sys.executable, "-c", f"import pathlib, sys, time; m = pathlib.Path({str(marker)!r}); "
                                        "(m.touch(), sys.exit(3)) if not m.exists() else time.sleep(60)"]
    workers = DemoWorkers(tmp_path, out, commands={"crashy": stops_once})
    try:
        assert stopped(workers.processes["crashy"])
        workers.check()
        assert "A job it was running resumes in about 0 minutes, once it has missed its heartbeats." in out.getvalue()
        workers.check()
        assert "Jobs left" not in out.getvalue()  # not yet: a pool process still working would still beat
        time.sleep(0.7)
        TrainingRun.objects.filter(pk=alive.pk).update(heartbeat_at=timezone.now())  # its worker beats
        workers.check()
        assert f"Jobs left by the worker that stopped: resumed TrainingRun #{left.pk}" in out.getvalue()
        assert f"#{alive.pk}" not in out.getvalue()
        left.refresh_from_db()
        assert left.status == JobStatus.RUNNING and left.heartbeat_at > timezone.now() - timedelta(seconds=5)
        workers.check()
        assert out.getvalue().count("Jobs left") == 1
    finally:
        workers.stop()
