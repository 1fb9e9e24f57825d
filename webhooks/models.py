"""Webhooks: a project's managers name URLs that are told, by a signed JSON POST, when something
happens that another system acts on: above all a new active model, which a deployment picks up.

Each event for each subscribed webhook is a WebhookDelivery row, written in the transaction that
caused it and sent by a Celery task on the `default` queue (webhooks/tasks.py), retried with backoff.
"""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from review.models import Project


class Event(models.TextChoices):
    MODEL_VERSION_ACTIVATED = "model_version.activated", "A model version became the active one (promoted or rolled back)"
    TRAINING_RUN_FINISHED = "training_run.finished", "A training run finished (succeeded, failed or cancelled)"
    INFERENCE_RUN_FINISHED = "inference_run.finished", "An inference run finished"
    DATASET_IMPORT_FINISHED = "dataset_import.finished", "A dataset import finished"
    DATASET_EXPORT_FINISHED = "dataset_export.finished", "A dataset export finished (ready to download)"
    LABEL_CLASS_RENAMED = "label_class.renamed", "A label class was renamed: the models name it anew too"
    COMMENT_MENTION = "comment.mention", "Members were named in a comment (@username): tell them in your chat"


# Not subscribable: what "Send a test" sends, whatever the webhook's events.
PING = "ping"


def new_secret() -> str:
    return secrets.token_hex(32)


class Webhook(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500, help_text="Where the events are POSTed (http or https).")
    events = models.JSONField(default=list, help_text="The event names this webhook is sent.")
    secret = models.CharField(
        max_length=64, default=new_secret,
        help_text="Signs each body: X-Webhook-Signature is sha256=HMAC-SHA256(secret, body) in hex.",
    )
    is_active = models.BooleanField(default=True, help_text="Off: no new deliveries; the history stays.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The body sent, the same on every attempt.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True,
                                                       help_text="The receiver's HTTP status on the last attempt.")
    error = models.TextField(blank=True, help_text="Why the last attempt failed.")
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["webhook", "-created_at"])]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook.url}"
