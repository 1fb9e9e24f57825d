"""A class added between fine-tunes: what the model keeps of the classes it knew, with the class heads
carried over class by class (detector.state_for_classes) against the old load of same-shape tensors
only, which starts every class head afresh.

    .venv/bin/python bench/new_class.py [--base-epochs 24] [--epochs 2]

Trains a base SSDlite from scratch on generated daylight scenes (circles, squares, triangles; the
demo's base model: 224-pixel input, learning rate 0.002), adds a fourth class that no image holds
yet (a reviewer's first "star" is still to come), fine-tunes from the base both ways with the same
seed, and scores them on the same held-out scenes, before a step and after the fine-tune. Prints each
holdout mAP and a last line `kept_vs_fresh_heads: X.XX` (after the fine-tune, with the heads carried
over against without).
In one process, on the CPU or GPU the machine has; no database.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _django import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=120)
    parser.add_argument("--holdout", type=int, default=40)
    parser.add_argument("--base-epochs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=2, help="of the fine-tune after the class is added")
    args = parser.parse_args()
    setup()
    from inference import detector
    from inference.matching import ImagePredictions, ImageTruth
    from inference.pipeline import predict_stream
    from review.demo_images import CLASS_NAMES, generate_scene
    from training.config import default_config
    from training.evaluation import coco_evaluate
    from training.trainer import TrainSample, train

    architecture = "ssdlite320_mobilenet_v3_large"
    names = list(CLASS_NAMES)
    index = {name: n + 1 for n, name in enumerate(names)}

    def scene(seed: int):
        generated = generate_scene(seed)
        boxes = np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in generated.boxes], np.float32).reshape(-1, 4)
        labels = np.array([index[b.class_name] for b in generated.boxes], np.int64)
        return generated.png_bytes(), boxes, labels, generated.image.size

    samples = [TrainSample(lambda data=data: data, boxes, labels)
               for data, boxes, labels, _ in map(scene, range(args.train))]
    holdout = [scene(seed) for seed in range(50_000, 50_000 + args.holdout)]
    truths = [ImageTruth(n, size[0], size[1], boxes, labels) for n, (_, boxes, labels, size) in enumerate(holdout)]

    def holdout_map(model, class_names) -> float:
        found = detector.Detector(model, score_threshold=0.05)
        items = [(n, lambda data=data: data) for n, (data, *_rest) in enumerate(holdout)]
        predictions = [ImagePredictions(r.key, r.detections.boxes_xyxy, r.detections.labels, r.detections.scores)
                       for batch in predict_stream(items, found, batch_size=8) for r in batch]
        return coco_evaluate(truths, predictions, class_names).map

    config = default_config(architecture, epochs=args.base_epochs, learning_rate=0.002, image_size=224)
    started = time.perf_counter()
    base = train(architecture=architecture, class_names=names, samples=samples, config=config)
    print(f"base: {args.base_epochs} epochs from scratch in {time.perf_counter() - started:.0f} s, "
          f"holdout mAP {holdout_map(base, names):.3f}")
    state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    grown = names + ["star"]
    tune = default_config(architecture, epochs=args.epochs, learning_rate=0.002, image_size=224)
    results = {}
    for how, known in [("heads carried over class by class", names), ("same-shape tensors only (before)", None)]:
        # Where the fine-tune starts: the loaded model itself, before a step.
        start = detector.build_model(architecture, len(grown), image_size=224)
        own = start.state_dict()
        start.load_state_dict(detector.state_for_classes(state, known, own=own, class_names=grown, architecture=architecture)
                              if known else {k: v for k, v in state.items() if own[k].shape == v.shape}, strict=False)
        print(f"after adding 'star', {how}: holdout mAP {holdout_map(start.eval(), grown):.3f} before a step", end="")
        model = train(architecture=architecture, class_names=grown, samples=samples, config=tune,
                      initial_state=state, initial_class_names=known)
        results[how] = holdout_map(model, grown)
        print(f", {results[how]:.3f} after {args.epochs} epochs")
    kept, fresh = results.values()
    print(f"kept_vs_fresh_heads: {kept / max(fresh, 1e-9):.2f}")


if __name__ == "__main__":
    main()
