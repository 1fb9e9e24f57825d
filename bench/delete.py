"""Deleting a big project: predictions deleted in bulk first (review.signals.images_deleting) against
Django's own cascade, which loads every prediction to find the outcomes pointing at it.

    .venv/bin/python bench/delete.py [--images 20000] [--predictions 40]
    DATABASE_URL=postgres://.../bench_delete .venv/bin/python bench/delete.py

Fills three identical projects (image rows without files, N predictions each, a tenth of the images
with 10 human boxes), deletes one in one transaction (review.services.project_delete), one as the
app's worker does (review/project_deletion.py: a transaction per CHUNK images, then the project),
and the third with the bulk step switched off (the baseline), in one process. Prints the times (the
worker's with its slowest chunk: how long one transaction holds its rows) and a last line
`bulk_vs_cascade: X.XX` (the baseline's time over the one-transaction delete's: higher is better).
"""
from __future__ import annotations

import argparse
import itertools
import time

from _django import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--predictions", type=int, default=40, help="per image")
    args = parser.parse_args()
    setup()
    from django.contrib.auth import get_user_model

    from inference.services import predictions_of_images_delete
    from review import project_deletion
    from review.models import Project
    from review.services import project_delete
    from review.signals import images_deleting

    owner = get_user_model().objects.create(username="bench")
    worker_project = _fill(owner, "worker", args.images, args.predictions)
    projects = [_fill(owner, name, args.images, args.predictions) for name in ("app", "cascade")]

    chunks: list[float] = []
    real_images_delete = project_deletion.images_delete

    def timed_chunk(images):
        started = time.perf_counter()
        deleted = real_images_delete(images=images)  # its own transaction, commit included
        chunks.append(time.perf_counter() - started)
        return deleted
    project_deletion.images_delete = timed_chunk
    started = time.perf_counter()
    deletion = project_deletion.project_deletion_start(project=Project.objects.get(pk=worker_project))
    deletion = project_deletion.project_deletion_execute(run_id=deletion.pk)
    worker = time.perf_counter() - started
    assert deletion.status == "succeeded", deletion.error
    print(f"worker: {worker:.1f} s to delete {args.images} images in {len(chunks)} chunks of "
          f"{project_deletion.CHUNK}, the slowest {max(chunks):.2f} s", flush=True)

    timings = {}
    for project_id, name in zip(projects, ("app", "cascade")):
        if name == "cascade":
            images_deleting.disconnect(predictions_of_images_delete, dispatch_uid="inference.predictions_of_images_delete")
        started = time.perf_counter()
        project_delete(project=Project.objects.get(pk=project_id))  # its own transaction, commit included
        timings[name] = time.perf_counter() - started
        print(f"{name}: {timings[name]:.1f} s to delete {args.images} images, "
              f"{args.images * args.predictions} predictions", flush=True)
    print(f"bulk_vs_cascade: {timings['cascade'] / timings['app']:.2f}")


def _fill(owner, name: str, images: int, predictions: int) -> int:
    from inference.models import ModelVersion, Prediction
    from review.models import Annotation, Image
    from review.services import project_create

    project = project_create(name=name, owner=owner, class_names=["a", "b"], holdout_fraction=0.2)
    classes = list(project.label_classes.all())
    version = ModelVersion.objects.create(project=project, number=1, architecture="ssdlite320_mobilenet_v3_large",
                                          class_names=["a", "b"])
    Image.objects.bulk_create([
        Image(project=project, file=f"projects/{project.pk}/{i}.png", width=640, height=480,
              content_hash=f"{i:064d}", original_name=f"{i}.png") for i in range(images)], batch_size=2000)
    ids = list(Image.objects.filter(project=project).values_list("pk", flat=True))
    rows = (Prediction(image_id=image_id, model_version=version, label_class=classes[k % 2], x=k, y=k, w=10, h=10,
                       score=0.5) for image_id in ids for k in range(predictions))
    while batch := list(itertools.islice(rows, 50_000)):
        Prediction.objects.bulk_create(batch, batch_size=5000)
    Annotation.objects.bulk_create([Annotation(image_id=image_id, label_class=classes[0], x=1, y=1, w=5, h=5)
                                    for image_id in ids[: images // 10] for _ in range(10)], batch_size=5000)
    return project.pk


if __name__ == "__main__":
    main()
