"""Our trainer through a TrainingRun vs a plain torchvision training loop, in one process.

Same generated images, architecture, batch size, optimiser and device. Both rates are steady-state
training images per second: time between consecutive optimiser steps, the first step of each
epoch left out. The run's rate includes everything our trainer does per step (augmentation,
progress and loss history written to the database, cancel checks); its per-epoch holdout
evaluation is timed separately. Last line: `trainer_vs_raw: X.XX` (goal >= 0.90).

    python bench/training.py                                  # CPU: ssdlite320, batch 8
    python bench/training.py --arch fasterrcnn_mobilenet_v3_large_fpn --batch 8 --images 256
"""
from __future__ import annotations

import argparse
import time

from _django import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=64, help="reviewed images (about 90%% used for training)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=256, help="generated image side in pixels")
    args = parser.parse_args()
    setup()

    import numpy as np
    import torch
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from inference import detector
    from inference.pipeline import decode_to_tensor
    from review.demo_images import CLASS_NAMES, generate_scene
    from review.models import AnnotationSource
    from review.services import BoxIn, image_boxes_save, image_create, project_create
    from training.execution import training_run_execute
    from training.models import TrainingRun
    from training.services import snapshot_freeze, training_run_start

    arch = args.arch or detector.default_architecture()
    device = detector.default_device()
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}  architecture: {arch}  batch: {args.batch}  images: {args.images} at {args.size}px")

    owner = get_user_model().objects.create(username="bench")
    project = project_create(name="bench", owner=owner, class_names=CLASS_NAMES, holdout_fraction=0.1)
    classes = dict(project.label_classes.values_list("name", "pk"))
    scenes = [generate_scene(seed, width=args.size, height=args.size) for seed in range(args.images)]
    for seed, scene in enumerate(scenes):
        image = image_create(project=project, data=scene.png_bytes(), filename=f"{seed}.png")
        image_boxes_save(image=image, user=owner, version=image.version, source=AnnotationSource.IMPORTED,
                         boxes=[BoxIn(classes[b.class_name], b.x, b.y, b.w, b.h) for b in scene.boxes])

    with transaction.atomic():
        run = training_run_start(project=project, user=owner,
                                 params={"architecture": arch, "epochs": args.epochs, "batch_size": args.batch})
    train_ids = set(snapshot_freeze(project=project, user=owner).train_image_ids)  # the run's worker reuses it
    lr = run.params["learning_rate"]

    # (a) a plain torchvision loop on the same training images, decoded in memory once
    torch.manual_seed(0)
    model = detector.build_model(arch, len(CLASS_NAMES), image_size=run.params["image_size"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    data = []
    for image in project.images.filter(pk__in=train_ids).order_by("id"):
        scene = scenes[int(image.original_name.split(".")[0])]
        boxes = torch.tensor([[b.x, b.y, b.x + b.w, b.y + b.h] for b in scene.boxes], dtype=torch.float32)
        labels = torch.tensor([CLASS_NAMES.index(b.class_name) + 1 for b in scene.boxes])
        data.append((decode_to_tensor(image.file.read(), pin=False), boxes, labels))
    model.train()
    seconds, images = 0.0, 0
    for _epoch in range(args.epochs):
        order = np.random.default_rng(_epoch).permutation(len(data))
        last = None
        for first in range(0, len(order) - 1, args.batch):  # drop a lone last image, as our trainer merges it
            batch = [data[i] for i in order[first:first + args.batch]]
            inputs = [img.to(device).float() / 255 for img, _, _ in batch]
            targets = [{"boxes": boxes.to(device), "labels": labels.to(device)} for _, boxes, labels in batch]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = sum(model(inputs, targets).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            float(loss.detach())  # synchronise, as our trainer does to report the loss
            now = time.monotonic()
            if last is not None:
                seconds, images = seconds + now - last, images + len(batch)
            last = now
    raw_rate = images / seconds
    del model, optimizer, data

    # (b) our trainer through the TrainingRun, in this process as a worker would run it
    started = time.monotonic()
    training_run_execute(run_id=run.pk)
    total = time.monotonic() - started
    run = TrainingRun.objects.get(pk=run.pk)
    assert run.status == "succeeded", run.error
    trainer_rate = run.images_per_second
    print(f"raw loop:   {raw_rate:7.1f} training images/s")
    print(f"trainer:    {trainer_rate:7.1f} training images/s "
          f"({len(train_ids)} images x {args.epochs} epochs; whole run {total:.1f}s including "
          f"{len(run.eval_history) + 2} holdout evaluations on {len(run.snapshot.holdout_image_ids)} images)")
    print(f"holdout mAP per epoch: {[row['map'] for row in run.eval_history]}; promoted: {run.comparison['promoted']}")
    print(f"trainer_vs_raw: {trainer_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
