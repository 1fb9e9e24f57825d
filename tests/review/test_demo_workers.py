"""`make demo`'s workers: one that stops by itself is started again, one that keeps stopping is left with its log named."""
import io
import sys
import time

from review.management.commands.rundemo import DemoWorkers

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
