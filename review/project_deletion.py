"""Deleting a project in a worker: hidden at once, its images deleted a chunk at a time, then the rest.

A project of 100,000 predicted images takes about a minute to delete on PostgreSQL (bench/delete.py),
longer than a web request may take. So a manager's delete only starts a ProjectDeletion: from
that moment the project is gone for everyone (review/access.py and the project list leave it out)
and its running jobs are asked to stop; a `default`-queue worker then deletes its images in chunks
of CHUNK, one transaction each (review.services.images_delete, which the predictions follow), and
finally the project row with everything still in it (review.services.project_delete).

Progress is images deleted of all. Cancelled (between chunks) or failed, the project comes back
with the images not yet deleted; the ones deleted stay deleted. A worker killed mid-way resumes:
what is left is simply deleted.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from project.jobs import (
    ACTIVE_STATUSES, JobProgress, JobStatus, job_attempt_start, job_cancel_request, job_finish, job_heartbeat,
    job_queue_on_commit,
)
from project.sweeper import job_models
from review.models import Image, Membership, Project, ProjectDeletion, Role
from review.services import images_delete, project_delete

logger = logging.getLogger(__name__)

CHUNK = 1000
TASK = "review.tasks.project_deletion_execute"


@transaction.atomic
def project_deletion_start(*, project: Project, user: AbstractBaseUser | None = None) -> ProjectDeletion:
    """Hide the project, stop its jobs and queue its deletion; ValidationError if it is already being deleted."""
    Project.objects.select_for_update().filter(pk=project.pk).first()  # two deletes at once: the second waits, then refuses
    if ProjectDeletion.objects.filter(project=project, status__in=ACTIVE_STATUSES).exists():
        raise ValidationError("This project is already being deleted.")
    for model in job_models():
        if model is not ProjectDeletion and any(field.name == "project" for field in model._meta.fields):
            for run in model.objects.filter(project=project, status__in=ACTIVE_STATUSES):
                job_cancel_request(run)
    deletion = ProjectDeletion.objects.create(project=project, project_name=project.name, requested_by=user,
                                              progress_total=Image.objects.filter(project=project).count())
    job_queue_on_commit(deletion, TASK)
    return deletion


def project_deletion_cancel(*, deletion: ProjectDeletion) -> ProjectDeletion:
    """Stop the deletion between chunks; the project comes back with the images it still has.

    ValidationError once it finished, also when it finished while this waited for its last step.
    """
    return job_cancel_request(deletion)


def deletions_visible_to(user: AbstractBaseUser) -> QuerySet[ProjectDeletion]:
    """The deletions `user` may follow and cancel: those they asked for, and those of projects they manage."""
    managed = Membership.objects.filter(user_id=user.pk, role=Role.MANAGER).values("project_id")
    return ProjectDeletion.objects.filter(Q(requested_by_id=user.pk) | Q(project_id__in=managed))


def deletions_on_project_list(user: AbstractBaseUser) -> list[ProjectDeletion]:
    """What the project list shows `user`: deletions still going, and their own of the last day however they ended."""
    recent = Q(requested_by_id=user.pk, finished_at__gte=timezone.now() - timedelta(days=1))
    return list(deletions_visible_to(user).filter(Q(status__in=ACTIVE_STATUSES) | recent)
                .order_by("-created_at", "-id")[:20])


def project_deletion_execute(*, run_id: int, progress_interval: float = 1.0) -> ProjectDeletion | None:
    """Delete the project's images chunk by chunk, then the project, reporting progress."""
    run = job_attempt_start(ProjectDeletion, run_id=run_id)
    if run is None:
        return None
    with job_heartbeat(run):
        return _delete(run, JobProgress(run, interval=progress_interval))


def _delete(run: ProjectDeletion, progress: JobProgress) -> ProjectDeletion:
    images = Image.objects.filter(project_id=run.project_id).order_by("pk").values_list("pk", flat=True)
    # A resumed run counts what an earlier attempt deleted as done; images added meanwhile join the total.
    ProjectDeletion.objects.filter(pk=run.pk).update(progress_total=F("progress_done") + images.count())
    try:
        while ids := list(images[:CHUNK]):
            if progress.cancelled():
                return _finish(run, progress, JobStatus.CANCELLED)
            images_delete(images=Image.objects.filter(pk__in=ids))
            progress.add(len(ids))
        progress.flush()
        if not _project_delete(run):
            return _finish(run, progress, JobStatus.CANCELLED)
    except Exception as exc:  # said now, not left "running" until the sweeper looks
        logger.exception("deletion %s failed", run.pk)
        return _finish(run, progress, JobStatus.FAILED,
                       error=f"The deletion failed ({type(exc).__name__}: {exc}); the project is back with the "
                       "images not yet deleted. Delete it again.")
    run.refresh_from_db()
    return run


@transaction.atomic
def _project_delete(run: ProjectDeletion) -> bool:
    """The project with what is left in it, unless a cancel came first; marks the run succeeded with it.

    The run's row is held while the project goes, so a cancel either comes before (and the project
    stays) or waits and finds the run finished: never a 'cancelled' run whose project is gone.
    """
    locked = ProjectDeletion.objects.select_for_update().get(pk=run.pk)
    if locked.cancel_requested:
        return False
    project = Project.objects.filter(pk=run.project_id).first()
    if project is not None:
        project_delete(project=project)
    job_finish(locked, status=JobStatus.SUCCEEDED)
    return True


def _finish(run: ProjectDeletion, progress: JobProgress, status: str, error: str = "") -> ProjectDeletion:
    progress.flush()
    job_finish(run, status=status, error=error)
    run.refresh_from_db()
    return run
