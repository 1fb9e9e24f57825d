"""Deterministic generated images with known boxes: the demo's data and the tests' data.

Nothing is downloaded: each scene is drawn from its seed (a few shapes on a varied background), so
the same seed always gives the same pixels and the same ground-truth boxes.

Domains make a deployed detector's problem: the *source* domain is what a base model is trained on
(bright, clean); a *shifted* domain is what the camera sees later. `night` is dark, low in
contrast, noisy, blurred and tinted blue; `camera` is a new lens: blurred, objects smaller, colours
washed out. A shifted scene has its own layout (not a source scene repainted), and its true boxes
are exact, so a benchmark can play the reviewer while the app never sees them.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

CLASS_NAMES = ("circle", "square", "triangle")
SOURCE = "source"
SHIFTED_DOMAINS = ("night", "camera")
DOMAINS = (SOURCE, *SHIFTED_DOMAINS)
# Object size as a share of the image's short side, per domain (the new camera sees objects smaller).
_SIZE_RANGE = {"source": (0.12, 0.35), "night": (0.12, 0.35), "camera": (0.08, 0.22)}


@dataclass(frozen=True)
class TrueBox:
    class_name: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Scene:
    image: PILImage.Image
    boxes: tuple[TrueBox, ...]

    def png_bytes(self) -> bytes:
        out = io.BytesIO()
        self.image.save(out, format="PNG")
        return out.getvalue()


def generate_scene(seed: int, *, width: int = 256, height: int = 256, max_objects: int = 4,
                   domain: str = SOURCE) -> Scene:
    """One image with 1..max_objects shapes that do not overlap much; boxes are tight, in pixels."""
    if domain not in DOMAINS:
        raise ValueError(f"Unknown domain {domain!r}; choose one of {', '.join(DOMAINS)}.")
    # The source keeps its historical seeds; each shifted domain draws from its own stream.
    rng = np.random.default_rng(seed if domain == SOURCE else [seed, DOMAINS.index(domain)])
    low, high = _SIZE_RANGE[domain]
    image = PILImage.fromarray(_background(rng, width, height))
    draw = ImageDraw.Draw(image)
    boxes: list[TrueBox] = []
    short_side = min(width, height)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            size = float(rng.uniform(low, high) * short_side)
            x = float(rng.uniform(0, width - size))
            y = float(rng.uniform(0, height - size))
            if all(_overlap(x, y, size, b) < 0.2 for b in boxes):
                break
        else:
            continue
        class_name = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        outline = tuple(255 - c for c in colour)
        box = _draw_shape(draw, class_name, x, y, size, colour, outline)
        boxes.append(box)
    if domain != SOURCE:
        image = _shift(image, domain, rng)
    return Scene(image=image, boxes=tuple(boxes))


def _shift(image: PILImage.Image, domain: str, rng: np.random.Generator) -> PILImage.Image:
    """Repaint a clean scene as the shifted camera sees it; the geometry (and so the boxes) is unchanged."""
    if domain == "night":
        image = image.filter(ImageFilter.GaussianBlur(1.5))
        pixels = np.asarray(image, dtype=np.float32)
        pixels = 20 + 0.22 * pixels                                   # dark and low in contrast
        pixels *= np.array([0.75, 0.85, 1.25], dtype=np.float32)      # moonlight blue
        pixels += rng.normal(0, 9, pixels.shape)                      # sensor noise
    else:  # camera
        image = image.filter(ImageFilter.GaussianBlur(2.0))
        pixels = np.asarray(image, dtype=np.float32)
        grey = pixels.mean(axis=2, keepdims=True)
        pixels = 0.35 * pixels + 0.65 * grey                          # washed-out colours
        pixels = 60 + 0.7 * pixels + rng.normal(0, 4, pixels.shape)   # haze
    return PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    kind = int(rng.integers(3))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == 0:  # linear gradient
        t = (xx / max(width - 1, 1))[..., None]
    elif kind == 1:  # stripes
        t = ((np.sin(yy / rng.uniform(4, 16)) + 1) / 2)[..., None]
    else:  # radial
        t = (np.hypot(xx - width / 2, yy - height / 2) / (0.7 * max(width, height)))[..., None]
    pixels = start * (1 - t) + end * t + rng.normal(0, 8, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _draw_shape(draw: ImageDraw.ImageDraw, class_name: str, x: float, y: float, size: float,
                colour: tuple, outline: tuple) -> TrueBox:
    x2, y2 = x + size, y + size
    if class_name == "circle":
        draw.ellipse([x, y, x2, y2], fill=colour, outline=outline, width=2)
    elif class_name == "square":
        draw.rectangle([x, y, x2, y2], fill=colour, outline=outline, width=2)
    else:
        draw.polygon([(x + size / 2, y), (x2, y2), (x, y2)], fill=colour, outline=outline, width=2)
    return TrueBox(class_name, round(x, 2), round(y, 2), round(size, 2), round(size, 2))


def _overlap(x: float, y: float, size: float, other: TrueBox) -> float:
    """Intersection over the smaller box's area."""
    ix = max(0.0, min(x + size, other.x + other.w) - max(x, other.x))
    iy = max(0.0, min(y + size, other.y + other.h) - max(y, other.y))
    return ix * iy / min(size * size, other.w * other.h)
