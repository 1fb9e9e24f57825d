"""tools/deploy_receiver.py, the example receiver a deployment runs: a promoted model reaches it as a
real webhook delivery, and it installs the weights from the app's API (a live server)."""
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from inference.services import model_version_activate
from review.api_tokens import api_token_create
from review.models import Role
from tests.factories import add_model_version, make_project
from webhooks.delivery import signature
from webhooks.models import DeliveryStatus
from webhooks.services import delivery_attempt, webhook_create

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deploy_receiver(tmp_path, live_server_media_url, live_server, settings):
    yield from _receiver(tmp_path, live_server, settings)


@pytest.fixture
def onnx_receiver(tmp_path, live_server_media_url, live_server, settings):
    yield from _receiver(tmp_path, live_server, settings, "--onnx")


def _receiver(tmp_path, live_server, settings, *options: str):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    project = make_project()
    token = api_token_create(user=project.memberships.get(role=Role.MANAGER).user)
    out = tmp_path / "models"
    process = subprocess.Popen(
        [sys.executable, "tools/deploy_receiver.py", "--app", live_server.url, f"--token={token}",
         "--secret", "s" * 64, "--out", str(out), "--host", "127.0.0.1", "--port", "0", *options],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # "listening on 127.0.0.1:PORT; ..."
    if not line:  # it ended before listening: say why (seen once in a full run, not again in many)
        process.wait(10)
        pytest.fail(f"the receiver exited ({process.returncode}) before listening: {process.stderr.read()[-3000:]}")
    port = int(line.split()[2].rsplit(":", 1)[1].rstrip(";"))
    hook = webhook_create(project=project, user=None, url=f"http://127.0.0.1:{port}/",
                          events=["model_version.activated", "label_class.renamed"])
    hook.secret = "s" * 64
    hook.save()
    yield project, hook, out
    process.kill()
    process.wait()


def _deliver(project) -> None:
    row = project.webhooks.get().deliveries.first()
    _attempt(row)


def _deliver_newest(project) -> None:
    _attempt(project.webhooks.get().deliveries.order_by("-pk").first())


def _attempt(row) -> None:
    delivery_attempt(delivery_id=row.pk)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.SUCCEEDED, row.error


def test_a_promoted_model_is_installed_and_going_back_reinstalls_the_old_one(deploy_receiver):
    project, hook, out = deploy_receiver
    first = add_model_version(project)
    _deliver(project)
    second = add_model_version(project, activate=False)
    point = {"threshold": 0.4375, "precision": 0.9, "recall": 0.8, "f1": 0.8471, "per_class": {"circle": 0.5}}
    second.metrics = {"map": 0.61, "ap50": 0.9, "holdout_images": 12, "operating_point": point}  # as a fine-tune leaves it
    second.save(update_fields=["metrics"])
    model_version_activate(version=second)
    _deliver(project)
    current = json.loads((out / "current.json").read_text())
    assert (current["number"], current["weights"]) == (second.number, f"v{second.number}.safetensors")
    assert current["architecture"] == second.architecture and current["class_names"] == second.class_names
    assert (out / current["weights"]).read_bytes() == second.weights.open("rb").read()
    assert current["score_threshold"] == 0.4375 and current["metrics"]["operating_point"] == point

    model_version_activate(version=first)  # going back, by hand
    _deliver(project)
    current = json.loads((out / "current.json").read_text())
    assert current["number"] == first.number and current["score_threshold"] is None  # uploaded: never measured
    assert sorted(path.name for path in out.iterdir()) == ["current.json", "v1.safetensors", "v2.safetensors"]


def test_a_renamed_class_reaches_the_installed_model_s_names(deploy_receiver):
    from review.models import LabelClass
    from review.services import label_class_update

    project, hook, out = deploy_receiver
    circle = LabelClass.objects.get(project=project, name="circle")
    label_class_update(label_class=circle, name="disc")  # before any model: nothing to refresh, answered 200
    _deliver(project)
    assert list(out.iterdir()) == []
    version = add_model_version(project)
    _deliver_newest(project)
    label_class_update(label_class=LabelClass.objects.get(pk=circle.pk), name="ring")
    _deliver_newest(project)
    current = json.loads((out / "current.json").read_text())
    version.refresh_from_db()
    assert "ring" in version.class_names and current["class_names"] == version.class_names
    assert current["number"] == version.number and (out / current["weights"]).exists()


def test_a_forged_delivery_is_refused_and_changes_nothing(deploy_receiver):
    project, hook, out = deploy_receiver
    version = add_model_version(project)
    body = json.dumps({"event": "model_version.activated", "data": version.webhook_data()}).encode()
    request = urllib.request.Request(hook.url, data=body, method="POST", headers={
        "X-Webhook-Signature": signature("not the secret", body), "X-Webhook-Delivery": "1"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert list(out.iterdir()) == []


def test_with_onnx_the_app_is_asked_for_the_file_and_the_next_delivery_installs_it(onnx_receiver):
    """The first delivery starts the export and is answered 503, so the app sends it again; by then a worker
    (here: this test) has made the file, and it is installed with its format in current.json."""
    from inference.model_exports import model_export_execute
    from inference.models import ModelExport

    project, hook, out = onnx_receiver
    version = add_model_version(project)
    row = project.webhooks.get().deliveries.first()
    delivery_attempt(delivery_id=row.pk)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING and row.response_status == 503  # "the app is making the ONNX file"
    assert list(out.iterdir()) == []
    export = ModelExport.objects.get(model_version=version)
    assert model_export_execute(run_id=export.pk, progress_interval=0).status == "succeeded"
    _attempt(row)
    current = json.loads((out / "current.json").read_text())
    assert (current["weights"], current["format"], current["number"]) == ("v1.onnx", "onnx", 1)
    assert (out / "v1.onnx").read_bytes() == ModelExport.objects.get(pk=export.pk).file.read()


def test_a_delivery_for_a_version_no_longer_active_installs_nothing(deploy_receiver):
    """Sent again after a later promotion (its first attempts failed): the later version stays installed."""
    project, hook, out = deploy_receiver
    first = add_model_version(project)
    first_delivery = project.webhooks.get().deliveries.get()
    second = add_model_version(project)
    _deliver_newest(project)
    _attempt(first_delivery)  # late: v1 is not the active version any more
    current = json.loads((out / "current.json").read_text())
    assert current["number"] == second.number and not (out / f"v{first.number}.safetensors").exists()
