import json

import pytest
from django.urls import reverse

from inference.models import ModelVersion
from review.models import Role
from tests.factories import (
    TINY_ARCHITECTURE, UserFactory, add_images, add_member, add_model_version, make_project, tiny_weights,
)
from tests.training.test_services import review_with_truth
from training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project():
    project = make_project(holdout_fraction=0.3)
    review_with_truth(add_images(project, 10, size=96))
    return project


def test_fine_tune_needs_manager_and_queues_a_run(client, project, django_capture_on_commit_callbacks):
    url = reverse("training:training_start", args=[project.pk])
    client.force_login(add_member(project, Role.REVIEWER))
    assert client.post(url).status_code == 403
    client.force_login(UserFactory())
    assert client.post(url).status_code == 404
    assert not TrainingRun.objects.exists()
    client.force_login(add_member(project, Role.MANAGER))
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url).status_code == 302
    run = TrainingRun.objects.get()
    page = client.get(reverse("review:project_detail", args=[project.pk]))
    assert f'data-training-run-id="{run.pk}"'.encode() in page.content
    assert client.post(reverse("training:training_cancel", args=[run.pk])).status_code == 302
    assert TrainingRun.objects.get().status == "cancelled"


def test_promote_and_roll_back_by_hand(client, project):
    first = add_model_version(project)
    add_model_version(project)
    client.force_login(add_member(project, Role.ANNOTATOR))
    assert client.post(reverse("training:model_version_promote", args=[first.pk])).status_code == 403
    client.force_login(add_member(project, Role.MANAGER))
    assert client.post(reverse("training:model_version_promote", args=[first.pk])).status_code == 302
    assert ModelVersion.objects.get(is_active=True) == first
    assert b"(active)" in client.get(reverse("review:project_detail", args=[project.pk])).content


def test_models_page_shows_versions_runs_and_chart_data(client, project):
    first = add_model_version(project)
    second = add_model_version(project)
    ModelVersion.objects.filter(pk=first.pk).update(metrics={"map": 0.25, "ap50": 0.5, "per_class": {"circle": 0.3}})
    ModelVersion.objects.filter(pk=second.pk).update(metrics={"map": 0.3, "operating_point": {
        "threshold": 0.4312, "precision": 0.8, "recall": 0.7, "f1": 0.7467, "per_class": {}}})
    client.force_login(add_member(project, Role.ANNOTATOR))
    page = client.get(reverse("training:project_models", args=[project.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert "v1" in content and "circle 0.30" in content and "Make active" not in content  # annotators cannot
    deploy_at = [cell.split("</td>")[0] for cell in content.split('class="deploy-at">')[1:]]
    assert deploy_at == ['≥ 0.43 <span class="muted">(F1 0.75)</span>', "–"]  # v2 (trained, measured), v1
    data = json.loads(content.split('id="versions-data" type="application/json">')[1].split("</script>")[0])
    assert data == [{"number": 1, "map": 0.25, "ap50": 0.5}, {"number": 2, "map": 0.3, "ap50": None}]
    assert "/static/vendor/chartjs/chart.umd.min.js" in content


def test_models_page_says_what_a_version_gained_over_its_parent_on_the_same_images(client, project):
    parent = add_model_version(project)
    child = add_model_version(project)
    run = TrainingRun.objects.create(project=project, snapshot=_snapshot(project), base_version=parent,
                                     result_version=child, comparison={
                                         "new": {"version": child.number, "map": 0.838, "images": 26},
                                         "active": {"version": parent.number, "map": 0.690}, "promoted": True})
    client.force_login(add_member(project, Role.ANNOTATOR))
    content = client.get(reverse("training:project_models", args=[project.pk])).content.decode()
    assert f"+0.148 mAP over v{parent.number} (0.690 → 0.838 on the same 26 images)</td>" in content, run
    run.comparison["gain_interval"] = [-0.012, 0.25]  # how sure (a paired bootstrap of the 26 images)
    run.save()
    content = client.get(reverse("training:project_models", args=[project.pk])).content.decode()
    assert "(0.690 → 0.838 on the same 26 images); 90% of resamples: -0.012 to +0.250, may be chance" in content
    run.comparison["by_tag"] = [{"tag": "gate", "images": 20, "new": 0.9, "active": 0.7},
                                {"tag": "night <cam>", "images": 6, "new": 0.5, "active": 0.6},
                                {"tag": "yard", "images": 12, "new": 0.2, "active": 0.6,
                                 "change_interval": [-0.55, -0.25], "clear_loss": True}]
    run.save()
    content = client.get(reverse("training:project_models", args=[project.pk])).content.decode()
    assert '<span data-tag="gate">gate (20) 0.700 → 0.900</span>' in content
    assert "night &lt;cam&gt; (6) 0.600 → 0.500</span>" in content  # a change not judged: too few images
    assert ('<span data-tag="yard" title="change -0.550 to -0.250 in 90% of resamples of its images">yard (12) '
            '0.600 → 0.200 <strong class="clear-loss">clearly lower</strong></span>') in content


def _snapshot(project):
    from training.services import snapshot_freeze
    return snapshot_freeze(project=project, user=None)


def _upload(client, project, weights: bytes, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"architecture": TINY_ARCHITECTURE, "class_names": "", "note": "", **fields,
            "weights": SimpleUploadedFile("deployed.safetensors", weights)}
    return client.post(reverse("training:model_version_upload", args=[project.pk]), data, follow=True)


def test_a_manager_uploads_the_deployed_model_from_the_models_page(client):
    project = make_project(class_names=["car"])
    client.force_login(project.memberships.get().user)
    page = client.get(reverse("training:project_models", args=[project.pk])).content.decode()
    assert 'id="weights-upload"' in page
    response = _upload(client, project, tiny_weights(["car", "person"]), note="deployed in May", activate="on")
    said = [str(message) for message in response.context["messages"]]
    assert said == ["Added v1 (ssdlite320_mobilenet_v3_large) with classes car, person. "
                    "It is now the active model: run inference from the project page."], said
    version = ModelVersion.objects.get(project=project)
    assert (version.is_active, version.note, version.class_names) == (True, "deployed in May", ["car", "person"])
    assert list(project.label_classes.order_by("index").values_list("name", flat=True)) == ["car", "person"]


def test_the_architecture_of_a_plain_torch_file_is_found_from_its_tensors(client):
    import io

    import torch

    from inference import detector

    project = make_project(class_names=["car"])
    client.force_login(project.memberships.get().user)
    buffer = io.BytesIO()
    torch.save({"epoch": 9, "model_state_dict": detector.build_model("ssdlite320_mobilenet_v3_large", 2).state_dict()},
               buffer)
    response = _upload(client, project, buffer.getvalue(), architecture="", class_names="car, person")
    assert [str(m) for m in response.context["messages"]] == [
        "Added v1 (ssdlite320_mobilenet_v3_large) with classes car, person."]


@pytest.mark.parametrize(("weights", "fields", "said"), [
    (b"not weights at all", {}, "The weights were not added: "),
    (None, {"architecture": "fasterrcnn_resnet50_fpn_v2"}, "The weights were not added: "),
    (b"", {"architecture": ""}, "The weights were not added: Weights: The submitted file is empty."),
    (None, {"architecture": "yolo_v99"}, "The weights were not added: Architecture: Select a valid choice."),
    (None, {"class_names": "car, car"}, "The weights were not added: Give the model's class names"),
])
def test_weights_that_do_not_load_are_refused_and_change_nothing(client, weights, fields, said):
    project = make_project(class_names=["car"])
    client.force_login(project.memberships.get().user)
    response = _upload(client, project, weights if weights is not None else tiny_weights(["car", "person"]), **fields)
    messages = [str(message) for message in response.context["messages"]]
    assert len(messages) == 1 and messages[0].startswith(said), messages
    assert not ModelVersion.objects.exists()
    assert list(project.label_classes.values_list("name", flat=True)) == ["car"]


def test_only_managers_see_the_upload_form(client, project):
    client.force_login(add_member(project, Role.REVIEWER))
    assert b'id="weights-upload"' not in client.get(reverse("training:project_models", args=[project.pk])).content


def test_the_project_page_sets_the_epochs_and_refuses_bad_ones(client, project, django_capture_on_commit_callbacks):
    url = reverse("training:training_start", args=[project.pk])
    client.force_login(add_member(project, Role.MANAGER))
    page = client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
    assert 'id="first-model"' in page and 'name="epochs"' in page  # no model yet: it says what training from scratch takes
    for bad, said in [("ten", "positive whole number"), ("-3", "positive whole number"), ("0", "positive whole number"),
                      ("²", "positive whole number"), ("9" * 5000, "positive whole number"),
                      ("5000", "at most 1000")]:
        answer = client.post(url, {"epochs": bad}, follow=True)
        assert said in answer.content.decode() and not TrainingRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(url, {"epochs": "3"})
    assert TrainingRun.objects.get().params["epochs"] == 3
    add_model_version(project)
    assert 'id="first-model"' not in client.get(reverse("review:project_detail", args=[project.pk])).content.decode()


def test_the_project_page_says_a_running_fine_tune_is_freezing_the_labels_until_it_has(client, project):
    from project.jobs import JobStatus
    from training.services import snapshot_freeze

    client.force_login(add_member(project))
    run = TrainingRun.objects.create(project=project, architecture="ssdlite320_mobilenet_v3_large",
                                     status=JobStatus.RUNNING, eta_seconds=42)
    url = reverse("review:project_detail", args=[project.pk])
    row = client.get(url).content.decode().split(f'data-training-run-id="{run.pk}"')[1].split("</tr>")[0]
    assert '<span class="eta">freezing the reviewed labels</span>' in row
    TrainingRun.objects.filter(pk=run.pk).update(snapshot=snapshot_freeze(project=project, user=None))
    row = client.get(url).content.decode().split(f'data-training-run-id="{run.pk}"')[1].split("</tr>")[0]
    assert '<span class="eta">ETA 42 s</span>' in row
