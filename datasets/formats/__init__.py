"""Label file formats (COCO JSON, YOLO txt, Pascal VOC XML), read into and written from one neutral shape.

Pure Python: no Django, no database. Readers turn bytes into `ImageLabels` (boxes named by class,
in image pixels, or normalised for YOLO until the image's size is known); writers do the reverse.
Every reader refuses bad input with `FormatError` (the whole file is unusable) or lists per-image
problems (that image is unusable); `box_problems` is the one place boxes are judged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

# Boxes may overhang the image by this much (pixels) to absorb rounding in other tools' exports.
EDGE_TOLERANCE_PX = 0.5
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
FORMATS = ("coco", "yolo", "voc")


class FormatError(ValueError):
    """A label file cannot be read at all; the message says which file and why, in a user's words."""


@dataclass
class Box:
    category: str
    x: float   # left edge; in pixels, or a fraction of the width when ImageLabels.normalised
    y: float   # top edge
    w: float
    h: float
    score: float | None = None   # set for a model's detections, None for human labels


@dataclass
class ImageLabels:
    """The boxes one label file gives one image."""

    file_name: str                  # the image's path as the label file names it
    boxes: list[Box] = field(default_factory=list)
    width: int | None = None        # as the label file states it (YOLO states none)
    height: int | None = None
    normalised: bool = False        # YOLO: coordinates are fractions of the image size
    split: str | None = None        # "train" or "holdout" when the export says
    tags: tuple[str, ...] = ()      # the image's tags (a camera, night) when a COCO file of ours says
    problems: list[str] = field(default_factory=list)  # why this image's labels cannot be used

    def in_pixels(self, width: int, height: int) -> list[Box]:
        """The boxes in pixels of an image of this size."""
        if not self.normalised:
            return list(self.boxes)
        return [Box(b.category, b.x * width, b.y * height, b.w * width, b.h * height, b.score) for b in self.boxes]


def box_problems(boxes: list[Box], *, width: int, height: int) -> list[str]:
    """What is wrong with boxes on a width x height image: NaN, non-positive size, outside the image."""
    problems = []
    for number, box in enumerate(boxes, start=1):
        where = f"box {number} ({box.category})"
        values = (box.x, box.y, box.w, box.h)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            problems.append(f"{where}: coordinates must be finite numbers")
        elif box.w <= 0 or box.h <= 0:
            problems.append(f"{where}: width and height must be positive, not {box.w:g} x {box.h:g}")
        elif (box.x < -EDGE_TOLERANCE_PX or box.y < -EDGE_TOLERANCE_PX
              or box.x + box.w > width + EDGE_TOLERANCE_PX or box.y + box.h > height + EDGE_TOLERANCE_PX):
            problems.append(f"{where}: [{box.x:g}, {box.y:g}, {box.w:g}, {box.h:g}] lies outside the "
                            f"{width}x{height} image")
        elif box.score is not None and not (math.isfinite(box.score) and 0 <= box.score <= 1):
            problems.append(f"{where}: score must be between 0 and 1, not {box.score}")
    return problems


def clipped(box: Box, *, width: int, height: int) -> Box:
    """The box pulled inside the image, for boxes within EDGE_TOLERANCE_PX of an edge."""
    x, y = max(0.0, box.x), max(0.0, box.y)
    return Box(box.category, x, y, min(box.x + box.w, width) - x, min(box.y + box.h, height) - y, box.score)


def stem(path: str) -> str:
    """The file name without folders and extension: how YOLO and VOC pair labels with images."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def is_image_name(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


# A video upload imports its frames (datasets/video_source.py).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm")


def is_video_name(path: str) -> bool:
    return path.lower().endswith(VIDEO_SUFFIXES)
