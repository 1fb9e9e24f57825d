"""Stream images through a Detector in batches, reading and decoding ahead in background threads. No Django here.

The caller hands in (key, read_bytes) pairs. Background threads read the bytes a few batches ahead
of the model. On a CPU they also decode with Pillow (which releases the GIL). On a GPU, plain JPEGs
(no EXIF rotation, the usual camera frame) travel to the GPU as compressed bytes and are decoded
there with nvjpeg, a batch in one call, in a thread of their own while the model works on the
previous batch: decoding on the CPU in Python threads took the GIL away from the model's thread,
which on a GPU is busy launching kernels (docs/benchmarks.md). Anything else (PNG, rotated or CMYK
JPEGs, a JPEG nvjpeg refuses) is decoded by Pillow as on a CPU. Each batch comes back as
ImageResult rows, so the caller can write and report between batches.
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
EXIF_ORIENTATION = 0x0112


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
    tensor: torch.Tensor | None     # uint8 CHW, on the CPU (pinned on CUDA) or already on the GPU
    error: str = ""
    jpeg: bytes | None = None       # compressed bytes still to be decoded on the GPU


def decode_to_tensor(data: bytes, *, pin: bool) -> torch.Tensor:
    """Image bytes -> upright RGB uint8 CHW tensor (pinned for fast, non-blocking copies on CUDA)."""
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    tensor = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()
    return tensor.pin_memory() if pin else tensor


def gpu_decodable_jpeg(data: bytes) -> bool:
    """A JPEG that nvjpeg decodes to exactly what Pillow would give: baseline colour or grey, upright.

    Most camera frames carry neither an EXIF block nor Adobe's colour-transform marker (CMYK), and
    the byte search settles them without parsing; any other file is parsed (header only) for its
    colour mode and orientation, since nvjpeg neither rotates nor converts CMYK the way Pillow does.
    """
    if not data.startswith(b"\xff\xd8"):
        return False
    head = data[:65536]
    if b"Exif\x00\x00" not in head and b"Adobe" not in head:
        return True
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            return image.mode in ("RGB", "L") and image.getexif().get(EXIF_ORIENTATION, 1) == 1
    except Exception:  # let Pillow's full decode report what is wrong with it
        return False


def _read(key: int, read: Callable[[], bytes], pin: bool, gpu_jpeg: bool) -> _Decoded:
    try:
        data = read()
        if gpu_jpeg and gpu_decodable_jpeg(data):
            return _Decoded(key, None, jpeg=data)
        return _Decoded(key, decode_to_tensor(data, pin=pin))
    except Exception as exc:  # one unreadable image must not stop the run: it is reported per image
        return _Decoded(key, None, f"Could not read the image: {exc}")


def _finish_decoding(decoded: list[_Decoded], device: torch.device, stream: torch.cuda.Stream | None) -> list[_Decoded]:
    """Decode the batch's JPEG bytes on the GPU in one nvjpeg call; Pillow takes any it refuses."""
    waiting = [i for i, d in enumerate(decoded) if d.jpeg is not None]
    if not waiting:
        return decoded
    decoded = list(decoded)
    images: list[torch.Tensor | None] = [None] * len(waiting)
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
        with torch.cuda.stream(stream):
            images = decode_jpeg([torch.frombuffer(bytearray(decoded[i].jpeg), dtype=torch.uint8) for i in waiting],
                                 mode=ImageReadMode.RGB, device=device)
        # Finished before the model's stream reads them; they are freed only after the model's
        # batch has been copied back to the host, so the side stream never reuses them too early.
        stream.synchronize()
    except Exception:  # nvjpeg refused one of them (progressive, damaged...): the batch goes to Pillow
        images = [None] * len(waiting)
    for i, image in zip(waiting, images):
        if image is None:
            decoded[i] = _read(decoded[i].key, lambda data=decoded[i].jpeg: data, True, False)
        else:
            decoded[i] = _Decoded(decoded[i].key, image)
    return decoded


def predict_stream(
    items: Sequence[tuple[int, Callable[[], bytes]]],
    detector: Detector,
    *,
    batch_size: int,
    decode_pool: Executor | None = None,
    gpu_decoder: Executor | None = None,
    prefetch_batches: int = 2,
    gpu_decode: bool = True,
) -> Iterator[list[ImageResult]]:
    """Yield one list of ImageResult per batch, in input order. Stop iterating to cancel.

    Pass a long-lived `decode_pool` (and on a GPU a one-thread `gpu_decoder`) in a worker: threads
    made afresh for every chunk each get a malloc arena of their own, and resident memory then
    grows run after run on many-core machines.
    """
    cuda = detector.device.type == "cuda"
    gpu_jpeg = cuda and gpu_decode
    own: list[Executor] = []  # pools made here for this one stream, shut down at its end
    pool = decode_pool
    if pool is None:
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")
        own.append(pool)
    device_pool = gpu_decoder
    if gpu_jpeg and device_pool is None:
        device_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpu-decode")
        own.append(device_pool)
    side_stream = torch.cuda.Stream(device=detector.device) if gpu_jpeg else None
    pending: deque[Future[_Decoded]] = deque()
    upcoming = iter(items)

    def top_up() -> None:
        while len(pending) < batch_size * (prefetch_batches + 1):
            item = next(upcoming, None)
            if item is None:
                return
            pending.append(pool.submit(_read, item[0], item[1], cuda, gpu_jpeg))

    def next_read() -> list[_Decoded] | None:
        """The next batch as the read threads left it (waits for those reads only)."""
        if not pending:
            return None
        read = [pending.popleft().result() for _ in range(min(batch_size, len(pending)))]
        top_up()
        return read

    def decoded_batches() -> Iterator[list[_Decoded]]:
        if not gpu_jpeg:
            while (read := next_read()) is not None:
                yield read
            return
        # On a GPU the next batch's nvjpeg call runs in its own thread while the model works on this one.
        read = next_read()
        upcoming_batch = device_pool.submit(_finish_decoding, read, detector.device, side_stream) if read else None
        try:
            while upcoming_batch is not None:
                decoded = upcoming_batch.result()
                read = next_read()
                upcoming_batch = device_pool.submit(_finish_decoding, read, detector.device, side_stream) if read else None
                yield decoded
        finally:
            if upcoming_batch is not None:
                upcoming_batch.cancel()

    batches = decoded_batches()
    try:
        top_up()
        for decoded in batches:
            yield _predict_batch(detector, decoded)
    finally:
        batches.close()
        for future in pending:
            future.cancel()
        for own_pool in own:
            own_pool.shutdown(wait=True, cancel_futures=True)


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
