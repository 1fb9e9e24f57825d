"""A model version as an ONNX file a deployment runs without torch (onnxruntime, TensorRT, OpenVINO),
and the check that the file predicts what the model does. No Django here.

The file takes one image as it comes off a camera or out of Pillow: `image`, uint8, height x width x 3,
RGB, any size. Everything torchvision does around the network is inside: the conversion to float, the
normalisation and resizing, the box decoding and non-maximum suppression, and the scaling of boxes back
to the image. It gives `boxes` (n x 4 float32, x1 y1 x2 y2 in the image's pixels), `labels` (n int64,
1 for the first class name) and `scores` (n float32), best first, down to STORE_SCORE_FLOOR; the
metadata says the class names and the score threshold to deploy at (tools/onnx_predict.py reads both).

torch's exporter that follows torch.export cannot trace torchvision's detectors (their post-processing
has shapes that depend on the data: GuardOnDataDependentSymNode), so this uses the TorchScript-based
one, which torchvision's own ONNX tests use for these models (opset 11 and later).
"""
from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from inference.detector import STORE_SCORE_FLOOR, Detections, Detector, set_output_limits

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "labels", "scores")
# The boxes the check compares: those a deployment could keep. Lower ones may trade places in
# non-maximum suppression on float noise and say nothing about the file.
CHECK_MIN_SCORE = 0.3
# A box of the file must lie on the model's within this many pixels, each corner (not an IoU: a box
# clipped flat at the image's edge, which RetinaNet and FCOS give, has none), with a score this close.
CHECK_MAX_BOX_DIFFERENCE = 1.0
CHECK_MAX_SCORE_DIFFERENCE = 0.01


class _FromPixels(nn.Module):
    """uint8 HWC RGB in, (boxes, labels, scores) out: what a deployment has, and a fixed output order
    (torchvision's detectors give dicts whose key order differs between architectures)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        chw = image.permute(2, 0, 1).to(torch.float32) / 255.0
        out = self.model([chw])[0]
        return out["boxes"], out["labels"], out["scores"]


def onnx_from_model(model: nn.Module, *, metadata: dict[str, str], opset: int = OPSET) -> bytes:
    """The model as ONNX bytes, with `metadata` as the file's metadata_props. The model is moved to the CPU,
    put in eval mode and given the app's score floor: pass one of its own, not a cached detector's."""
    import onnx  # only a worker that exports needs it

    model = model.eval().to("cpu")
    set_output_limits(model, score_threshold=STORE_SCORE_FLOOR, max_detections=_max_detections(model))
    # Any size traces the same graph (height and width are dynamic); a camera's usual shape.
    sample = torch.randint(0, 256, (480, 640, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The exporter warns of the legacy path (see the module's note), and the tracer of each Python number
        # it meets; torchvision computes the resize from the input's shape in ONNX operators when exporting,
        # so other sizes still work (tests/inference/test_model_exports.py predicts four).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _FromPixels(model).eval(), (sample,), buffer, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "height", 1: "width"}, **{name: {0: "detections"} for name in OUTPUT_NAMES}})
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(graph, {key: str(value) for key, value in metadata.items()})
    return graph.SerializeToString()


def _max_detections(model: nn.Module) -> int:
    owner = model.roi_heads if hasattr(model, "roi_heads") else model
    return int(owner.detections_per_img)


def onnx_metadata(onnx_bytes: bytes) -> dict[str, str]:
    import onnx

    return {prop.key: prop.value for prop in onnx.load_from_string(onnx_bytes).metadata_props}


@dataclass
class OnnxCheck:
    """How the ONNX file's boxes compare with the model's on the same images."""

    images: int = 0
    boxes: int = 0                  # the model's boxes scored at least CHECK_MIN_SCORE
    matched: int = 0                # of those, the file gave the same class on the same place and score
    max_box_difference: float | None = None    # pixels, the largest of any corner of a matched box
    max_score_difference: float | None = None
    onnxruntime: str = ""
    first_mismatch: str = ""
    min_score: float = CHECK_MIN_SCORE

    @property
    def passed(self) -> bool:
        return self.matched == self.boxes

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def onnx_session(onnx_bytes: bytes, *, threads: int | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its warnings of unused initialisers are about the exporter, not the model
    if threads:
        options.intra_op_num_threads = threads
    # Its threads otherwise spin between operators, waiting for work: in a worker they took the cores the
    # decoding and writing threads needed (bench/inference.py on 2 cores: pipeline_vs_raw 0.73 -> 0.82-0.98).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def onnx_check_image(session, model: nn.Module, image: np.ndarray, check: OnnxCheck, *, name: str = "",
                     min_score: float = CHECK_MIN_SCORE) -> None:
    """Predict `image` (uint8 HWC RGB) with the file and the model; add what agrees to `check`."""
    import onnxruntime

    check.onnxruntime = onnxruntime.__version__
    with torch.inference_mode():
        expected = _FromPixels(model.eval().to("cpu"))(torch.from_numpy(np.ascontiguousarray(image)))
    boxes, labels, scores = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(image)})
    check.images += 1
    check.min_score = min_score
    floor = min_score
    if len(expected[2]) >= _max_detections(model):
        # A full list was cut at the per-image limit: boxes scored about the last one's may trade places
        # across the cut on float noise; those above it may not.
        floor = max(floor, float(expected[2].min()) + CHECK_MAX_SCORE_DIFFERENCE)
    keep = (expected[2] >= floor).numpy()
    for box, label, score in zip(*(tensor.numpy()[keep] for tensor in expected)):
        check.boxes += 1
        corners = np.abs(boxes - box).max(axis=1) if len(boxes) else np.zeros(0)
        score_differences = np.abs(scores - score) if len(boxes) else np.zeros(0)
        alike = ((labels == label) & (corners <= CHECK_MAX_BOX_DIFFERENCE)
                 & (score_differences <= CHECK_MAX_SCORE_DIFFERENCE))
        if alike.any():
            best = np.flatnonzero(alike)[int(score_differences[alike].argmin())]
            check.matched += 1
            check.max_box_difference = _highest(check.max_box_difference, float(corners[best]))
            check.max_score_difference = _highest(check.max_score_difference, float(score_differences[best]))
        elif not check.first_mismatch:
            where = ", ".join(f"{v:.0f}" for v in box.tolist())
            check.first_mismatch = (f"{name or 'an image'}: the model's box of class {int(label)} at "
                                    f"[{where}] scored {float(score):.3f}; the ONNX file gave none like it")


def _highest(current: float | None, value: float) -> float:
    return value if current is None else max(current, value)


def metadata_for(*, architecture: str, class_names: Sequence[str], score_threshold: float | None,
                 version: str, project: str) -> dict[str, str]:
    """The metadata a file carries: enough for a deployment that never talks to this app."""
    return {
        "architecture": architecture, "class_names": json.dumps(list(class_names)),
        "score_threshold": "" if score_threshold is None else f"{score_threshold:.6g}",
        "model_version": version, "project": project,
        "input": "image: uint8 height x width x 3, RGB",
        "outputs": "boxes: n x 4 float32 x1 y1 x2 y2 in the image's pixels; labels: n int64, 1 = class_names[0]; "
                   "scores: n float32",
    }


class OnnxDetector:
    """A detector on the CPU that runs the model's ONNX file with onnxruntime: what inference workers
    without a GPU use (INFERENCE_CPU_RUNTIME), with Detector's interface. On 2 CPU cores a worker predicts
    SSDlite's images 2.7x as fast as with torch (bench/inference.py, docs/benchmarks.md): torchvision's
    transform and post-processing are Python per call, the file does them as graph operators. The file
    takes one image per call; its boxes are torch's (tests/inference/test_model_exports.py)."""

    device = torch.device("cpu")

    def __init__(self, session) -> None:
        self.session = session

    @classmethod
    def from_detector(cls, loaded: Detector, *, threads: int | None = None) -> OnnxDetector:
        """A CPU Detector's model as a file, with the output limits it was given (the Detector is spent)."""
        return cls(onnx_session(onnx_from_model(loaded.model, metadata={}), threads=threads))

    def predict(self, images) -> list[Detections]:
        """Predict uint8 CHW RGB tensors (as the pipeline decodes them); boxes in each image's own pixels."""
        results = []
        for image in images:
            pixels = image.permute(1, 2, 0).contiguous().numpy()
            boxes, labels, scores = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: pixels})
            results.append(Detections(boxes_xyxy=boxes.astype(np.float32).reshape(-1, 4),
                                      labels=labels.astype(np.int64), scores=scores.astype(np.float32)))
        return results
