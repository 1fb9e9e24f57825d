"""Real Celery worker processes on the real broker and the test database."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from project.celery import app as celery_app
from project.env import broker_config, broker_transport

REPO = Path(__file__).resolve().parents[2]
WORKER_LOG_LINES = 60  # of each worker's log, shown under a failed test


def redis_url() -> str:
    """A Redis database of its own for the tests, on the host CELERY_BROKER_URL names: 15, and one below it
    for each further pytest-xdist process (gw1: 14), since a test empties its database first."""
    configured = os.environ.get("CELERY_BROKER_URL", "")
    host = configured.split("://", 1)[1].split("/", 1)[0] if configured.startswith("redis://") else "127.0.0.1:6379"
    process = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    return f"redis://{host}/{15 - process}"


def redis_available(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def use_broker(url: str, options: dict) -> None:
    """Point this (test) process's Celery app at the broker the worker uses."""
    from kombu import pools

    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    os.environ["CELERY_BROKER_URL"] = url
    celery_app.conf.broker_url = url
    celery_app.conf.broker_transport = broker_transport(url)
    celery_app.conf.broker_transport_options = options
    pools.reset()  # kombu keeps connection and producer pools globally, keyed by connection
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


class Worker:
    """One `celery worker` subprocess; `child_pids()` are its prefork pool processes."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str, queues: str, beat: bool = False) -> None:
        self.log_path = log_path
        self.node = f"{name}@{socket.gethostname()}"  # Celery's node name: `-n name@%h`
        # With beat, the worker also runs celery beat's schedule (as `make demo` does), its state beside the log.
        beat_args = ["--beat", "--schedule", str(log_path.with_suffix(".beat"))] if beat else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", queues,
             "--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO", "-n", f"{name}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", *beat_args],
            cwd=REPO, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if " ready." in self.log():
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def torch_loaded(self) -> bool:
        """Whether the worker or any of its pool processes has torch's shared library mapped."""
        return any("libtorch" in Path(f"/proc/{pid}/maps").read_text()
                   for pid in [self.process.pid, *self.child_pids()])

    def terminate(self, timeout: float = 60) -> int:
        """A clean stop, as systemd's or Kubernetes's SIGTERM: Celery finishes the running task, then exits."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        # Tests do not need a graceful drain: kill the pool processes and the worker at once.
        for pid in self.child_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(params=["filesystem", "redis"])
def broker(request, tmp_path):
    """The broker under test: Celery's filesystem transport, then Redis."""
    if request.param == "redis":
        url = redis_url()
        if not redis_available(url):
            if os.environ.get("CI"):
                pytest.fail(f"Redis is not reachable at {url}, and CI must test it.")
            pytest.skip(f"Redis is not reachable at {url} (start redis-server to run this case).")
        import redis

        redis.Redis.from_url(url).flushdb()
        broker_url, options = url, broker_config(url, tmp_path)[1]
    else:
        broker_url, options = broker_config("filesystem://", tmp_path)
    previous_env = os.environ.get("CELERY_BROKER_URL")
    previous = (celery_app.conf.broker_url, celery_app.conf.broker_transport_options)
    use_broker(broker_url, options)
    yield {"url": broker_url, "var_dir": tmp_path}
    use_broker(*previous)
    if previous_env is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = previous_env


@pytest.fixture
def start_worker(broker, tmp_path, media_root, transactional_db):
    """Start N workers sharing this test's broker, database and media folder."""
    workers: list[Worker] = []

    def start(name: str = "w", queues: str = "default,inference,training", beat: bool = False,
              **extra_env: str) -> Worker:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker["url"],
            "VAR_DIR": str(broker["var_dir"]),
            "MEDIA_ROOT": str(media_root),
            "DEBUG": "1",
            **extra_env,
        }
        worker = Worker(env, tmp_path / f"worker-{name}-{uuid.uuid4().hex[:6]}.log", f"{name}-{uuid.uuid4().hex[:6]}",
                        queues, beat)
        workers.append(worker)
        worker.wait_ready()
        return worker

    start.workers = workers  # for pytest_runtest_makereport below
    yield start
    for worker in workers:
        worker.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed integration test's report ends with its workers' logs (their last lines), so a CI failure
    says what the worker did: a worker that exited, a task that raised, one that never arrived."""
    outcome = yield
    report = outcome.get_result()
    start = item.funcargs.get("start_worker") if hasattr(item, "funcargs") else None
    if report.when != "call" or not report.failed or start is None:
        return
    for worker in getattr(start, "workers", []):
        exited = worker.process.poll()
        lines = worker.log().splitlines()[-WORKER_LOG_LINES:]
        report.sections.append((f"worker {worker.log_path.name}" + (f" (exited: {exited})" if exited is not None
                                                                     else ""), "\n".join(lines)))


def finished(model, job_id):
    """The job's row once it has finished, else None: for wait_for."""
    job = model.objects.get(pk=job_id)
    return job if job.is_finished else None


def wait_for(predicate, *, timeout: float = 120, interval: float = 0.3, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {message}")
