"""*Start reviewing* on fixed cameras' frames: how many different scenes a reviewer corrects in their first
N images when the next image passes over look-alikes (review/look_alikes.py) against the queue's order
alone (REVIEW_PASS_LOOK_ALIKES off), in one process, on the same images.

    .venv/bin/python bench/look_alikes.py [--cameras 20] [--frames 10] [--reviews 40]
    DATABASE_URL=postgres://.../bench_looks .venv/bin/python bench/look_alikes.py

Each camera sends `frames` frames a second apart (640x480, sensor noise): the first ones unchanged, the
last three with a car passing (three new scenes); the model is about as unsure of every frame of a
camera, so a camera's frames sit together in the queue, the most uncertain camera first. A simulated
reviewer opens the next image and saves it, `reviews` times, once with each setting. A scene is a
camera's view with the car where it is (or none); then the queue page is loaded with the cards that look
like an image seen lately marked, and without. Prints how many held-out frames look like a training
frame (the splits by hash alone, and as stored: look-alikes join the split of the frame before), the
scenes each reviewer corrected, the median
time of a "next image" with each, how many frames and scenes an import of the same frames keeps with
unchanged frames left out (skip_look_alikes), and a last line `scenes_vs_queue_order: X.XX` (scenes
corrected with look-alikes passed over, over scenes without: higher is better).
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
import zipfile

import numpy as np
import PIL.Image

from _django import setup

CAR_FRAMES = 3  # the last frames of each camera, with a car at another place in each


def frame(camera: int, number: int, frames: int) -> tuple[bytes, tuple[int, int | None]]:
    """A frame's PNG and its scene: (camera, where the car is, None when there is none)."""
    view = np.random.default_rng(camera).integers(30, 220, (6, 8, 3)).astype(np.uint8)
    pixels = np.asarray(PIL.Image.fromarray(view).resize((640, 480), PIL.Image.Resampling.BILINEAR), np.float32)
    pixels = pixels + np.random.default_rng([camera, number]).normal(0, 5, pixels.shape)
    car = None
    if number >= frames - CAR_FRAMES:
        car = 80 + 160 * (number - (frames - CAR_FRAMES))
        pixels[300:360, car:car + 120] = (235, 235, 240)
    out = io.BytesIO()
    PIL.Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue(), (camera, car)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--reviews", type=int, default=40)
    args = parser.parse_args()
    setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from datasets.imports import ImportSource, dataset_import
    from review.look_alikes import Look, alike_to_any
    from review.models import Image, ImageLook, ReviewEvent, ReviewStatus
    from review.services import image_boxes_save, image_create, image_next_for_review, project_create, split_for_hash

    owner = get_user_model().objects.create(username=f"bench-{time.time_ns()}")
    project = project_create(name="cameras", owner=owner, class_names=["car"])
    scenes, started, files = {}, time.perf_counter(), {}
    uncertainty = np.random.default_rng(0).uniform(0.3, 0.9, args.cameras)
    for camera in range(args.cameras):
        for number in range(args.frames):
            data, scene = frame(camera, number, args.frames)
            image = image_create(project=project, data=data, filename=f"cam{camera:02d}-{number:03d}.png")
            Image.objects.filter(pk=image.pk).update(priority=uncertainty[camera] - 1e-4 * number)
            scenes[image.pk] = scene
            files[f"cam{camera:02d}/{number:03d}.png"] = (data, scene)
    total_scenes = len(set(scenes.values()))
    print(f"{len(scenes)} frames of {args.cameras} cameras, {total_scenes} scenes, added in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    looks = {pk: (Look(width, height, bytes(cells), pk), split, content_hash) for pk, width, height, cells, split, content_hash
             in ImageLook.objects.filter(image__project=project).values_list(
                 "image_id", "image__width", "image__height", "cells", "image__split", "image__content_hash")}
    for name, split_of in (("by hash alone", lambda row: split_for_hash(row[2], project.holdout_fraction)),
                           ("look-alikes joined", lambda row: row[1])):
        train = [row[0] for row in looks.values() if split_of(row) == "train"]
        held = [row[0] for row in looks.values() if split_of(row) == "holdout"]
        leaked = sum(alike_to_any(held, train))
        print(f"splits {name}: {len(held)} held-out frames, {leaked} of them looking like a training frame", flush=True)

    results = {}
    for passing in (False, True):
        settings.REVIEW_PASS_LOOK_ALIKES = passing
        Image.objects.filter(project=project).update(status=ReviewStatus.UNREVIEWED, held_by=None, held_until=None,
                                                     reviewed_by=None, reviewed_at=None)
        ReviewEvent.objects.filter(image__project=project).delete()
        seen, times = set(), []
        for _ in range(args.reviews):
            started = time.perf_counter()
            image = image_next_for_review(project=project, user=owner)
            times.append(time.perf_counter() - started)
            image = Image.objects.get(pk=image.pk)
            image_boxes_save(image=image, user=owner, boxes=[], version=image.version)
            seen.add(scenes[image.pk])
        results[passing] = len(seen)
        print(f"look-alikes {'passed over' if passing else 'in queue order'}: {len(seen)} scenes in the first "
              f"{args.reviews} images; next image median {statistics.median(times) * 1000:.1f} ms, "
              f"slowest {max(times) * 1000:.1f} ms", flush=True)
    # The queue page after those 40 saves: its cards say which look like an image seen lately.
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(owner)
    url = reverse("review:project_queue", args=[project.pk])
    for marking in (False, True):
        settings.REVIEW_PASS_LOOK_ALIKES = marking
        times = []
        for _ in range(12):
            started = time.perf_counter()
            page = client.get(url, secure=True, HTTP_HOST="localhost")  # DEBUG=0: https, as in production
            times.append(time.perf_counter() - started)
        assert page.status_code == 200, page.status_code
        marked = page.content.decode().count(", seen lately")
        print(f"queue page {'with' if marking else 'without'} look-alikes marked: median "
              f"{statistics.median(times[2:]) * 1000:.1f} ms, {marked} cards marked", flush=True)

    # The same frames imported again, into a project of their own, leaving out unchanged ones.
    other = project_create(name="cameras, unchanged frames left out", owner=owner, class_names=["car"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, (data, _) in files.items():
            archive.writestr(name, data)
    report = dataset_import(project=other, source=ImportSource(buffer, name="cams.zip"), user=None,
                            skip_look_alikes=True)
    left_out = {row["file"] for row in report.skipped}
    kept = {scene for name, (_, scene) in files.items() if name not in left_out}
    print(f"imported with unchanged frames left out: {report.images_added} of {len(files)} frames kept, "
          f"{len(kept)} of {total_scenes} scenes among them", flush=True)
    print(f"scenes_vs_queue_order: {results[True] / results[False]:.2f}")


if __name__ == "__main__":
    main()
