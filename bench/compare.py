"""Comparing two model versions (*Compare*, `GET .../model-versions/compare/`) on a large holdout, against
pycocotools as shipped evaluating both versions on the same images: the least any comparison costs.

    .venv/bin/python bench/compare.py [--images 5000] [--tags 10] [--boxes 5] [--predictions 20]
    DATABASE_URL=postgres://.../bench_compare .venv/bin/python bench/compare.py

Fills one project (image rows without files) with N reviewed held-out images of three classes, each
with human boxes, one tag of T, and two versions' predictions (the truth jittered, misplaced and with
extra boxes, at random scores). Then, in one process, times training.selectors.model_versions_compare
(the database reads, both evaluations, per-image errors, each tag's mAP and how sure its change is)
and COCOeval with its default parameters and summary on each version's detections, built from the same
rows. Prints both times and a last line `compare_vs_shipped_evaluation: X.XX` (lower is better: below 1,
the whole comparison costs less than pycocotools' own evaluation of the two versions).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np

from _django import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--boxes", type=int, default=5, help="human boxes per image")
    parser.add_argument("--predictions", type=int, default=20, help="per image, per version")
    args = parser.parse_args()
    setup()
    from django.contrib.auth import get_user_model

    from training.selectors import model_versions_compare

    owner = get_user_model().objects.create(username=f"bench-{time.time_ns()}")
    first, second, rows = _fill(owner, args)

    started = time.perf_counter()
    result = model_versions_compare(first=first, second=second, score_threshold=0.5)
    compare = time.perf_counter() - started
    judged = sum(row["change_bound"] is not None for row in result["tags"])
    print(f"compare: {compare:.2f} s for {result['images']} held-out images, {len(result['tags'])} tags "
          f"({judged} with an interval); mAP {result['versions'][0]['map']:.4f} -> {result['versions'][1]['map']:.4f}",
          flush=True)

    started = time.perf_counter()
    shipped = [_shipped_map(rows["truths"], rows[version]) for version in ("first", "second")]
    baseline = time.perf_counter() - started
    print(f"pycocotools as shipped, both versions: {baseline:.2f} s; mAP {shipped[0]:.4f} -> {shipped[1]:.4f}",
          flush=True)
    assert abs(shipped[0] - result["versions"][0]["map"]) < 1e-6, "the comparison's mAP is not pycocotools' own"
    print(f"compare_vs_shipped_evaluation: {compare / baseline:.2f}")


def _fill(owner, args) -> tuple:
    """The project's rows, and the same boxes as COCO dicts for the baseline."""
    from django.db import transaction

    from inference.models import ModelVersion, Prediction
    from review.models import Annotation, Image, ReviewStatus, Split
    from review.services import project_create
    from review.tags import image_tags_add

    rng = np.random.default_rng(0)
    project = project_create(name="compare", owner=owner, class_names=["a", "b", "c"], holdout_fraction=0.2)
    classes = list(project.label_classes.order_by("index"))
    with transaction.atomic():
        Image.objects.bulk_create([
            Image(project=project, file=f"projects/{project.pk}/{i}.png", width=640, height=480, split=Split.HOLDOUT,
                  status=ReviewStatus.REVIEWED, content_hash=f"{i:064d}", original_name=f"{i}.png")
            for i in range(args.images)], batch_size=2000)
        ids = list(Image.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
        versions = [ModelVersion.objects.create(project=project, number=n, class_names=["a", "b", "c"],
                                                architecture="ssdlite320_mobilenet_v3_large") for n in (1, 2)]
        rows = {"truths": [], "first": [], "second": []}
        annotations, predictions = [], []
        for image_id in ids:
            xy = rng.uniform(0, 540, (args.boxes, 2))
            wh = rng.uniform(20, 100, (args.boxes, 2))
            labels = rng.integers(0, 3, args.boxes)
            for (x, y), (w, h), label in zip(xy.tolist(), wh.tolist(), labels.tolist()):
                annotations.append(Annotation(image_id=image_id, label_class=classes[label], x=x, y=y, w=w, h=h))
                rows["truths"].append((image_id, label, [x, y, w, h]))
            for version, name, jitter in ((versions[0], "first", 10.0), (versions[1], "second", 6.0)):
                picked = rng.integers(0, args.boxes, args.predictions)
                boxes = np.hstack([xy[picked], wh[picked]]) + rng.normal(0, jitter, (args.predictions, 4))
                boxes[:, 2:] = np.maximum(boxes[:, 2:], 2.0)
                found = np.where(rng.random(args.predictions) < 0.9, labels[picked], rng.integers(0, 3, args.predictions))
                for box, label, score in zip(boxes.tolist(), found.tolist(), rng.uniform(0.05, 1, args.predictions)):
                    predictions.append(Prediction(image_id=image_id, model_version=version, label_class=classes[label],
                                                  x=box[0], y=box[1], w=box[2], h=box[3], score=float(score)))
                    rows[name].append((image_id, label, box, float(score)))
        Annotation.objects.bulk_create(annotations, batch_size=5000)
        Prediction.objects.bulk_create(predictions, batch_size=5000)
        for n in range(args.tags):
            image_tags_add(project=project, images=Image.objects.filter(pk__in=ids[n::args.tags]), names=[f"camera {n}"])
    return versions[0], versions[1], rows


def _shipped_map(truths: list, detections: list) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": image_id} for image_id in sorted({row[0] for row in truths})],
                      "categories": [{"id": n + 1} for n in range(3)],
                      "annotations": [{"id": n + 1, "image_id": image_id, "category_id": label + 1, "bbox": box,
                                       "area": box[2] * box[3], "iscrowd": 0}
                                      for n, (image_id, label, box) in enumerate(truths)]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes([{"image_id": image_id, "category_id": label + 1, "bbox": box,
                                              "score": score} for image_id, label, box, score in detections]), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


if __name__ == "__main__":
    main()
