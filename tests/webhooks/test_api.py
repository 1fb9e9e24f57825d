"""The webhooks API as a manager uses it; who may call it is in tests/project/test_api_permissions.py."""
import pytest

from review.models import Role
from tests.factories import api_client, make_project
from webhooks.models import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager():
    project = make_project()
    return project, api_client(project.memberships.get(role=Role.MANAGER).user)


def test_add_list_change_and_delete_a_webhook(manager):
    project, client = manager
    response = client.post(f"/api/v1/projects/{project.pk}/webhooks/",
                           {"url": "https://deploy.example/hook", "events": ["model_version.activated"]}, format="json")
    assert response.status_code == 201, response.data
    hook_id, secret = response.data["id"], response.data["secret"]
    assert len(secret) == 64 and response.data["events"] == ["model_version.activated"]
    assert client.get(f"/api/v1/projects/{project.pk}/webhooks/").data["results"][0]["id"] == hook_id

    response = client.patch(f"/api/v1/webhooks/{hook_id}/", {"rotate_secret": True, "is_active": False}, format="json")
    assert response.status_code == 200 and response.data["secret"] != secret and response.data["is_active"] is False

    assert client.delete(f"/api/v1/webhooks/{hook_id}/").status_code == 204
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"url": "file:///etc/passwd", "events": ["ping"]}, "url"),
    ({"url": "http://[::1/hook", "events": ["model_version.activated"]}, "url"),
    ({"url": "https://deploy.example/hook", "events": ["everything"]}, "events"),
    ({"url": "https://deploy.example/hook"}, "events"),
    ({"events": ["model_version.activated"]}, "url"),
])
def test_bad_input_is_a_400_naming_the_field_and_adds_nothing(manager, body, field):
    project, client = manager
    response = client.post(f"/api/v1/projects/{project.pk}/webhooks/", body, format="json")
    assert response.status_code == 400 and field in response.data["fields"], response.data
    assert response.data["detail"].startswith(field)
    assert not Webhook.objects.exists()


def test_ping_then_read_and_resend_deliveries(manager):
    project, client = manager
    hook = client.post(f"/api/v1/projects/{project.pk}/webhooks/",
                       {"url": "https://deploy.example/hook", "events": ["training_run.finished"]}, format="json").data
    ping = client.post(f"/api/v1/webhooks/{hook['id']}/ping/")
    assert ping.status_code == 202 and ping.data["event"] == "ping" and ping.data["status"] == "pending"
    listed = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries/").data["results"]
    assert [row["id"] for row in listed] == [ping.data["id"]]
    again = client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{ping.data['id']}/redeliver/")
    assert again.status_code == 202 and again.data["id"] != ping.data["id"]
    assert again.data["payload"] == ping.data["payload"]


def test_a_delivery_of_another_webhook_is_not_found(manager):
    project, client = manager
    first, second = (client.post(f"/api/v1/projects/{project.pk}/webhooks/",
                                 {"url": f"https://deploy.example/{n}", "events": ["training_run.finished"]},
                                 format="json").data for n in (1, 2))
    ping = client.post(f"/api/v1/webhooks/{first['id']}/ping/").data
    response = client.post(f"/api/v1/webhooks/{second['id']}/deliveries/{ping['id']}/redeliver/")
    assert response.status_code == 404 and WebhookDelivery.objects.count() == 1
