"""A fine-tune from a model that is already good: how much its first epochs cost it, by learning rate.

    .venv/bin/python bench/fine_tune_lr.py [--epochs 10] [--variants 1e-3:50,3e-4:50,...]

Trains the demo's base model (SSDlite from scratch on generated daylight scenes, 224-pixel input,
learning rate 0.002), then plays the learning loop's first round without the app: a reviewer
corrected 50 images a camera sent, most of them at night (43 night, 7 daylight, as the app's order
picked in bench/loop.py), and the fine-tune learns from every reviewed image (the base's 120 too).
Each variant (learning rate : warmup steps) fine-tunes from the same base weights with the same
seed; the daylight and night holdout mAP are scored after every epoch. Prints a table and a last
line `daylight_dip: X.XX` (the worst daylight mAP of the app's default over the base's; 1.00 is no
loss at any epoch).
In one process, on the CPU or GPU the machine has; no database.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _django import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=120, help="daylight images the base learns from")
    parser.add_argument("--night", type=int, default=43, help="night images in the reviewed round")
    parser.add_argument("--day", type=int, default=7, help="new daylight images in the reviewed round")
    parser.add_argument("--holdout", type=int, default=40, help="held-out images per domain")
    parser.add_argument("--base-epochs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10, help="of each fine-tune (the app's default)")
    parser.add_argument("--variants", default="",
                        help="comma-separated learning_rate:warmup_steps; empty: the app's default and a few lower")
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

    def scene(seed: int, domain: str):
        generated = generate_scene(seed, domain=domain)
        boxes = np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in generated.boxes], np.float32).reshape(-1, 4)
        labels = np.array([index[b.class_name] for b in generated.boxes], np.int64)
        return generated.png_bytes(), boxes, labels, generated.image.size

    def samples_of(scenes) -> list[TrainSample]:
        return [TrainSample(lambda data=data: data, boxes, labels) for data, boxes, labels, _ in scenes]

    # The seeds bench/loop.py uses for each set, so the scenes are the loop's.
    base_samples = samples_of(scene(seed, "source") for seed in range(args.train))
    reviewed = base_samples + samples_of(
        [scene(10_000 + n, "night") for n in range(args.night)] + [scene(20_000 + n, "source") for n in range(args.day)])
    holdouts = {"daylight": [scene(40_000 + n, "source") for n in range(args.holdout)],
                "night": [scene(30_000 + n, "night") for n in range(args.holdout)]}

    def holdout_map(model, domain: str) -> float:
        holdout = holdouts[domain]
        truths = [ImageTruth(n, size[0], size[1], boxes, labels) for n, (_, boxes, labels, size) in enumerate(holdout)]
        found = detector.Detector(model, score_threshold=0.05)
        items = [(n, lambda data=data: data) for n, (data, *_rest) in enumerate(holdout)]
        predictions = [ImagePredictions(r.key, r.detections.boxes_xyxy, r.detections.labels, r.detections.scores)
                       for batch in predict_stream(items, found, batch_size=8) for r in batch]
        return coco_evaluate(truths, predictions, names).map

    default = default_config(architecture)
    variants = ([tuple(float(x) for x in v.split(":")) for v in args.variants.split(",")] if args.variants else
                [(default.learning_rate, default.warmup_steps), (default.learning_rate / 3, default.warmup_steps),
                 (default.learning_rate / 10, default.warmup_steps)])
    started = time.perf_counter()
    base = train(architecture=architecture, class_names=names, samples=base_samples,
                 config=default_config(architecture, epochs=args.base_epochs, learning_rate=0.002, image_size=224))
    base_scores = {domain: holdout_map(base, domain) for domain in holdouts}
    print(f"base: {args.base_epochs} epochs from scratch in {time.perf_counter() - started:.0f} s; "
          f"daylight mAP {base_scores['daylight']:.3f}, night mAP {base_scores['night']:.3f}", flush=True)
    state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    rows = {}
    for learning_rate, warmup in variants:
        scores: list[dict[str, float]] = []

        def on_epoch(epoch, model, checkpoint, scores=scores):
            scores.append({domain: holdout_map(model, domain) for domain in holdouts})
            print(f"  lr {learning_rate:g} warmup {warmup:g}, epoch {epoch}: daylight {scores[-1]['daylight']:.3f}, "
                  f"night {scores[-1]['night']:.3f}", flush=True)

        started = time.perf_counter()
        train(architecture=architecture, class_names=names, samples=reviewed, initial_state=state,
              initial_class_names=names, on_epoch=on_epoch,
              config=default_config(architecture, epochs=args.epochs, learning_rate=learning_rate,
                                    warmup_steps=int(warmup), image_size=224))
        rows[(learning_rate, warmup)] = scores
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    print(f"\n{len(reviewed)} reviewed images ({args.night} night), {args.epochs} epochs; holdout mAP daylight / night "
          f"(base {base_scores['daylight']:.3f} / {base_scores['night']:.3f})")
    print("learning rate  warmup  " + "  ".join(f"epoch {e + 1:<2d}     " for e in range(args.epochs)))
    for (learning_rate, warmup), scores in rows.items():
        print(f"{learning_rate:13g}  {warmup:6g}  " + "  ".join(f"{s['daylight']:.3f} / {s['night']:.3f}" for s in scores))
    first = rows[variants[0]]
    print(f"daylight_dip: {min(s['daylight'] for s in first) / max(base_scores['daylight'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
