"""Webhooks as a project's managers set them up, and their deliveries: which events make one, what is
sent, how failures are retried, and which jobs and model changes are events."""
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from datasets.models import DatasetExport, DatasetImport
from inference.models import InferenceRun
from inference.services import model_version_activate
from project.jobs import JobStatus, job_finish
from tests.factories import add_model_version, make_project
from training.models import DatasetSnapshot, TrainingRun
from webhooks import delivery, services
from webhooks.models import DeliveryStatus, Event, Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def allow_localhost(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the receiver runs on 127.0.0.1


def _hook(project, url="https://hooks.example/in", events=("model_version.activated",), **kwargs) -> Webhook:
    return services.webhook_create(project=project, user=None, url=url, events=list(events), **kwargs)


@pytest.mark.parametrize("url, events, field", [
    ("ftp://hooks.example", ["ping"], "url"),
    ("https://hooks.example/" + "x" * 500, ["model_version.activated"], "url"),
    ("https://hooks.example", [], "events"),
    ("https://hooks.example", ["model.promoted"], "events"),
    ("https://hooks.example", "model_version.activated", "events"),
])
def test_create_refuses_bad_input_and_adds_nothing(url, events, field):
    project = make_project()
    with pytest.raises(ValidationError) as refused:
        services.webhook_create(project=project, user=None, url=url, events=events)
    assert field in refused.value.message_dict
    assert not Webhook.objects.exists()


def test_create_keeps_known_events_once_in_one_order_and_makes_a_secret():
    hook = _hook(make_project(), events=["training_run.finished", "model_version.activated", "training_run.finished"])
    assert hook.events == ["model_version.activated", "training_run.finished"]
    assert len(hook.secret) == 64 and hook.is_active


def test_a_literal_internal_address_is_refused_when_the_operator_has_not_allowed_it(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    project = make_project()
    for url in ("http://127.0.0.1:8080/hook", "http://169.254.169.254/latest", "http://localhost/x"):
        with pytest.raises(ValidationError, match="internal address"):
            _hook(project, url=url)
    assert _hook(project, url="https://hooks.example/in").pk  # a name is checked at each delivery


def test_update_rotates_the_secret_and_checks_like_create():
    hook = _hook(make_project())
    old = hook.secret
    services.webhook_update(webhook=hook, rotate_secret=True, is_active=False)
    hook.refresh_from_db()
    assert hook.secret != old and not hook.is_active
    with pytest.raises(ValidationError):
        services.webhook_update(webhook=hook, events=["nope"])
    hook.refresh_from_db()
    assert hook.events == ["model_version.activated"]


def test_an_event_goes_to_the_active_webhooks_that_chose_it(django_capture_on_commit_callbacks):
    project, other = make_project(), make_project(name="Other")
    chosen = _hook(project)
    _hook(project, events=["training_run.finished"])
    off = _hook(project)
    services.webhook_update(webhook=off, is_active=False)
    _hook(other)
    with django_capture_on_commit_callbacks() as callbacks:
        rows = services.webhook_event_send(project_id=project.pk, event="model_version.activated", data={"id": 3})
    assert [row.webhook for row in rows] == [chosen] and len(callbacks) == 1  # one task queued, after commit
    assert rows[0].payload["event"] == "model_version.activated" and rows[0].payload["project"] == project.pk
    assert rows[0].payload["data"] == {"id": 3} and rows[0].status == DeliveryStatus.PENDING


def test_a_delivery_posts_the_signed_payload(receiver):
    hook = _hook(make_project(), url=f"{receiver.url}/deploy")
    row = services.webhook_ping(webhook=hook)
    assert services.delivery_attempt(delivery_id=row.pk) is None
    row.refresh_from_db()
    assert (row.status, row.attempts, row.response_status, row.error) == (DeliveryStatus.SUCCEEDED, 1, 200, "")
    request = receiver.requests[0]
    assert json.loads(request["body"]) == row.payload
    assert request["headers"]["X-Webhook-Signature"] == delivery.signature(hook.secret, request["body"])
    assert request["headers"]["X-Webhook-Delivery"] == str(row.pk)
    assert services.delivery_attempt(delivery_id=row.pk) is None and len(receiver.requests) == 1  # sent once


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(receiver):
    receiver.answers = [500]
    row = services.webhook_ping(webhook=_hook(make_project(), url=receiver.url))
    waits = [services.delivery_attempt(delivery_id=row.pk) for _ in range(len(services.RETRY_DELAYS) + 1)]
    assert waits == [*services.RETRY_DELAYS, None]
    row.refresh_from_db()
    assert row.status == DeliveryStatus.FAILED and row.attempts == 5
    assert row.response_status == 500 and "answered 500" in row.error
    assert len(receiver.requests) == 5


def test_a_receiver_back_up_gets_the_same_body(receiver):
    receiver.answers = [503, 200]
    row = services.webhook_ping(webhook=_hook(make_project(), url=receiver.url))
    assert services.delivery_attempt(delivery_id=row.pk) == services.RETRY_DELAYS[0]
    assert services.delivery_attempt(delivery_id=row.pk) is None
    row.refresh_from_db()
    assert row.status == DeliveryStatus.SUCCEEDED and row.error == ""
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]


def test_an_internal_address_is_refused_at_delivery_when_not_allowed(receiver, settings):
    row = services.webhook_ping(webhook=_hook(make_project(), url=receiver.url.replace("127.0.0.1", "localhost")))
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    services.delivery_attempt(delivery_id=row.pk)
    row.refresh_from_db()
    assert "internal address" in row.error and receiver.requests == []


def test_redeliver_sends_the_same_event_and_data_as_a_new_delivery(receiver):
    hook = _hook(make_project(), url=receiver.url)
    first = services.webhook_ping(webhook=hook)
    again = services.delivery_redeliver(delivery_row=first)
    assert again.pk != first.pk and again.payload == first.payload


def test_a_webhook_keeps_only_its_newest_deliveries(monkeypatch):
    monkeypatch.setattr(services, "DELIVERIES_KEPT", 3)
    hook = _hook(make_project())
    rows = [services.webhook_ping(webhook=hook) for _ in range(5)]
    assert sorted(hook.deliveries.values_list("pk", flat=True)) == [row.pk for row in rows[-3:]]


def test_every_job_kind_names_a_known_event():
    assert {model.webhook_event for model in (InferenceRun, TrainingRun, DatasetImport, DatasetExport)} == {
        Event.INFERENCE_RUN_FINISHED, Event.TRAINING_RUN_FINISHED, Event.DATASET_IMPORT_FINISHED,
        Event.DATASET_EXPORT_FINISHED}


def test_a_finished_export_is_an_event_with_its_download(tmp_path):
    project = make_project()
    _hook(project, events=["dataset_export.finished"])
    export = DatasetExport.objects.create(project=project, status=JobStatus.RUNNING, image_count=4)
    export.file.save("e.zip", ContentFile(b"zip"))
    job_finish(export, status=JobStatus.SUCCEEDED)
    job_finish(export, status=JobStatus.FAILED)  # a second finish is not a second event
    row = WebhookDelivery.objects.get()
    assert row.event == "dataset_export.finished"
    assert row.payload["data"]["status"] == "succeeded" and row.payload["data"]["image_count"] == 4
    assert row.payload["data"]["download"] == f"/api/v1/exports/{export.pk}/download/"


def test_a_model_version_made_active_is_an_event_with_its_weights():
    project = make_project()
    _hook(project)
    version = add_model_version(project, activate=False)
    model_version_activate(version=version)
    data = WebhookDelivery.objects.get(event="model_version.activated").payload["data"]
    assert data["id"] == version.pk and data["number"] == version.number
    assert data["weights"] == f"/api/v1/model-versions/{version.pk}/weights/"
    assert data["class_names"] == version.class_names


def test_a_finished_training_run_tells_what_the_worker_wrote_after_loading_it():
    project = make_project()
    _hook(project, events=["training_run.finished"])
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, status=JobStatus.RUNNING)
    version = add_model_version(project, activate=False)
    # As training/execution.py does: results written by update(), not on the object it finishes.
    TrainingRun.objects.filter(pk=run.pk).update(result_version=version, comparison={"promoted": True},
                                                 eval_history=[{"epoch": 1, "map": 0.5, "ap50": 0.9}])
    job_finish(run, status=JobStatus.SUCCEEDED)
    data = WebhookDelivery.objects.get(event="training_run.finished").payload["data"]
    assert data["result_version"] == version.pk and data["promoted"] is True
    assert data["holdout"] == {"epoch": 1, "map": 0.5, "ap50": 0.9}


def test_a_mention_is_an_event_once_per_comment_or_send_back():
    from review.models import Image
    from review.services import comment_add, comment_edit, image_boxes_save, images_status_set
    from tests.factories import UserFactory, add_images, add_member

    project = make_project()
    _hook(project, events=["comment.mention"])
    ann = add_member(project, user=UserFactory(username="ann"))
    bea = add_member(project, user=UserFactory(username="bea"))
    first, second = add_images(project, 2)
    comment = comment_add(image=first, author=bea, text="@ann is this a van?")
    comment_edit(comment=comment, text="@ann is this a van? It was.")  # nobody new: no second event
    for image in (first, second):
        image_boxes_save(image=Image.objects.get(pk=image.pk), user=ann, boxes=[], version=image.version)
    images_status_set(images=Image.objects.filter(project=project), status="unreviewed", user=bea,
                      comment="@ann redo these")
    events = [row.payload["data"] for row in WebhookDelivery.objects.order_by("pk")]
    assert [(data["author"], data["mentioned"], data["image_count"]) for data in events] == [
        ("bea", [{"id": ann.pk, "username": "ann"}], 1), ("bea", [{"id": ann.pk, "username": "ann"}], 2)]
    assert events[0]["images"] == [{"id": first.pk, "editor": f"/images/{first.pk}/edit"}]


def test_a_rename_is_an_event_a_recolour_or_a_failed_rename_is_not():
    from review.models import LabelClass
    from review.services import label_class_create, label_class_update

    project = make_project()
    _hook(project, events=["label_class.renamed"])
    van = label_class_create(project=project, name="van")
    label_class_create(project=project, name="bus")
    label_class_update(label_class=LabelClass.objects.get(pk=van.pk), colour="#123456")
    with pytest.raises(ValidationError):
        label_class_update(label_class=LabelClass.objects.get(pk=van.pk), name="bus")
    label_class_update(label_class=LabelClass.objects.get(pk=van.pk), name="minibus")
    [row] = WebhookDelivery.objects.all()
    assert row.event == "label_class.renamed"
    assert row.payload["data"] == {"id": van.pk, "old_name": "van", "new_name": "minibus",
                                   "api": f"/api/v1/label-classes/{van.pk}/"}


def test_the_sweep_sends_again_only_deliveries_whose_task_was_lost(django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    hook = _hook(make_project())
    now = timezone.now()
    lost = services.webhook_ping(webhook=hook)  # queued two hours ago, never attempted
    waiting = services.webhook_ping(webhook=hook)  # failed 20 minutes ago, its 30-minute retry still to come
    fresh = services.webhook_ping(webhook=hook)
    sent = services.webhook_ping(webhook=hook)
    WebhookDelivery.objects.filter(pk=lost.pk).update(created_at=now - timedelta(hours=2))
    WebhookDelivery.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(hours=1), attempts=4,
                                                         last_attempt_at=now - timedelta(minutes=20))
    WebhookDelivery.objects.filter(pk=sent.pk).update(created_at=now - timedelta(hours=2),
                                                      status=DeliveryStatus.SUCCEEDED)
    with django_capture_on_commit_callbacks() as queued:
        assert services.deliveries_stale_resend(now=now) == [lost.pk]
    assert len(queued) == 1 and fresh.pk
    assert sorted(services.deliveries_stale_resend(now=now + timedelta(minutes=30))) == [lost.pk, waiting.pk]
