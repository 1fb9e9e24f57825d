"""What *Fine-tune* (and a save that fires the auto-retrain) waits for on a large project.

    .venv/bin/python bench/fine_tune_start.py [--images 100000]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_start .venv/bin/python bench/fine_tune_start.py

Fills a project with reviewed image rows, five human boxes each (20 classes; the files are never read),
then times `training_run_start`, which only counts the reviewed images, against `snapshot_freeze`, what
the training worker does when the run starts (and what the request did itself before session 28). Prints
the best of three of each and `start_vs_freeze`. The database named in DATABASE_URL must be a throw-away one.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import setup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()
    setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from review.models import Annotation, Image, LabelClass
    from review.services import project_create
    from training.models import TrainingRun
    from training.services import snapshot_freeze, training_run_start

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    project = project_create(name="Bench", owner=user, class_names=[f"class-{k}" for k in range(20)])
    rng = random.Random(0)
    Image.objects.bulk_create([
        Image(project=project, file=f"projects/{project.pk}/images/{n:064x}.png", original_name=f"frame-{n}.png",
              width=640, height=480, content_hash=f"{n:064x}", split="holdout" if n % 5 == 0 else "train",
              status="reviewed", priority=rng.random())
        for n in range(args.images)], batch_size=5000)
    classes = list(LabelClass.objects.filter(project=project).values_list("pk", flat=True))
    Annotation.objects.bulk_create([
        Annotation(image_id=pk, label_class_id=rng.choice(classes), x=rng.uniform(0, 500), y=rng.uniform(0, 380),
                   w=rng.uniform(8, 120), h=rng.uniform(8, 90))
        for pk in Image.objects.filter(project=project).values_list("pk", flat=True) for _ in range(5)],
        batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    starts, freezes = [], []
    for _ in range(3):
        started = time.perf_counter()
        run = training_run_start(project=project, user=user, params={"architecture": "ssdlite320_mobilenet_v3_large"})
        starts.append(time.perf_counter() - started)
        TrainingRun.objects.filter(pk=run.pk).update(status="cancelled")  # lets the next one start
        started = time.perf_counter()
        snapshot = snapshot_freeze(project=project, user=user)
        freezes.append(time.perf_counter() - started)
    print(f"{connection.vendor}, {args.images} reviewed images, {snapshot.annotation_count} boxes")
    print(f"training_run_start (the request): {min(starts) * 1000:.0f} ms")
    print(f"snapshot_freeze (the worker):     {min(freezes):.2f} s")
    print(f"start_vs_freeze: {min(starts) / min(freezes):.3f}")


if __name__ == "__main__":
    main()
