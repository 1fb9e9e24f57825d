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

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from project.chunked_deletion import chunked_deletion_execute, jobs_cancel
from project.jobs import ACTIVE_STATUSES, job_cancel_request, job_queue_on_commit
from project.row_locks import key_share_lock
from review.models import Image, Membership, Project, ProjectDeletion, Role
from review.services import images_delete, project_delete

CHUNK = 1000
TASK = "review.tasks.project_deletion_execute"


@transaction.atomic
def project_deletion_start(*, project: Project, user: AbstractBaseUser | None = None) -> ProjectDeletion:
    """Hide the project, stop its jobs and queue its deletion; ValidationError if it is already being deleted."""
    Project.objects.select_for_update().filter(pk=project.pk).first()  # two deletes at once: the second waits, then refuses
    if project_is_being_deleted(project):
        raise ValidationError("This project is already being deleted.")
    jobs_cancel(project=project)
    deletion = ProjectDeletion.objects.create(project=project, project_name=project.name, requested_by=user,
                                              progress_total=Image.objects.filter(project=project).count())
    job_queue_on_commit(deletion, TASK)
    return deletion


def project_deletion_guard(project: Project) -> None:
    """Refuse a new job of a project that is being deleted; call it in the transaction that creates the job.

    The project's row is held (FOR KEY SHARE) until that transaction ends: a deletion starting meanwhile
    waits for it, then cancels the new job with the others; one that started first is seen here.
    Pages and the API already answer 404 for such a project; this stops the admin's actions and
    anything else that reaches the services directly.
    """
    key_share_lock(Project.objects.filter(pk=project.pk))
    if project_is_being_deleted(project):
        raise ValidationError(f"{project.name} is being deleted.")


def project_is_being_deleted(project: Project) -> bool:
    return ProjectDeletion.objects.filter(project=project, status__in=ACTIVE_STATUSES).exists()


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
    return chunked_deletion_execute(
        ProjectDeletion, run_id=run_id, remaining=lambda run: _images(run).count(), chunk_delete=_chunk_delete,
        last_step=_project_delete, kept="the project is back with the images not yet deleted.",
        progress_interval=progress_interval)


def _images(run: ProjectDeletion) -> QuerySet[Image]:
    return Image.objects.filter(project_id=run.project_id)


def _chunk_delete(run: ProjectDeletion) -> int:
    """The project's CHUNK first images, with what is theirs (review.services.images_delete's transaction)."""
    ids = list(_images(run).order_by("pk").values_list("pk", flat=True)[:CHUNK])
    return images_delete(images=Image.objects.filter(pk__in=ids)) if ids else 0


def _project_delete(run: ProjectDeletion) -> None:
    """The project with what is left in it (chunked_deletion's last step, in its transaction)."""
    if (project := Project.objects.filter(pk=run.project_id).first()) is not None:
        project_delete(project=project)
