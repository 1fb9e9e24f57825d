"""The webhooks page: managers only, and every form changes what it says or nothing."""
import pytest
from django.test import Client

from review.models import Role
from tests.factories import add_member, make_project
from webhooks.models import Webhook, WebhookDelivery
from webhooks.services import webhook_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def project_and_manager():
    project = make_project()
    client = Client()
    client.force_login(project.memberships.get(role=Role.MANAGER).user)
    return project, client


def test_only_managers_see_the_page():
    project = make_project()
    url = f"/projects/{project.pk}/webhooks/"
    for role, status in ((Role.ANNOTATOR, 403), (Role.REVIEWER, 403)):
        client = Client()
        client.force_login(add_member(project, role))
        assert client.get(url).status_code == status
    client = Client()
    client.force_login(add_member(make_project(name="Elsewhere"), Role.MANAGER))
    assert client.get(url).status_code == 404
    hook = webhook_create(project=project, user=None, url="https://hooks.example/a", events=["training_run.finished"])
    assert client.post(f"/webhooks/{hook.pk}/delete").status_code == 404 and Webhook.objects.exists()


def test_add_test_turn_off_and_delete_from_the_page(project_and_manager):
    project, client = project_and_manager
    page = client.post(f"/projects/{project.pk}/webhooks/add", {
        "url": "https://deploy.example/hook", "events": ["model_version.activated", "dataset_export.finished"]},
        follow=True)
    assert page.status_code == 200 and b"Added a webhook" in page.content
    hook = Webhook.objects.get()
    assert hook.events == ["model_version.activated", "dataset_export.finished"]
    assert hook.secret.encode() in page.content

    page = client.post(f"/webhooks/{hook.pk}/ping", follow=True)
    assert WebhookDelivery.objects.get().event == "ping" and b'data-delivery-status="pending"' in page.content
    client.post(f"/webhooks/{hook.pk}/toggle")
    hook.refresh_from_db()
    assert not hook.is_active
    client.post(f"/webhooks/{hook.pk}/delete")
    assert not Webhook.objects.exists()


def test_a_refused_webhook_says_why_and_adds_nothing(project_and_manager):
    project, client = project_and_manager
    page = client.post(f"/projects/{project.pk}/webhooks/add", {"url": "gopher://old.example"}, follow=True)
    assert b"The webhook was not added" in page.content and b"http:// or https://" in page.content
    assert not Webhook.objects.exists()


def test_the_settings_page_links_to_the_webhooks(project_and_manager):
    project, client = project_and_manager
    page = client.get(f"/projects/{project.pk}/settings/")
    assert f'href="/projects/{project.pk}/webhooks/"'.encode() in page.content
