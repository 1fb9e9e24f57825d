"""What a queue page of camera frames costs the browser with thumbnails (review/thumbnails.py) against
the stored images it loaded before, and what making a thumbnail costs the server; the same for a page
of error review's patches, each the region around a box, against the whole frames it loaded before.

    .venv/bin/python bench/thumbnails.py [--cards 48] [--patches 60] [--size 1920x1080]

Generates one queue page of JPEG frames (the demo's scenes at a camera's size, with sensor noise),
then prints the bytes the page's images take as stored and as thumbnails, the time to make one
thumbnail with Pillow's JPEG draft mode (decoding at a reduced scale) against a full decode and
resize, the bytes and time of a page of patches (the scenes' boxes, one patch per frame), and last
lines `page_bytes_ratio: X.X`, `draft_speedup: X.XX` and `patch_page_bytes_ratio: X.X` (higher is
better). No database: the same functions the thumbnail and region views call.
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import PIL.Image

from _django import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=48, help="images on one queue page")
    parser.add_argument("--patches", type=int, default=60, help="patches on one error review page")
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    setup()
    from review.demo_images import generate_scene
    from inference.views import patch_region
    from review.thumbnails import THUMBNAIL_QUALITY, THUMBNAIL_SIDE, region_bytes, thumbnail_bytes

    rng = np.random.default_rng(0)
    frames, boxes = [], []
    for seed in range(max(args.cards, args.patches)):
        scene = generate_scene(seed, width=width, height=height)
        boxes.append(scene.boxes[0])
        pixels = np.asarray(scene.image, dtype=np.int16)
        noisy = np.clip(pixels + rng.normal(0, 4, pixels.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        PIL.Image.fromarray(noisy).save(out, "JPEG", quality=90)
        frames.append(out.getvalue())

    def full_decode(data: bytes) -> bytes:  # the baseline: every pixel decoded, then resized
        with PIL.Image.open(io.BytesIO(data)) as picture:
            small = picture.convert("RGB")
        small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), PIL.Image.Resampling.BICUBIC)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
        return out.getvalue()

    timings = {}
    for name, make in [("full decode", full_decode), ("draft", thumbnail_bytes)]:
        make(frames[0])  # warm up
        started = time.perf_counter()
        thumbnails = [make(frame) for frame in frames[:args.cards]]
        timings[name] = (time.perf_counter() - started) / args.cards
    stored, small = sum(map(len, frames[:args.cards])), sum(map(len, thumbnails))
    started = time.perf_counter()
    regions = [region_bytes(frame, patch_region(box.x, box.y, box.w, box.h, width, height))
               for frame, box in zip(frames[:args.patches], boxes)]
    per_region = (time.perf_counter() - started) / args.patches
    patch_stored, patch_small = sum(map(len, frames[:args.patches])), sum(map(len, regions))
    print(f"{args.cards} frames {width}x{height}: stored {stored / 1e6:.1f} MB, thumbnails {small / 1e6:.2f} MB "
          f"({THUMBNAIL_SIDE} px on the longer side)")
    print(f"one thumbnail: {timings['full decode'] * 1000:.1f} ms with a full decode, {timings['draft'] * 1000:.1f} ms in draft mode")
    print(f"{args.patches} patches: whole frames {patch_stored / 1e6:.1f} MB, regions {patch_small / 1e6:.2f} MB; "
          f"one region: {per_region * 1000:.1f} ms")
    print(f"page_bytes_ratio: {stored / small:.1f}")
    print(f"draft_speedup: {timings['full decode'] / timings['draft']:.2f}")
    print(f"patch_page_bytes_ratio: {patch_stored / patch_small:.1f}")


if __name__ == "__main__":
    main()
