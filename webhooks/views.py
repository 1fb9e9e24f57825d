"""The webhooks page of a project (managers): add, test, turn off and delete webhooks, and read what
each delivery got back. Each form posts to its own URL and calls one service; what a service refuses
comes back as a message and changes nothing."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from review.access import object_for_member, project_for_member
from review.forms import refusal_reported
from review.models import Role
from webhooks import services
from webhooks.models import Event, Webhook

DELIVERIES_SHOWN = 10


@login_required
@require_GET
def webhook_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    webhooks = list(project.webhooks.all())
    for webhook in webhooks:
        webhook.recent = list(webhook.deliveries.all()[:DELIVERIES_SHOWN])
    return render(request, "webhooks/webhooks.html", {"project": project, "webhooks": webhooks,
                                                      "events": Event.choices})


@login_required
@require_POST
def webhook_add(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    with refusal_reported(request, "The webhook was not added"):
        webhook = services.webhook_create(project=project, user=request.user, url=request.POST.get("url", ""),
                                          events=request.POST.getlist("events"))
        messages.success(request, f"Added a webhook to {webhook.url}. Send a test to check that it is reached.")
    return _back(project.pk)


@login_required
@require_POST
def webhook_ping(request: HttpRequest, webhook_id: int) -> HttpResponseRedirect:
    webhook = _webhook(request, webhook_id)
    services.webhook_ping(webhook=webhook)
    messages.success(request, f"A test delivery to {webhook.url} is on its way; reload to see its answer.")
    return _back(webhook.project_id)


@login_required
@require_POST
def webhook_toggle(request: HttpRequest, webhook_id: int) -> HttpResponseRedirect:
    webhook = _webhook(request, webhook_id)
    services.webhook_update(webhook=webhook, is_active=not webhook.is_active)
    messages.success(request, f"The webhook to {webhook.url} is {'on' if webhook.is_active else 'off'}.")
    return _back(webhook.project_id)


@login_required
@require_POST
def webhook_remove(request: HttpRequest, webhook_id: int) -> HttpResponseRedirect:
    webhook = _webhook(request, webhook_id)
    services.webhook_delete(webhook=webhook)
    messages.success(request, f"Deleted the webhook to {webhook.url}.")
    return _back(webhook.project_id)


@login_required
@require_POST
def delivery_redeliver(request: HttpRequest, webhook_id: int, delivery_id: int) -> HttpResponseRedirect:
    webhook = _webhook(request, webhook_id)
    row = get_object_or_404(webhook.deliveries, pk=delivery_id)
    services.delivery_redeliver(delivery_row=row)
    messages.success(request, f"Sending {row.event} to {webhook.url} again.")
    return _back(webhook.project_id)


def _webhook(request: HttpRequest, webhook_id: int) -> Webhook:
    return object_for_member(request.user, Webhook.objects.all(), webhook_id, role=Role.MANAGER)


def _back(project_id: int) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("webhooks:webhook_list", args=[project_id]))

