"""What the management commands share: finding the project, and progress printed on the terminal."""
from __future__ import annotations

import time

from django.core.management.base import CommandError, OutputWrapper
from django.db.models import Q
from django.utils import timezone

from project.jobs import ACTIVE_STATUSES, JobRun
from review.models import Project, project_being_deleted


def project_from_arg(value: str) -> Project:
    """A project by id, or by its exact name when that is unique."""
    found = Project.objects.filter(pk=int(value)) if value.isdigit() else Project.objects.filter(name=value)
    projects = list(found.exclude(project_being_deleted())[:2])
    if len(projects) != 1:
        raise CommandError(f"No single project {value!r} (one being deleted does not count): give a project id "
                           "(see the project list or the admin).")
    return projects[0]


class ProgressPrinter:
    """A one-line progress bar, redrawn at most every `interval` seconds (always when a job ends)."""

    def __init__(self, stdout: OutputWrapper, label: str, *, interval: float = 0.5, width: int = 30) -> None:
        self.stdout, self.label, self.interval, self.width = stdout, label, interval, width
        self._last = 0.0

    def __call__(self, done: int, total: int | None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if total:
            filled = int(self.width * min(done, total) / total)
            bar = "#" * filled + "." * (self.width - filled)
            self.stdout.write(f"\r{self.label} [{bar}] {100 * min(done, total) / total:5.1f}% {done}/{total}", ending="")
        else:
            self.stdout.write(f"\r{self.label} {done} done", ending="")
        self.stdout.flush()

    def end(self) -> None:
        self.stdout.write("")


def follow_run(run: JobRun, stdout: OutputWrapper, label: str, *, poll: float = 1.0, hint_after: float = 15.0) -> JobRun:
    """Print a queued run's progress as workers report it, until it finishes; Ctrl-C stops following only."""
    printer = ProgressPrinter(stdout, label, interval=0)
    started, hinted = time.monotonic(), False
    try:
        while True:
            run.refresh_from_db()
            printer(run.progress_done, run.progress_total or None)
            if run.is_finished:
                break
            if run.status == "queued" and not hinted and time.monotonic() - started > hint_after:
                queues = ",".join(run.queues()) or "default,inference,training"
                stdout.write(f"\nStill queued: is a worker of the {queues} queue running? "
                             f"(.venv/bin/celery -A project worker -Q {queues})")
                hinted = True
            time.sleep(poll)
    except KeyboardInterrupt:
        stdout.write(f"\nStopped following; run #{run.pk} goes on in the workers (cancel it in the UI or API).")
        return run
    printer.end()
    return run


class JobWatcher:
    """Say in the terminal what the workers are doing: one line when a job starts, as it advances
    (each epoch of a fine-tune, each tenth of other jobs) and when it ends, with its result."""

    def __init__(self, stdout: OutputWrapper, models: list[type[JobRun]], describe) -> None:
        self.stdout, self.models, self.describe = stdout, models, describe
        self._seen: dict[tuple[str, int], tuple] = {}
        self._since = None

    def poll(self) -> None:
        since, self._since = self._since, timezone.now()
        for model in self.models:
            recent = Q(status__in=ACTIVE_STATUSES)
            if since is not None:
                recent |= Q(finished_at__gte=since)
            for run in model.objects.filter(recent).order_by("created_at"):
                key = (model.__name__, run.pk)
                # A job queued a minute says once which queue's worker it waits for (JobRun.waiting).
                state = (run.status, getattr(run, "epoch", None) or int(run.percent // 10), bool(run.waiting))
                if self._seen.get(key) != state:
                    self._seen[key] = state
                    self.stdout.write(self.describe(run))

    def run_forever(self, *, interval: float = 2.0) -> None:
        while True:
            try:
                self.poll()
            except Exception as exc:  # a busy SQLite file now and then must not end the watching
                self.stdout.write(f"(job watcher: {type(exc).__name__}: {exc})")
            time.sleep(interval)
