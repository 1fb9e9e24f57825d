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
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.urls import reverse

from project.jobs import JobStatus
from review.models import NotificationSettings, Project

logger = logging.getLogger(__name__)
SEND_TASK = "review.tasks.notification_email_send"
EMAIL_CONFIRM_SALT = "review.notifications.email_confirm"
EMAIL_CONFIRM_DAYS = 3


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


def pending_email_of(user) -> str:
    """The address `user` asked for and has not confirmed yet, or ""."""
    return NotificationSettings.objects.filter(user=user).values_list("pending_email", flat=True).first() or ""


def account_save(*, user, email: str, **wanted: bool) -> bool:
    """Save which kinds of e-mail a user gets, and their address; True when the address waits for confirmation.

    A new address counts only once its owner opened a link e-mailed to it (`email_confirm`), so
    nobody can have the project's e-mails sent to an address that is not theirs. An empty address,
    or any address while the installation sends no e-mail (nothing could confirm it, nothing goes
    there), is saved at once.
    """
    unknown = set(wanted) - {kind.setting for kind in KINDS.values()}
    if unknown:
        raise ValueError(f"unknown notification settings: {sorted(unknown)}")
    email = get_user_model().objects.normalize_email(email.strip())
    confirm = bool(email) and email != user.email and settings.EMAIL_NOTIFICATIONS
    already = pending_email_of(user)
    with transaction.atomic():
        if not confirm and email != user.email:
            get_user_model().objects.filter(pk=user.pk).update(email=email)
        pending = email if confirm else ""
        NotificationSettings.objects.update_or_create(user=user, defaults={**wanted, "pending_email": pending})
        if confirm and email != already:  # saved again while waiting: the link already sent still works
            _email_confirm_send(user, email)  # a failure rolls the save back
    if not confirm:
        user.email = email
    return confirm


def _email_confirm_send(user, email: str) -> None:
    token = signing.dumps({"user": user.pk, "email": email}, salt=EMAIL_CONFIRM_SALT)
    link = _url(reverse("review:email_confirm", args=[token]))
    message = EmailMessage(
        "Confirm your e-mail address for Detector review",
        f"Hello {user.get_username()},\n\nOpen this link to receive the e-mails of Detector review at {email}:\n\n"
        f"{link}\n\nIt works for {EMAIL_CONFIRM_DAYS} days. If you did not ask for this, ignore this e-mail: nothing "
        "changes.\n", to=[email])
    try:
        message.send()
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("confirmation e-mail to user %s failed: %s", user.pk, exc)
        raise ValidationError(f"The confirmation e-mail could not be sent ({exc}); nothing was saved. "
                              "Try again later.")


def email_confirm(*, user, token: str) -> str:
    """Make the address a confirmation link was sent to the user's; returns it. ValidationError for a bad link.

    A link works once, for its own user, for EMAIL_CONFIRM_DAYS, and only while its address is the
    one last asked for.
    """
    try:
        data = signing.loads(token, salt=EMAIL_CONFIRM_SALT, max_age=timedelta(days=EMAIL_CONFIRM_DAYS))
    except signing.SignatureExpired:
        raise ValidationError("This link has expired: save the address on your account page again for a new one.")
    except signing.BadSignature:
        raise ValidationError("This link is not valid: copy the whole link from the e-mail.")
    if data.get("user") != user.pk:
        raise ValidationError("This link is for another account: log in as the one that asked for it.")
    with transaction.atomic():
        wanted = NotificationSettings.objects.select_for_update().filter(user=user).first()
        if wanted is None or not wanted.pending_email or wanted.pending_email != data.get("email"):
            raise ValidationError("This link was used already, or another address was asked for since.")
        get_user_model().objects.filter(pk=user.pk).update(email=wanted.pending_email)
        NotificationSettings.objects.filter(pk=wanted.pk).update(pending_email="")
    user.email = wanted.pending_email
    return user.email


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
