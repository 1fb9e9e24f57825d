"""A project's first model from torchvision's COCO weights: it keeps what COCO knew of the classes it
names, and its backbone; the file is never downloaded by the app (settings.COCO_WEIGHTS_DIR)."""
import io

import pytest
import torch
from django.core.exceptions import ValidationError
from django.urls import reverse
from torchvision.models import detection, get_model_weights

from inference import detector
from inference.architectures import ARCHITECTURES, COCO_CLASS_NAMES, WeightsError, coco_weights_found
from inference.models import ModelSource, ModelVersion
from inference.services import model_version_from_coco
from review.models import Role
from tests.factories import TINY_ARCHITECTURE, add_member, add_model_version, api_client, make_project

pytestmark = pytest.mark.django_db

# The first classification conv of SSDlite's head: (anchors x (90 COCO classes + background), ...) rows.
HEAD = "head.classification_head.module_list.0.1.weight"


def coco_like_state(architecture: str = TINY_ARCHITECTURE) -> dict[str, torch.Tensor]:
    """A state dict shaped as torchvision's COCO file is (91 class ids; FrozenBatchNorm2d keeps no
    num_batches_tracked), with random values: nothing is downloaded in tests."""
    torch.manual_seed(0)
    state = getattr(detection, architecture)(weights=None, weights_backbone=None, num_classes=91).state_dict()
    return {name: tensor for name, tensor in state.items() if not name.endswith("num_batches_tracked")}


def saved(state) -> bytes:
    out = io.BytesIO()
    torch.save(state, out)
    return out.getvalue()


@pytest.fixture
def coco_dir(settings, tmp_path):
    settings.COCO_WEIGHTS_DIR = tmp_path / "torch-hub"
    settings.COCO_WEIGHTS_DIR.mkdir()
    state = coco_like_state()
    (settings.COCO_WEIGHTS_DIR / ARCHITECTURES[TINY_ARCHITECTURE].coco_file).write_bytes(saved(state))
    return settings.COCO_WEIGHTS_DIR, state


def test_the_file_names_and_classes_are_torchvision_s_own():
    for name, spec in ARCHITECTURES.items():
        weights = get_model_weights(name).COCO_V1
        assert weights.url.rsplit("/", 1)[1] == spec.coco_file
        assert list(COCO_CLASS_NAMES) == weights.meta["categories"][1:]


def test_a_class_given_a_coco_class_keeps_its_rows_and_the_rest_loads_whole():
    coco = coco_like_state()
    state = detector.coco_state_for_classes(saved(coco), architecture=TINY_ARCHITECTURE,
                                            class_names=["Car", "cone", "pedestrian"], coco_names=["car", "", "person"])
    ids = {name: index for index, name in enumerate(get_model_weights(TINY_ARCHITECTURE).COCO_V1.meta["categories"])}
    old = coco[HEAD].reshape(-1, 91, *coco[HEAD].shape[1:])  # anchor by anchor, class ids within
    new = state[HEAD].reshape(-1, 4, *state[HEAD].shape[1:])
    assert torch.equal(new[:, 0], old[:, 0])  # background
    assert torch.equal(new[:, 1], old[:, ids["car"]]) and torch.equal(new[:, 3], old[:, ids["person"]])
    assert not any(torch.equal(new[:, 2], old[:, i]) for i in range(91))  # cone: fresh
    body = [name for name in coco if "classification_head" not in name]
    assert all(torch.equal(state[name], coco[name]) for name in body)
    model = detector.load_model(detector.state_to_bytes(state, architecture=TINY_ARCHITECTURE, class_names=["Car", "cone", "pedestrian"],
                                                        image_size=320), architecture=TINY_ARCHITECTURE, num_classes=3)
    assert sum(p.numel() for p in model.parameters()) > 0  # a strict load took it


@pytest.mark.parametrize("wrong", ["another architecture's", "a project model's"])
def test_a_file_that_is_not_those_weights_is_refused(wrong):
    state = (coco_like_state("fasterrcnn_mobilenet_v3_large_fpn") if wrong == "another architecture's" else
             detector.build_model(TINY_ARCHITECTURE, 3).state_dict())
    with pytest.raises(WeightsError, match="not torchvision's COCO weights file"):
        detector.coco_state_for_classes(saved(state), architecture=TINY_ARCHITECTURE, class_names=["car"],
                                        coco_names=["car"])


def test_a_version_from_coco_names_what_it_knows_and_can_be_made_active(coco_dir):
    project = make_project(class_names=["person", "Bus", "cone"])
    assert coco_weights_found(coco_dir[0]) == {TINY_ARCHITECTURE: coco_dir[0] / ARCHITECTURES[TINY_ARCHITECTURE].coco_file}
    version = model_version_from_coco(project=project, architecture=TINY_ARCHITECTURE, user=None, activate=True)
    assert (version.source, version.class_names, version.is_active) == (ModelSource.COCO, ["person", "Bus", "cone"], True)
    assert version.note == "torchvision's COCO weights; it knows person, Bus, not cone (fine-tune to learn them)."
    with version.weights.open("rb") as handle:
        stored = detector.state_dict_from_bytes(handle.read())
    other = model_version_from_coco(project=project, architecture=TINY_ARCHITECTURE, user=None,
                                    classes={"cone": "fire hydrant", "person": "", "Bus": "TRUCK"})
    assert other.note == ("torchvision's COCO weights; it knows Bus (as truck), cone (as fire hydrant), not person "
                          "(fine-tune to learn them).")
    with other.weights.open("rb") as handle:
        chosen = detector.state_dict_from_bytes(handle.read())
    assert torch.equal(stored["backbone.features.0.0.0.weight"], chosen["backbone.features.0.0.0.weight"])
    assert not torch.equal(stored[HEAD], chosen[HEAD])
    assert list(project.label_classes.order_by("index").values_list("name", flat=True)) == ["person", "Bus", "cone"]
    with version.weights.open("rb") as handle:  # what inference loads
        detector.load_model(handle.read(), architecture=TINY_ARCHITECTURE, num_classes=3)


def test_without_the_file_or_classes_nothing_is_added(coco_dir, settings):
    project = make_project(class_names=["person"])
    with pytest.raises(ValidationError, match="not on this server: put fcos_resnet50_fpn_coco-99b0c9b7.pth in"):
        model_version_from_coco(project=project, architecture="fcos_resnet50_fpn", user=None)
    with pytest.raises(ValidationError, match="Unknown architecture"):
        model_version_from_coco(project=project, architecture="yolo", user=None)
    for classes, message in [({"car": "car"}, "Not classes of this project: 'car'"),
                             ({"person": "unicorn"}, "Not COCO classes: 'unicorn'")]:
        with pytest.raises(ValidationError, match=message):
            model_version_from_coco(project=project, architecture=TINY_ARCHITECTURE, user=None, classes=classes)
    project.label_classes.all().delete()
    with pytest.raises(ValidationError, match="no label classes"):
        model_version_from_coco(project=project, architecture=TINY_ARCHITECTURE, user=None)
    assert not ModelVersion.objects.exists()


def test_the_models_page_offers_the_files_this_server_has(client, coco_dir, settings):
    project = make_project(class_names=["car"])
    manager = add_member(project, Role.MANAGER)
    client.force_login(manager)
    page = client.get(reverse("training:project_models", args=[project.pk])).content.decode()
    section = page[page.index('id="coco-start"'):page.index('id="weights-upload"')]
    assert f'<option value="{TINY_ARCHITECTURE}"' in section and "fcos_resnet50_fpn" not in section
    assert '<option value="car" selected>car</option>' in section  # its own name's, to start with
    response = client.post(reverse("training:model_version_from_coco", args=[project.pk]),
                           {"architecture": TINY_ARCHITECTURE, "activate": "on", "class_0": "truck"}, follow=True)
    assert "it knows car (as truck)." in response.content.decode()
    assert ModelVersion.objects.get(project=project).is_active
    refused = client.post(reverse("training:model_version_from_coco", args=[project.pk]),
                          {"architecture": "fcos_resnet50_fpn"}, follow=True)
    assert "No version was added" in refused.content.decode() and ModelVersion.objects.count() == 1
    settings.COCO_WEIGHTS_DIR = coco_dir[0] / "elsewhere"
    page = client.get(reverse("training:project_models", args=[project.pk])).content.decode()
    assert 'id="coco-missing"' in page and str(settings.COCO_WEIGHTS_DIR) in page


def test_the_api_adds_one_for_managers_only(coco_dir):
    project = make_project(class_names=["dog", "scratch"])
    add_model_version(project)  # an active model already: the new one waits unless asked
    url = f"/api/v1/projects/{project.pk}/model-versions/coco/"
    assert api_client(add_member(project, Role.REVIEWER)).post(url, {"architecture": TINY_ARCHITECTURE},
                                                                   format="json").status_code == 403
    manager = api_client(add_member(project, Role.MANAGER))
    response = manager.post(url, {"architecture": TINY_ARCHITECTURE}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["source"], response.json()["is_active"], response.json()["number"]) == ("coco", False, 2)
    assert "it knows dog, not scratch" in response.json()["note"]
    missing = manager.post(url, {"architecture": "retinanet_resnet50_fpn_v2"}, format="json")
    assert missing.status_code == 400 and "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth" in str(missing.json())
    assert manager.post(url, {"architecture": "yolo"}, format="json").status_code == 400
    twice = manager.post(url, {"architecture": TINY_ARCHITECTURE, "classes": {"scratch": "dog"}}, format="json")
    assert twice.status_code == 400 and "COCO's 'dog' is given to both 'dog' and 'scratch'" in str(twice.json())
    mapped = manager.post(url, {"architecture": TINY_ARCHITECTURE, "classes": {"scratch": "dog", "dog": ""}},
                          format="json")
    assert mapped.status_code == 201 and "it knows scratch (as dog), not dog" in mapped.json()["note"]
    assert ModelVersion.objects.filter(project=project).count() == 3
    listed = {row["name"]: row for row in manager.get("/api/v1/architectures/").json()}
    assert list(listed) == list(ARCHITECTURES)
    assert [name for name, row in listed.items() if row["coco_weights"]] == [TINY_ARCHITECTURE]
    assert listed[TINY_ARCHITECTURE]["cpu_friendly"] and listed["fcos_resnet50_fpn"]["image_size"] == 800
