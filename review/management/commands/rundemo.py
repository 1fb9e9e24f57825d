"""Start the Celery workers and the web server together; Ctrl-C stops them all."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

# A command is a top-floor caller like a view: it may read every app's jobs.
from datasets.models import DatasetExport, DatasetImport
from inference.model_exports import check_in_words
from inference.models import InferenceRun, ModelExport, ModelVersionDeletion, RerankRun
from project.cli import JobWatcher
from project.jobs import JobRun, JobStatus
from project.sweeper import stale_runs_sweep
from review.models import ProjectDeletion
from training.models import TrainingRun

# Two workers, as a small deployment would run them: fine-tuning on its own, so that inference,
# imports and exports never wait behind a training run.
WORKERS = [
    ("demo-train", "training", []),
    # Embedded beat: the stale-run sweeper (project/sweeper.py). At scale, run one `celery beat`.
    ("demo", "default,inference", ["--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]),
]


class Command(BaseCommand):
    help = "Run the Celery workers (a training one and one for everything else) and the web server together."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--quiet-jobs", action="store_true", help="Do not print the jobs' progress.")

    def handle(self, *args, addr: str, quiet_jobs: bool, **options):
        # `kill` (SIGTERM) stops the workers too, as Ctrl-C does, instead of leaving them behind.
        signal.signal(signal.SIGTERM, _interrupt)
        logs = settings.VAR_DIR / "logs"
        logs.mkdir(exist_ok=True)
        self._resume_interrupted()
        workers = DemoWorkers(logs, self.stdout)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, workers.interrupt)
        self.stdout.write(f"Celery workers started (pids {workers.pids()}; logs in {logs}); web server on http://{addr}/")
        threading.Thread(target=workers.keep_running, daemon=True, name="worker-keeper").start()
        if not quiet_jobs:
            watcher = JobWatcher(self.stdout, list(JOB_NAMES), describe)
            threading.Thread(target=watcher.run_forever, daemon=True, name="job-watcher").start()
        try:
            call_command("runserver", addr, use_reloader=False)
        finally:
            workers.stop()


    def _resume_interrupted(self) -> None:
        """A job left running when the demo last stopped (Ctrl-C in a fine-tune) lost its worker with it, and
        the filesystem broker its message: resume it now rather than after the sweeper's 30 quiet minutes.
        Every worker of the demo is started here, so none is running yet."""
        outcome = stale_runs_sweep(stale_after=timedelta(0))
        if outcome["resumed"] or outcome["failed"]:
            self.stdout.write("Jobs interrupted when the demo last stopped: "
                              + "; ".join(f"{what} {', '.join(runs)}" for what, runs in outcome.items()
                                          if runs and what != "resent"))


class DemoWorkers:
    """The demo's worker processes. One that stops by itself (a crash, killed for memory) is said in the
    terminal and started again, so the page's jobs do not wait for ever on a worker nobody runs; one
    that stops again at once MAX_RESTARTS times within RESTART_WINDOW seconds is left stopped, with its log named.

    The job such a worker was running lost its message with it (the filesystem broker hands a message
    over once). Once its heartbeat is overdue (no worker process is left on it: a pool process still
    working keeps beating), the stale-run sweeper resumes it, after about 3 minutes rather than the
    JOB_STALE_MINUTES a deployment waits, which must allow for a machine lost from the network."""

    MAX_RESTARTS = 3
    RESTART_WINDOW = 600.0
    MISSED_HEARTBEATS = 2.5  # a running job silent this many heartbeats after a worker stopped is resumed

    def __init__(self, logs: Path, stdout, commands: dict[str, list[str]] | None = None) -> None:
        self.logs, self.stdout = logs, stdout
        self.commands = commands or {
            name: [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", queues, "--concurrency", "1",
                   "--loglevel", "INFO", "-n", f"{name}@%h", *extra]
            for name, queues, extra in WORKERS}
        self._lock = threading.Lock()
        self._stopping = False
        self._restarts: dict[str, list[float]] = {name: [] for name in self.commands}
        self._given_up: set[str] = set()
        self._sweep_at: float | None = None  # when to resume the jobs a stopped worker left running
        self.processes = {name: self._start(name) for name in self.commands}

    def _start(self, name: str) -> subprocess.Popen:
        return subprocess.Popen(self.commands[name], cwd=settings.BASE_DIR, stderr=subprocess.STDOUT,
                                stdout=(self.logs / f"worker-{name}.log").open("a"))

    def pids(self) -> str:
        return ", ".join(str(process.pid) for process in self.processes.values())

    def check(self) -> None:
        """Start again each worker that stopped by itself, unless it keeps stopping; resume its jobs once overdue."""
        with self._lock:
            for name, process in self.processes.items():
                if self._stopping or name in self._given_up or process.poll() is None:
                    continue
                now = time.monotonic()
                self._sweep_at = now + (self.MISSED_HEARTBEATS + 0.5) * settings.JOB_HEARTBEAT_SECONDS
                recent = self._restarts[name] = [t for t in self._restarts[name] if now - t < self.RESTART_WINDOW]
                log = self.logs / f"worker-{name}.log"
                if len(recent) >= self.MAX_RESTARTS:
                    self.stdout.write(f"Worker {name} stopped again (exit code {process.returncode}); left stopped "
                                      f"after {len(recent)} restarts in {self.RESTART_WINDOW / 60:.0f} minutes: see {log}")
                    self._given_up.add(name)
                    continue
                recent.append(now)
                self.processes[name] = self._start(name)
                self.stdout.write(f"Worker {name} stopped (exit code {process.returncode}; see {log}); started it "
                                  f"again (pid {self.processes[name].pid}). A job it was running resumes in about "
                                  f"{(self._sweep_at - now) / 60:.0f} minutes, once it has missed its heartbeats.")
            if self._sweep_at is not None and time.monotonic() >= self._sweep_at and not self._stopping:
                self._sweep_at = None
                self._resume_overdue()

    def _resume_overdue(self) -> None:
        silence = timedelta(seconds=self.MISSED_HEARTBEATS * settings.JOB_HEARTBEAT_SECONDS)
        outcome = stale_runs_sweep(stale_after=silence)
        if outcome["resumed"] or outcome["failed"]:
            self.stdout.write("Jobs left by the worker that stopped: " + "; ".join(
                f"{what} {', '.join(runs)}" for what, runs in outcome.items() if runs and what != "resent"))

    def keep_running(self, *, interval: float = 2.0) -> None:
        while not self._stopping:
            try:
                self.check()
            except Exception as exc:  # a busy SQLite file in the sweep must not end the watching
                self.stdout.write(f"(worker keeper: {type(exc).__name__}: {exc})")
            time.sleep(interval)

    def interrupt(self, signum, frame) -> None:
        """Ctrl-C (or `kill`): a Ctrl-C reaches the workers too, and none of them may be started again."""
        self._stopping = True
        raise KeyboardInterrupt

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        running = [process for process in self.processes.values() if process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


# The jobs the terminal follows, as the pages name them.
JOB_NAMES = {DatasetImport: "Import", TrainingRun: "Training run", InferenceRun: "Inference", DatasetExport: "Export",
             RerankRun: "Rerank", ModelVersionDeletion: "Model version deletion", ProjectDeletion: "Project deletion",
             ModelExport: "ONNX export"}


def describe(run: JobRun) -> str:
    """One terminal line about a job, in the words of the project page."""
    head = f"[jobs] {JOB_NAMES[type(run)]} #{run.pk}"
    if run.status == JobStatus.FAILED:
        return f"{head} failed: {run.error}"
    if run.status in (JobStatus.QUEUED, JobStatus.CANCELLED):
        return f"{head} {run.status}" + (f": {run.waiting}" if run.status == JobStatus.QUEUED and run.waiting else "")
    if isinstance(run, TrainingRun):
        return head + " " + _training(run)
    if isinstance(run, InferenceRun) and run.status == JobStatus.SUCCEEDED:
        return (f"{head} done: {run.progress_total} images, {run.predictions_written} boxes proposed"
                + (f", {run.images_per_second:.1f} images/s" if run.images_per_second else "")
                + ". Open the review queue to see them.")
    if isinstance(run, ModelExport) and run.status == JobStatus.SUCCEEDED:
        return (f"{head} done: v{run.version_number} as ONNX, {run.size_bytes / 1e6:.0f} MB; "
                f"{check_in_words(run.check_result)}. Download it from the models page.")
    return f"{head} {run.status}: {run.percent:.0f}% ({run.progress_done}/{run.progress_total})"


def _training(run: TrainingRun) -> str:
    if run.status == JobStatus.SUCCEEDED:
        comparison = run.comparison or {}
        new = comparison.get("new") or {}
        verdict = "now the active model" if comparison.get("promoted") else "kept, not promoted"
        return (f"done: v{new.get('version')} holdout mAP {new.get('map', 0):.3f}, AP50 {new.get('ap50', 0):.3f} "
                f"({verdict}; {comparison.get('reason')})")
    epochs = run.params.get("epochs")
    last = (run.eval_history or [{}])[-1]
    loss = run.loss_history[-1]["loss"] if run.loss_history else None
    parts = [f"epoch {run.epoch or 0}/{epochs}", f"{run.percent:.0f}%"]
    if loss is not None:
        parts.append(f"loss {loss:.3f}")
    if last:
        parts.append(f"holdout mAP {last.get('map', 0):.3f} AP50 {last.get('ap50', 0):.3f}")
    if run.eta_seconds:
        parts.append(f"about {run.eta_seconds / 60:.1f} min left")
    return "training: " + ", ".join(parts)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
