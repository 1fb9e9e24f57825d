"""The stale-run sweeper: a job still `running` whose worker stopped reporting is resumed or failed, never left.

Celery redelivers a task whose worker died (acks_late), but not when the broker lost the message
too (a Redis restart without persistence, a deleted queue). Every JOB_SWEEP_SECONDS Celery beat runs
`stale_runs_sweep`: a running job with no heartbeat for JOB_STALE_MINUTES has its remaining tasks
sent again, up to JOB_MAX_ATTEMPTS attempts, and is then failed with a clear error. A heartbeat is
any progress report, or the beat a job's worker process sends every JOB_HEARTBEAT_SECONDS while it
works however quiet the job is (project/jobs.py job_heartbeat; inference chunks report every batch
instead), so only a job whose process is gone goes stale, not one in a long evaluation.

A job lost while still queued never starts, so it never goes stale: a run queued for JOB_STALE_MINUTES
has its tasks sent again, at most once a period. Whichever message comes first holds the job
(project/jobs.py message_hold), so a run that was only waiting behind others, and now has two
messages, still runs once, in its place in the line.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from project.jobs import JobRun, JobStatus, job_finish

logger = logging.getLogger(__name__)


def job_models() -> list[type[JobRun]]:
    """Every concrete run model of every app (found at run time: this module sits below the apps)."""
    return [model for model in apps.get_models() if issubclass(model, JobRun)]


def stale_runs_sweep(*, now=None, stale_after: timedelta | None = None) -> dict[str, list[int]]:
    """Resume or fail each stale running job, and send again the tasks of jobs queued too long;
    returns {"resumed": [...], "failed": [...], "resent": [...]} as 'Model #id'.

    `stale_after` (default JOB_STALE_MINUTES): how long a running job's silence makes it stale. Zero is
    for a caller that knows no worker is running (`rundemo` before it starts the demo's workers)."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.JOB_STALE_MINUTES)
    stale_cutoff = cutoff if stale_after is None else now - stale_after
    outcome: dict[str, list] = {"resumed": [], "failed": [], "resent": []}
    for model in job_models():
        outcome["resent"] += _queued_tasks_resend(model, cutoff, now)
        stale_ids = list(model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_cutoff)
                         .values_list("pk", flat=True))
        for run_id in stale_ids:
            with transaction.atomic():
                run = model.objects.select_for_update().filter(pk=run_id, status=JobStatus.RUNNING,
                                                               heartbeat_at__lt=stale_cutoff).first()
                if run is None:
                    continue  # it reported, or finished, meanwhile
                label = f"{model.__name__} #{run.pk}"
                if run.attempts >= settings.JOB_MAX_ATTEMPTS:
                    silence = (f"no sign of life for {settings.JOB_STALE_MINUTES} minutes" if stale_after is None
                               else "its workers were stopped")
                    job_finish(run, status=JobStatus.FAILED, error=(
                        f"The worker stopped reporting ({silence}) after {run.attempts} attempts; gave up. "
                        "See the worker logs."))
                    outcome["failed"].append(label)
                    continue
                model.objects.filter(pk=run.pk).update(heartbeat_at=now)  # give the resumed tasks time to start
                run.holders_release()  # its holder went with its worker: the first message to come, old or new, takes it
                tasks = run.pending_tasks()
                transaction.on_commit(lambda tasks=tasks: [current_app.send_task(name, args=args)
                                                           for name, args in tasks])
                outcome["resumed"].append(label)
            logger.warning("stale-run sweeper: %s %s", "failed" if label in outcome["failed"] else "resumed", label)
    return outcome


def _queued_tasks_resend(model: type[JobRun], cutoff, now) -> list[str]:
    """Send again the tasks of runs queued since before `cutoff` (or resent then): their message may be lost.

    A run that was merely waiting behind others gets a second message; the first to arrive holds it and
    the other leaves it alone. heartbeat_at marks the resend, so each run is sent at most once a period.
    """
    waiting = model.objects.filter(status=JobStatus.QUEUED).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff))
    resent = []
    for run in waiting:
        with transaction.atomic():
            if not model.objects.filter(pk=run.pk, status=JobStatus.QUEUED).update(heartbeat_at=now):
                continue  # it started meanwhile
            tasks = run.pending_tasks()
            transaction.on_commit(lambda tasks=tasks: [current_app.send_task(name, args=args) for name, args in tasks])
        resent.append(f"{model.__name__} #{run.pk}")
        logger.warning("stale-run sweeper: sent %s's task again (queued since %s)", resent[-1], run.created_at)
    return resent
