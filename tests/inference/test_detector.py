import argparse
import collections
import functools
import io
import json

import numpy as np
import pytest
import torch

from inference import detector
from tests.factories import tiny_weights


def test_registry_has_the_architectures_we_promise():
    assert {"fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_resnet50_fpn_v2",
            "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large"} <= set(detector.ARCHITECTURES)


def test_unknown_architecture_refused():
    with pytest.raises(ValueError, match="Unknown architecture"):
        detector.build_model("yolo_v99", 3)


def test_predict_returns_plain_arrays_in_original_pixels():
    torch.manual_seed(0)
    model = detector.Detector(detector.build_model("ssdlite320_mobilenet_v3_large", 3), score_threshold=0.0,
                              max_detections=7)
    images = [torch.randint(0, 255, (3, 90, 200), dtype=torch.uint8), torch.randint(0, 255, (3, 300, 120), dtype=torch.uint8)]
    out = model.predict(images)
    assert len(out) == 2
    for detections, (height, width) in zip(out, [(90, 200), (300, 120)]):
        assert detections.boxes_xyxy.dtype == np.float32 and detections.boxes_xyxy.shape[1] == 4
        assert detections.labels.dtype == np.int64 and detections.scores.dtype == np.float32
        assert 0 < len(detections.scores) <= 7
        assert set(detections.labels.tolist()) <= {1, 2, 3}
        assert detections.boxes_xyxy[:, [0, 2]].max() <= width + 1e-3
        assert detections.boxes_xyxy[:, [1, 3]].max() <= height + 1e-3


def test_weights_round_trip_gives_identical_predictions():
    data = tiny_weights(["a", "b"])
    meta = detector.weights_metadata(data)
    assert meta["architecture"] == "ssdlite320_mobilenet_v3_large" and meta["class_names"] == '["a", "b"]'
    first = detector.Detector.from_bytes(data, architecture=meta["architecture"], num_classes=2, score_threshold=0.0)
    again = detector.Detector.from_bytes(
        detector.weights_to_bytes(first.model, architecture=meta["architecture"], class_names=["a", "b"]),
        architecture=meta["architecture"], num_classes=2, score_threshold=0.0)
    image = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))]
    np.testing.assert_allclose(first.predict(image)[0].scores, again.predict(image)[0].scores, rtol=1e-5)


def test_a_smaller_ssd_input_is_kept_with_its_weights():
    """SSD trains at a smaller square on a CPU; the size travels in the weights and comes back on load."""
    model = detector.build_model("ssdlite320_mobilenet_v3_large", 2, image_size=160).eval()
    assert model.transform.fixed_size == (160, 160)
    data = detector.weights_to_bytes(model, architecture="ssdlite320_mobilenet_v3_large", class_names=["a", "b"])
    loaded = detector.Detector.from_bytes(data, architecture="ssdlite320_mobilenet_v3_large", num_classes=2,
                                          score_threshold=0.0)
    assert loaded.model.transform.fixed_size == (160, 160)
    image = [torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))]
    (result,) = loaded.predict(image)
    assert result.boxes_xyxy.shape[1] == 4 and result.boxes_xyxy[:, 2].max() <= 128 and result.boxes_xyxy[:, 3].max() <= 96


def test_torch_state_dict_loaded_without_unpickling_code():
    model = detector.build_model("ssdlite320_mobilenet_v3_large", 2)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    loaded = detector.load_model(buffer.getvalue(), architecture="ssdlite320_mobilenet_v3_large", num_classes=2)
    assert isinstance(loaded, torch.nn.Module)


@pytest.mark.parametrize("layout", ["torchvision reference", "PyTorch tutorial", "Lightning", "DistributedDataParallel",
                                    "DDP in a tutorial checkpoint"])
def test_a_state_dict_inside_a_training_checkpoint_is_found(layout):
    """The files people's own training code writes: the weights are found and taken exactly as they are."""
    state = detector.build_model("ssdlite320_mobilenet_v3_large", 2).state_dict()
    saved = {
        "torchvision reference": {"model": state, "optimizer": {"param_groups": [{"lr": 0.01}]}, "epoch": 25,
                                  "lr_scheduler": {"milestones": collections.Counter({16: 1, 22: 1})},
                                  "args": argparse.Namespace(lr=0.02, epochs=26, weights=None, lr_steps=[16, 22])},
        "PyTorch tutorial": {"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {}, "loss": 0.25},
        "Lightning": {"epoch": 9, "global_step": 900, "state_dict": {f"model.{k}": v for k, v in state.items()}},
        "DistributedDataParallel": {f"module.{k}": v for k, v in state.items()},
        "DDP in a tutorial checkpoint": {"model_state_dict": {f"module.{k}": v for k, v in state.items()}},
    }[layout]
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    checked, _ = detector.weights_checked(buffer.getvalue(), architecture="ssdlite320_mobilenet_v3_large", num_classes=2)
    assert checked.keys() == state.keys() and all(torch.equal(checked[k], state[k]) for k in state)


def test_a_checkpoint_without_a_state_dict_says_where_it_looked():
    buffer = io.BytesIO()
    torch.save({"epoch": 3, "weights": [torch.zeros(2)]}, buffer)
    with pytest.raises(detector.WeightsError, match="nor a checkpoint with one under 'model', 'model_state_dict'"):
        detector.state_dict_from_bytes(buffer.getvalue())


class Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_refused():
    buffer = io.BytesIO()
    torch.save({"weights": Exploit()}, buffer)
    with pytest.raises(detector.WeightsError, match="besides tensors.*read safely or not at all"):
        detector.state_dict_from_bytes(buffer.getvalue())


def test_mismatched_weights_refused_with_a_clear_message():
    with pytest.raises(detector.WeightsError) as classes:
        detector.load_model(tiny_weights(["a", "b", "c"]), architecture="ssdlite320_mobilenet_v3_large", num_classes=5)
    assert str(classes.value).startswith("These weights do not fit ssdlite320_mobilenet_v3_large with 5 classes: ")
    assert "have another shape (such as head.classification_head" in str(classes.value)
    assert str(classes.value).endswith("the file names 3 classes (a, b, c).")
    with pytest.raises(detector.WeightsError) as architecture:
        detector.load_model(tiny_weights(["a"]), architecture="fcos_resnet50_fpn", num_classes=1)
    assert "of its tensors are not in the file (such as backbone.body.conv1.weight)" in str(architecture.value)
    assert str(architecture.value).endswith("the file says it holds ssdlite320_mobilenet_v3_large.")
    with pytest.raises(detector.WeightsError, match="^Not a weights file: expected safetensors"):
        detector.load_model(b"garbage" * 10, architecture="ssdlite320_mobilenet_v3_large", num_classes=3)


def test_checked_weights_are_what_a_strict_load_would_take():
    """The upload check builds no model; it must refuse what loading refuses and give what loading gives."""
    model = detector.build_model("ssdlite320_mobilenet_v3_large", 2, image_size=160)
    state = model.state_dict()
    half = {name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in state.items()}
    data = detector.state_to_bytes(half, architecture="ssdlite320_mobilenet_v3_large", class_names=["a", "b"],
                                   image_size=160)
    checked, image_size = detector.weights_checked(data, architecture="ssdlite320_mobilenet_v3_large", num_classes=2)
    assert image_size == 160 and checked.keys() == state.keys()
    assert all(checked[name].dtype == state[name].dtype for name in state)  # cast as loading casts
    loaded = detector.load_model(data, architecture="ssdlite320_mobilenet_v3_large", num_classes=2)
    assert all(torch.equal(loaded.state_dict()[name], checked[name]) for name in state)
    for broken in ({k: v for k, v in state.items() if "num_batches_tracked" not in k},  # a tensor missing
                   state | {"extra.weight": torch.zeros(1)}):                            # one too many
        with pytest.raises(detector.WeightsError, match="do not fit"):
            detector.weights_checked(detector.state_to_bytes(broken, architecture="x", class_names=["a", "b"],
                                                             image_size=160),
                                     architecture="ssdlite320_mobilenet_v3_large", num_classes=2)
    with pytest.raises(ValueError, match="Unknown architecture"):
        detector.weights_checked(data, architecture="yolo_v99", num_classes=2)


@pytest.mark.parametrize("said", ["-5", "0", "99999", "big"])
def test_an_input_size_outside_what_training_allows_is_not_taken_from_a_file(said):
    data = detector.weights_to_bytes(detector.build_model("ssdlite320_mobilenet_v3_large", 1),
                                     architecture="ssdlite320_mobilenet_v3_large", class_names=["a"])
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_size])
    header["__metadata__"]["image_size"] = said
    header = json.dumps(header).encode()  # the tensors' offsets count from after the header: they hold
    forged = len(header).to_bytes(8, "little") + header + data[8 + header_size:]
    assert detector.weights_metadata(forged)["image_size"] == said
    loaded = detector.load_model(forged, architecture="ssdlite320_mobilenet_v3_large", num_classes=1)
    assert detector.image_size_of(loaded) == 320


def test_a_file_of_another_kind_of_model_says_it_fits_none_of_ours():
    buffer = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, buffer)
    with pytest.raises(detector.WeightsError, match="fit none of the architectures this app builds"):
        detector.weights_architecture(buffer.getvalue())


def _class_outputs(model, architecture: str) -> torch.Tensor:
    """The class head's outputs on a fixed input, with the class id on dim 1."""
    torch.manual_seed(1)
    with torch.no_grad():
        if architecture.startswith("fasterrcnn"):  # scores and 4 box deltas per class, for 5 region features
            scores, deltas = model.roi_heads.box_predictor(torch.randn(5, 1024))
            return torch.cat([scores[:, :, None], deltas.reshape(5, scores.shape[1], 4)], dim=2)
        features = list(model.backbone(torch.randn(1, 3, 96, 96)).values())
        return model.head.classification_head(features).transpose(1, 2)  # (1, classes, anchors)


@pytest.mark.parametrize("architecture", ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_fpn"])
def test_a_class_head_keeps_each_class_both_lists_name(architecture):
    """A project's classes changed since the base model: one deleted, two added, the order not the same."""
    torch.manual_seed(0)
    old_names, new_names = ["car", "bus", "van"], ["van", "car", "tram", "truck"]
    old = detector.build_model(architecture, len(old_names)).eval()
    new = detector.build_model(architecture, len(new_names)).eval()
    state = detector.state_for_classes(old.state_dict(), old_names, own=new.state_dict(), class_names=new_names,
                                       architecture=architecture)
    new.load_state_dict(state, strict=True)  # every tensor is there, in the new shapes
    before, after = _class_outputs(old, architecture), _class_outputs(new, architecture)
    same = functools.partial(torch.allclose, rtol=1e-4, atol=0)  # a conv of another width sums in another order
    for new_id, old_id in [(0, 0), (1, 3), (2, 1)]:  # background, van, car
        assert same(after[:, new_id], before[:, old_id])
    for new_id in (3, 4):  # tram and truck start fresh, from no old class's rows
        assert not any(same(after[:, new_id], before[:, old_id]) for old_id in range(4))
