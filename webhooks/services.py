"""Writes of the webhooks app: webhooks themselves (managers), events turned into deliveries, and
one delivery attempt (the Celery task's work)."""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from review.models import Project
from webhooks import delivery
from webhooks.models import PING, DeliveryStatus, Event, Webhook, WebhookDelivery, new_secret

MAX_WEBHOOKS_PER_PROJECT = 20
# Each webhook keeps its newest deliveries; older ones are deleted as new ones arrive.
DELIVERIES_KEPT = 200
# Seconds to wait before attempts 2, 3, 4 and 5: a receiver that is down for a deploy is caught up.
RETRY_DELAYS = (10, 60, 300, 1800)
TIMEOUT_SECONDS = 10


def webhook_create(*, project: Project, user: AbstractBaseUser | None, url: str, events: list[str]) -> Webhook:
    if project.webhooks.count() >= MAX_WEBHOOKS_PER_PROJECT:
        raise ValidationError(f"A project has at most {MAX_WEBHOOKS_PER_PROJECT} webhooks; delete one first.")
    webhook = Webhook(project=project, created_by=user, url=_checked_url(url), events=_checked_events(events))
    webhook.save()
    return webhook


def webhook_update(*, webhook: Webhook, url: str | None = None, events: list[str] | None = None,
                   is_active: bool | None = None, rotate_secret: bool = False) -> Webhook:
    if url is not None:
        webhook.url = _checked_url(url)
    if events is not None:
        webhook.events = _checked_events(events)
    if is_active is not None:
        webhook.is_active = is_active
    if rotate_secret:
        webhook.secret = new_secret()
    webhook.save()
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    webhook.delete()  # its deliveries go with it; a queued task finds no row and stops


def _checked_url(url: str) -> str:
    url = (url or "").strip()
    if len(url) > Webhook._meta.get_field("url").max_length:
        raise ValidationError({"url": "A webhook URL has at most 500 characters."})
    refusal = delivery.url_refusal(url)
    # A literal address is checked now; a name is checked when it is resolved, at each delivery.
    if not refusal and _is_literal_address(host := urlsplit(url).hostname):
        refusal = delivery.address_refusal(host, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES)
    if refusal:
        raise ValidationError({"url": refusal})
    return url


def _is_literal_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    return True


def _checked_events(events) -> list[str]:
    if not isinstance(events, (list, tuple)) or not events:
        raise ValidationError({"events": f"Choose at least one event: {', '.join(Event.values)}."})
    unknown = [name for name in events if name not in Event.values]
    if unknown:
        raise ValidationError({"events": f"Unknown event {unknown[0]!r}; choose from {', '.join(Event.values)}."})
    return [name for name in Event.values if name in events]  # one order, no repeats


def webhook_event_send(*, project_id: int, event: str, data: dict | Callable[[], dict]) -> list[WebhookDelivery]:
    """Record the event for every active webhook of the project that subscribes to it; each is sent
    once the caller's transaction commits (never for a change that was rolled back). `data` may be a
    function, called only when some webhook wants the event."""
    hooks = [hook for hook in Webhook.objects.filter(project_id=project_id, is_active=True) if event in hook.events]
    if hooks and callable(data):
        data = data()
    return [_delivery_queue(hook, event, data) for hook in hooks]


def webhook_ping(*, webhook: Webhook) -> WebhookDelivery:
    """A test delivery, whatever the webhook subscribes to (and even when it is turned off)."""
    return _delivery_queue(webhook, PING, {"webhook": webhook.pk, "url": webhook.url})


def delivery_redeliver(*, delivery_row: WebhookDelivery) -> WebhookDelivery:
    """Send a past delivery's event again, as a new delivery with the same body."""
    return _delivery_queue(delivery_row.webhook, delivery_row.event, delivery_row.payload["data"],
                           created_at=delivery_row.payload["created_at"])


def _delivery_queue(hook: Webhook, event: str, data: dict, *, created_at: str | None = None) -> WebhookDelivery:
    payload = {"event": event, "project": hook.project_id, "created_at": created_at or timezone.now().isoformat(),
               "data": data}
    row = WebhookDelivery.objects.create(webhook=hook, event=event, payload=payload)
    stale = WebhookDelivery.objects.filter(webhook=hook).values_list("pk", flat=True)[DELIVERIES_KEPT:]
    WebhookDelivery.objects.filter(pk__in=list(stale)).delete()
    transaction.on_commit(lambda: delivery_send_later(row.pk, countdown=0))
    return row


def delivery_send_later(delivery_id: int, *, countdown: int) -> None:
    """Queue the delivery's task (on the default queue), to run in `countdown` seconds."""
    from webhooks.tasks import webhook_delivery_send

    webhook_delivery_send.apply_async((delivery_id,), countdown=countdown)


def delivery_attempt(*, delivery_id: int) -> int | None:
    """POST a pending delivery once. Returns the seconds until the next attempt when it failed and
    may be retried, else None (sent, failed for good, or nothing to do)."""
    row = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if row is None or row.status != DeliveryStatus.PENDING:
        return None  # deleted with its webhook, or a redelivered task of a finished delivery
    row.attempts += 1
    row.last_attempt_at = timezone.now()
    body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True).encode()
    try:
        row.response_status = delivery.post(
            row.webhook.url, body=body, secret=row.webhook.secret, event=row.event, delivery_id=row.pk,
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES, timeout=TIMEOUT_SECONDS)
    except delivery.DeliveryFailed as exc:
        row.response_status, row.error = exc.status, str(exc)
        retry = row.attempts <= len(RETRY_DELAYS)
        row.status = DeliveryStatus.PENDING if retry else DeliveryStatus.FAILED
        row.save()
        return RETRY_DELAYS[row.attempts - 1] if retry else None
    row.status, row.error = DeliveryStatus.SUCCEEDED, ""
    row.save()
    return None


# A pending delivery untouched for longer than its longest wait between attempts, and then some, lost
# its task (a broker restart that forgot the message): the sweep sends it again.
STALE_AFTER = timedelta(seconds=max(RETRY_DELAYS), minutes=15)


def deliveries_stale_resend(*, now=None) -> list[int]:
    """Queue again each pending delivery whose task was lost; its ids. Celery beat runs this (project/settings.py)."""
    cutoff = (now or timezone.now()) - STALE_AFTER
    stale = list(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
                 .filter(Q(last_attempt_at__lt=cutoff) | Q(last_attempt_at__isnull=True, created_at__lt=cutoff))
                 .values_list("pk", flat=True))
    for delivery_id in stale:
        transaction.on_commit(lambda delivery_id=delivery_id: delivery_send_later(delivery_id, countdown=0))
    return stale


def job_finished_send(sender, *, run, **kwargs) -> None:
    """project.jobs.job_finished's receiver: a finished job is an event when its model names one."""
    if not run.webhook_event:
        return
    # Read again: the worker wrote some results (a training run's version and comparison) with
    # update() calls that the object it passed to job_finish does not carry.
    webhook_event_send(project_id=run.project_id, event=run.webhook_event,
                       data=lambda: type(run).objects.get(pk=run.pk).webhook_data())


# A send-back to many images names the first ones and counts the rest: a body stays small.
MENTION_IMAGES_LISTED = 100


def label_class_renamed_send(sender, *, project_id: int, label_class, old_name: str, new_name: str,
                             **kwargs) -> None:
    """review.signals.label_class_renamed's receiver: a deployment that shows the model's class names
    (ModelVersion.class_names, which follow the rename) learns the new one without polling."""
    webhook_event_send(project_id=project_id, event=Event.LABEL_CLASS_RENAMED, data={
        "id": label_class.pk, "old_name": old_name, "new_name": new_name,
        "api": f"/api/v1/label-classes/{label_class.pk}/"})


def members_mentioned_send(sender, *, project_id: int, author, text: str, user_ids: list[int], image_ids: list[int],
                           **kwargs) -> None:
    """review.signals.members_mentioned's receiver: who was named, by whom, where (the editor's paths)."""
    def data() -> dict:
        names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
        return {"author": author.get_username() if author else None, "text": text,
                "mentioned": [{"id": user_id, "username": names.get(user_id)} for user_id in user_ids],
                "image_count": len(image_ids),
                "images": [{"id": image_id, "editor": f"/images/{image_id}/edit"}
                           for image_id in image_ids[:MENTION_IMAGES_LISTED]]}
    webhook_event_send(project_id=project_id, event=Event.COMMENT_MENTION, data=data)
