"""Archives and label files built in memory for the import and export tests."""
from __future__ import annotations

import io
import json
import zipfile

import av
import numpy as np
import PIL.Image

from datasets.imports import ImportSource
from review.demo_images import generate_scene


def scene_png(seed: int, size: int = 96) -> bytes:
    return generate_scene(seed, width=size, height=size).png_bytes()


def zip_of(files: dict[str, bytes], *, deflated: set[str] = frozenset()) -> io.BytesIO:
    """The files stored as they are, bar those named in `deflated` (compressed: read back by inflating)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in deflated else None)
    buffer.seek(0)
    return buffer


def source_of(files: dict[str, bytes]) -> ImportSource:
    return ImportSource(zip_of(files), name="upload.zip")


def json_source(doc: dict, name: str = "labels.json") -> ImportSource:
    return ImportSource(io.BytesIO(json.dumps(doc).encode()), name=name)


def coco_doc(images: list[tuple[str, int, int]], boxes: list[tuple[int, str, list[float]]], *,
             classes=("circle", "square", "triangle"), score: float | None = None) -> dict:
    """images: (file name, width, height); boxes: (image index, class name, [x, y, w, h])."""
    category = {name: number + 1 for number, name in enumerate(classes)}
    annotations = []
    for number, (image_index, name, bbox) in enumerate(boxes):
        annotation = {"id": number + 1, "image_id": image_index + 1, "category_id": category[name], "bbox": bbox}
        if score is not None:
            annotation["score"] = score
        annotations.append(annotation)
    return {
        "images": [{"id": n + 1, "file_name": f, "width": w, "height": h} for n, (f, w, h) in enumerate(images)],
        "categories": [{"id": i, "name": n} for n, i in category.items()],
        "annotations": annotations,
    }


COLOURS = [(230, 30, 30), (30, 230, 30), (30, 30, 230)]  # one per second: red, green, blue


def clip(seconds: int = 3, fps: int = 10, size=(64, 48), still: bool = False, container: str = "mp4") -> bytes:
    """A video made here with FFmpeg's own MPEG-4 encoder: each second its own colour, and unless
    `still`, a black bar that grows frame by frame so that no two frames are alike."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as video:
        stream = video.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for n in range(seconds * fps):
            pixels = np.full((size[1], size[0], 3), COLOURS[(n // fps) % len(COLOURS)], np.uint8)
            if not still:
                pixels[:, : n % fps + 1] = 0
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                video.mux(packet)
        for packet in stream.encode():
            video.mux(packet)
    return out.getvalue()


def frame_colour(image) -> np.ndarray:
    with PIL.Image.open(image.file.open("rb")) as picture:
        return np.asarray(picture.convert("RGB"))[:, 20:].reshape(-1, 3).mean(0)  # right of the bar
