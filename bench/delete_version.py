"""Deleting a model version: the worker's chunked delete (inference/version_deletion.py) against Django's
own cascade (`ModelVersion.delete()`, what the admin did before), which loads every prediction to find
the outcomes pointing at it.

    .venv/bin/python bench/delete_version.py [--images 20000] [--predictions 40]
    DATABASE_URL=postgres://.../bench_delete .venv/bin/python bench/delete_version.py

Fills one project (image rows without files) with two versions that are not active, N predictions
per image each, and outcomes judging the predictions of a tenth of the images (as after reviews),
then deletes one version each way in one process. Prints both times (the worker's with its slowest
chunk: how long one transaction holds its rows) and a last line `worker_vs_cascade: X.XX` (the
baseline's time over the worker's: higher is better).
"""
from __future__ import annotations

import argparse
import itertools
import time

from _django import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--predictions", type=int, default=40, help="per image, per version")
    args = parser.parse_args()
    setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from inference import version_deletion
    from inference.models import ModelVersion

    owner = get_user_model().objects.create(username=f"bench-{time.time_ns()}")
    worker_version, cascade_version = _fill(owner, args.images, args.predictions)
    total = args.images * args.predictions

    chunks: list[float] = []
    real_chunk = version_deletion._chunk_delete

    def timed_chunk(run):
        started = time.perf_counter()
        deleted = real_chunk(run)  # its own transaction, commit included
        chunks.append(time.perf_counter() - started)
        return deleted
    version_deletion._chunk_delete = timed_chunk
    started = time.perf_counter()
    deletion = version_deletion.model_version_deletion_start(version=ModelVersion.objects.get(pk=worker_version))
    deletion = version_deletion.model_version_deletion_execute(run_id=deletion.pk)
    worker = time.perf_counter() - started
    assert deletion.status == "succeeded" and deletion.progress_done == total, (deletion.status, deletion.error)
    print(f"worker: {worker:.1f} s to delete {total} predictions in {len(chunks) - 1} chunks of "
          f"{version_deletion.CHUNK}, the slowest {max(chunks):.2f} s", flush=True)

    started = time.perf_counter()
    with transaction.atomic():
        ModelVersion.objects.get(pk=cascade_version).delete()
    cascade = time.perf_counter() - started
    print(f"cascade: {cascade:.1f} s to delete {total} predictions in one transaction", flush=True)
    print(f"worker_vs_cascade: {cascade / worker:.2f}")


def _fill(owner, images: int, predictions: int) -> tuple[int, int]:
    from inference.models import BoxOutcome, ModelVersion, OutcomeKind, Prediction
    from review.models import Image
    from review.services import project_create

    project = project_create(name="versions", owner=owner, class_names=["a", "b"], holdout_fraction=0.2)
    classes = list(project.label_classes.all())
    Image.objects.bulk_create([
        Image(project=project, file=f"projects/{project.pk}/{i}.png", width=640, height=480,
              content_hash=f"{i:064d}", original_name=f"{i}.png") for i in range(images)], batch_size=2000)
    ids = list(Image.objects.filter(project=project).values_list("pk", flat=True))
    versions = []
    for number in (1, 2):
        version = ModelVersion.objects.create(project=project, number=number, class_names=["a", "b"],
                                              architecture="ssdlite320_mobilenet_v3_large")
        rows = (Prediction(image_id=image_id, model_version=version, label_class=classes[k % 2], x=k, y=k, w=10,
                           h=10, score=0.5) for image_id in ids for k in range(predictions))
        while batch := list(itertools.islice(rows, 50_000)):
            Prediction.objects.bulk_create(batch, batch_size=5000)
        judged = Prediction.objects.filter(model_version=version, image_id__in=ids[: images // 10]).values_list(
            "pk", "image_id", "label_class_id")
        BoxOutcome.objects.bulk_create([
            BoxOutcome(image_id=image_id, model_version=version, kind=OutcomeKind.FALSE_POSITIVE, prediction_id=pk,
                       label_class_id=label_class_id, x=1, y=1, w=5, h=5, score=0.5)
            for pk, image_id, label_class_id in judged.iterator()], batch_size=5000)
        versions.append(version.pk)
    return versions[0], versions[1]


if __name__ == "__main__":
    main()
