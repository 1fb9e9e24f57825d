"""E-mail to members about work that waits for them: a comment names them, an image they reviewed is
sent back, images are assigned to them; and to whoever started a fine-tune how it ended, or any job
that failed.

The request only queues a task (after its transaction commits, so a change rolled back tells nobody);
a `default`-queue worker writes and sends the e-mails, so a slow or broken mail server never slows a
save. At send time each recipient must still be a member of the project, have an address and want
that kind of e-mail (NotificationSettings; no row: all kinds). One action makes one e-mail per
person, however many images it touched. Off unless EMAIL_HOST is set (or DEBUG: printed by the worker).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.urls import reverse

from project.jobs import JobStatus
from review.models import NotificationSettings, Project

logger = logging.getLogger(__name__)
SEND_TASK = "review.tasks.notification_email_send"


@dataclass(frozen=True)
class Kind:
    setting: str      # the NotificationSettings field that turns it off
    queue_filter: str  # the queue filter that lists its images for the recipient


KINDS = {
    "mention": Kind("email_mentions", "mentioned"),
    "send_back": Kind("email_send_backs", "sent_back_to"),
    "assignment": Kind("email_assignments", "assigned_to"),
    "job": Kind("email_jobs", ""),  # no images: the e-mail links to the project
}


def notify_later(*, kind: str, project_id: int, user_ids, author_id: int | None, image_ids, text: str = "") -> None:
    """Queue the e-mails of one action for when the caller's transaction commits."""
    recipients = sorted({u for u in user_ids if u is not None and u != author_id})
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if not settings.EMAIL_NOTIFICATIONS or not recipients or (kind != "job" and not image_ids):
        return
    kwargs = {"kind": kind, "project_id": project_id, "user_ids": recipients, "author_id": author_id,
              "image_ids": sorted(image_ids), "text": text}
    transaction.on_commit(partial(current_app.send_task, SEND_TASK, kwargs=kwargs))


def notification_settings_of(user) -> dict[str, bool]:
    """Which kinds of e-mail `user` gets, by NotificationSettings field."""
    row = NotificationSettings.objects.filter(user=user).first()
    return {kind.setting: getattr(row, kind.setting) if row else True for kind in KINDS.values()}


def account_save(*, user, email: str, **wanted: bool) -> None:
    """Change a user's e-mail address and which kinds of e-mail they get."""
    unknown = set(wanted) - {kind.setting for kind in KINDS.values()}
    if unknown:
        raise ValueError(f"unknown notification settings: {sorted(unknown)}")
    with transaction.atomic():
        get_user_model().objects.filter(pk=user.pk).update(email=email)
        NotificationSettings.objects.update_or_create(user=user, defaults=wanted)
    user.email = email


def mentioned_notify(sender, *, project_id: int, author, text: str, user_ids: list[int], image_ids: list[int],
                     **kwargs) -> None:
    """Receiver of review.signals.members_mentioned."""
    notify_later(kind="mention", project_id=project_id, user_ids=user_ids, author_id=author.pk if author else None,
                 image_ids=image_ids, text=text)


def job_finished_notify(sender, *, run, **kwargs) -> None:
    """Receiver of project.jobs.job_finished: a training run's end, and any job's failure, to whoever started it."""
    if run.status == JobStatus.FAILED or (run.notify_every_end and run.status == JobStatus.SUCCEEDED):
        notify_later(kind="job", project_id=run.project_id, user_ids=[run.requested_by_id], author_id=None,
                     image_ids=[], text=run.notification_summary())


def notification_email_send(*, kind: str, project_id: int, user_ids: list[int], author_id: int | None,
                            image_ids: list[int], text: str = "") -> int:
    """Write and send one action's e-mails (in a worker). Returns how many were sent."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    users = get_user_model().objects
    recipients = list(users.filter(pk__in=user_ids, is_active=True, memberships__project=project).exclude(email="")
                      .exclude(pk__in=NotificationSettings.objects.filter(**{KINDS[kind].setting: False})
                               .values("user_id")).order_by("pk"))
    if not recipients:
        return 0
    author = users.filter(pk=author_id).first() if author_id else None
    messages = [EmailMessage(*_message(kind, project, author, user, image_ids, text), to=[user.email])
                for user in recipients]
    sent = get_connection().send_messages(messages) or 0
    logger.info("notification %s for project %s: %s of %s e-mails sent", kind, project_id, sent, len(messages))
    return sent


def _message(kind: str, project: Project, author, user, image_ids: list[int], text: str) -> tuple[str, str]:
    if kind == "job":
        link = _url(reverse("review:project_detail", args=[project.pk]))
        # A header holds one line: an error's traceback or a long reason goes in the body whole.
        subject = " ".join(f"{project.name}: {text}".split())
        return (subject if len(subject) <= 150 else subject[:149] + "…",
                f"Hello {user.get_username()},\n\n{project.name}: {text}\n\nOpen: {link}\n{_footer()}")
    who = author.get_username() if author else "Someone"
    images = f"{len(image_ids)} images" if len(image_ids) > 1 else "an image"
    subject, lead = {
        "mention": (f"{who} mentioned you in {project.name}", f"{who} mentioned you on {images} in {project.name}:"),
        "send_back": (f"{who} sent back {images} you reviewed in {project.name}",
                      f"{who} sent back {images} you reviewed in {project.name}, to be reviewed again"
                      + (":" if text else ".")),
        "assignment": (f"{who} assigned {len(image_ids)} image{'s' if len(image_ids) > 1 else ''} to you in "
                       f"{project.name}", f"{who} assigned {images} in {project.name} to you to review."),
    }[kind]
    if len(image_ids) == 1:
        link = _url(reverse("review:image_editor", args=[image_ids[0]]))
    else:
        link = _url(reverse("review:project_queue", args=[project.pk]) + f"?{KINDS[kind].queue_filter}={user.pk}")
    quoted = "".join(f"> {line}\n" for line in text.splitlines()) if text else ""
    body = f"Hello {user.get_username()},\n\n{lead}\n\n{quoted}{chr(10) if quoted else ''}Open: {link}\n{_footer()}"
    return subject, body


def _footer() -> str:
    return f"\n--\nWhich e-mails you get: {_url(reverse('review:account'))}\n"


def _url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"
