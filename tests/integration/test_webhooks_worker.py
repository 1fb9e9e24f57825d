"""Webhooks sent by a real worker: a finished inference run and a promoted model reach a receiver,
signed with the webhook's secret."""
import json

import pytest

from inference.services import inference_run_create
from review.models import Role
from tests.factories import add_images, add_model_version, api_client, make_project
from tests.integration.conftest import wait_for
from webhooks.delivery import signature
from webhooks.models import DeliveryStatus, WebhookDelivery
from webhooks.services import webhook_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_tells_the_receiver_about_a_finished_run_and_a_new_active_model(start_worker, broker, receiver):
    if broker["url"].startswith("redis"):
        pytest.skip("deliveries are ordinary default-queue tasks; the filesystem broker's case is enough")
    project = make_project()
    add_images(project, 3, size=96)
    first = add_model_version(project)
    hook = webhook_create(project=project, user=None, url=f"{receiver.url}/deploy",
                          events=["inference_run.finished", "model_version.activated"])
    start_worker()

    run = inference_run_create(project=project, user=None, scope="all")
    wait_for(lambda: any(body["event"] == "inference_run.finished" for body in receiver.bodies()),
             message="the run's webhook")
    request = next(r for r in receiver.requests if json.loads(r["body"])["event"] == "inference_run.finished")
    assert request["headers"]["X-Webhook-Signature"] == signature(hook.secret, request["body"])
    data = json.loads(request["body"])["data"]
    assert (data["id"], data["status"], data["progress_done"]) == (run.pk, "succeeded", 3)
    assert data["model_version"] == first.pk and data["api"] == f"/api/v1/inference-runs/{run.pk}/"

    # A manager promotes another version through the API: the deployment hears of it.
    second = add_model_version(project, activate=False)
    client = api_client(project.memberships.get(role=Role.MANAGER).user)
    assert client.post(f"/api/v1/model-versions/{second.pk}/promote/").status_code == 200
    wait_for(lambda: any(body["event"] == "model_version.activated" and body["data"]["id"] == second.pk
                         for body in receiver.bodies()), message="the promotion's webhook")
    promoted = next(body for body in receiver.bodies() if body["event"] == "model_version.activated"
                    and body["data"]["id"] == second.pk)
    assert promoted["data"]["weights"] == f"/api/v1/model-versions/{second.pk}/weights/"
    wait_for(lambda: not WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists(),
             message="the deliveries to be marked sent")
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
