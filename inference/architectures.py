"""The detector architectures this app can build, as plain data, and what a weights file says of
itself (its safetensors metadata). No torch and no Django here.

The web tier validates names, shows choices and sizes training runs from this registry without
importing torch (about 700 MB and 4 s per web process); inference/detector.py builds each entry
with the torchvision function of the same name. Adding an architecture is one line here.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Architecture:
    image_size: int          # shorter side the model resizes to (its default input size)
    batch_size: int          # a sensible default for inference on a GPU
    coco_file: str           # torchvision's COCO weights for it: the name torch.hub caches them under
    cpu_friendly: bool = False


# Keys are torchvision.models.detection builder names.
ARCHITECTURES: dict[str, Architecture] = {
    "fasterrcnn_mobilenet_v3_large_fpn": Architecture(800, 16, "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": Architecture(320, 32, "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth"),
    "fasterrcnn_resnet50_fpn_v2": Architecture(800, 8, "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"),
    "retinanet_resnet50_fpn_v2": Architecture(800, 8, "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth"),
    "fcos_resnet50_fpn": Architecture(800, 8, "fcos_resnet50_fpn_coco-99b0c9b7.pth"),
    "ssdlite320_mobilenet_v3_large": Architecture(320, 32, "ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
                                                  cpu_friendly=True),
}
# The class ids 1..90 of torchvision's COCO weights, the same for every architecture above (a test
# checks them against torchvision); "N/A" marks the ids COCO does not use.
COCO_CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop",
    "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
COCO_CLASSES = sorted(name for name in COCO_CLASS_NAMES if name != "N/A")


def coco_class_for(name: str) -> str:
    """The COCO class a project's class is by default: the one of the same name in any case, else ""."""
    return name.lower() if name.lower() in COCO_CLASSES else ""


# The input sizes training takes and a weights file may name (smaller finds nothing; larger runs out of memory).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 4096
DEFAULT_GPU_ARCHITECTURE = "fasterrcnn_mobilenet_v3_large_fpn"
DEFAULT_CPU_ARCHITECTURE = "ssdlite320_mobilenet_v3_large"
# Where Linux's NVIDIA driver reports itself: a GPU is there without asking torch (or CUDA) to start.
NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")


class WeightsError(ValueError):
    """Weights that cannot be loaded into the named architecture; the message says why."""


def machine_default_architecture() -> str:
    """The default for a model trained on this machine: Faster R-CNN with an NVIDIA GPU, SSDlite on a CPU."""
    return DEFAULT_GPU_ARCHITECTURE if NVIDIA_DRIVER_FILE.exists() else DEFAULT_CPU_ARCHITECTURE


def coco_weights_found(folder: Path) -> dict[str, Path]:
    """The architectures whose torchvision COCO weights lie in `folder` (settings.COCO_WEIGHTS_DIR), and where."""
    return {name: folder / spec.coco_file for name, spec in ARCHITECTURES.items() if (folder / spec.coco_file).is_file()}


def weights_metadata(data: bytes) -> dict[str, str]:
    """The metadata of a safetensors file (architecture, class_names) without loading the tensors."""
    try:
        (header_size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + header_size])
    except (struct.error, ValueError, UnicodeDecodeError):
        raise WeightsError("The file is not a safetensors weights file.") from None
    return header.get("__metadata__", {}) if isinstance(header, dict) else {}
