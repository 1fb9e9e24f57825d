"""Stream images through a Detector in batches, decoding ahead in background threads. No Django here.

The caller hands in (key, read_bytes) pairs; Pillow decoding (which releases the GIL) runs in a
thread pool a few batches ahead of the model, so the model does not wait when decoding can keep up.
Each batch comes back as ImageResult rows, so the caller can write and report between batches.
"""
from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageOps

from inference.detector import Detections, Detector

# Boxes below this size (pixels) after clipping are numerical noise, not objects.
MIN_BOX_SIDE = 0.5
# A box scored within this band around the review threshold is one a human should look at.
REVIEW_THRESHOLD = 0.5


@dataclass(frozen=True)
class ImageResult:
    key: int
    width: int
    height: int
    detections: Detections | None   # None when the image could not be decoded
    error: str = ""


@dataclass(frozen=True)
class _Decoded:
    key: int
    tensor: torch.Tensor | None
    error: str = ""


def decode_to_tensor(data: bytes, *, pin: bool) -> torch.Tensor:
    """Image bytes -> upright RGB uint8 CHW tensor (pinned for fast, non-blocking copies on CUDA)."""
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    tensor = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()
    return tensor.pin_memory() if pin else tensor


def _decode(key: int, read: Callable[[], bytes], pin: bool) -> _Decoded:
    try:
        return _Decoded(key, decode_to_tensor(read(), pin=pin))
    except Exception as exc:  # one unreadable image must not stop the run: it is reported per image
        return _Decoded(key, None, f"Could not read the image: {exc}")


def predict_stream(
    items: Sequence[tuple[int, Callable[[], bytes]]],
    detector: Detector,
    *,
    batch_size: int,
    decode_pool: Executor | None = None,
    prefetch_batches: int = 2,
) -> Iterator[list[ImageResult]]:
    """Yield one list of ImageResult per batch, in input order. Stop iterating to cancel.

    Pass a long-lived `decode_pool` in a worker: threads made afresh for every chunk each get a
    malloc arena of their own, and resident memory then grows run after run on many-core machines.
    """
    pin = detector.device.type == "cuda"
    own_pool = decode_pool is None
    pool = decode_pool or ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")
    pending: deque[Future[_Decoded]] = deque()
    upcoming = iter(items)

    def top_up() -> None:
        while len(pending) < batch_size * (prefetch_batches + 1):
            item = next(upcoming, None)
            if item is None:
                return
            pending.append(pool.submit(_decode, item[0], item[1], pin))

    try:
        top_up()
        while pending:
            decoded = [pending.popleft().result() for _ in range(min(batch_size, len(pending)))]
            top_up()
            yield _predict_batch(detector, decoded)
    finally:
        for future in pending:
            future.cancel()
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)


def _predict_batch(detector: Detector, decoded: list[_Decoded]) -> list[ImageResult]:
    good = [d for d in decoded if d.tensor is not None]
    detections = iter(detector.predict([d.tensor for d in good]))
    results = []
    for d in decoded:
        if d.tensor is None:
            results.append(ImageResult(d.key, 0, 0, None, d.error))
            continue
        height, width = d.tensor.shape[1:]
        results.append(ImageResult(d.key, width, height, clean_detections(next(detections), width, height)))
    return results


def clean_detections(detections: Detections, width: int, height: int) -> Detections:
    """Clip boxes to the image and drop degenerate ones (some heads emit zero-width boxes at edges)."""
    boxes = detections.boxes_xyxy.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= MIN_BOX_SIDE) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_SIDE)
    keep &= np.isfinite(boxes).all(axis=1) & np.isfinite(detections.scores)
    return Detections(boxes_xyxy=boxes[keep], labels=detections.labels[keep], scores=detections.scores[keep])


def image_uncertainty(scores: np.ndarray, *, threshold: float = REVIEW_THRESHOLD) -> float:
    """How unsure the model is about one image, 0 (sure) to 1 (a coin toss).

    Each box's doubt is 1 - |score - threshold| / max(threshold, 1 - threshold): 1 for a box scored
    exactly at the review threshold, 0 for a box at score 0 or 1. The image takes its most doubtful
    box, because one borderline box is enough to need a human. No boxes at all gives 0.
    """
    if scores.size == 0:
        return 0.0
    doubt = 1.0 - np.abs(scores.astype(np.float64) - threshold) / max(threshold, 1.0 - threshold)
    return float(np.clip(doubt, 0.0, 1.0).max())
