"""Run a model version exported as ONNX (the models page's *Export ONNX*) on images: what a deployment does
with the file, without torch or this app. Needs numpy, Pillow and onnxruntime only:

    pip install numpy pillow onnxruntime
    python tools/onnx_predict.py project-1-v3-fasterrcnn_mobilenet_v3_large_fpn.onnx frame1.jpg frame2.jpg

Prints one JSON line per image: its boxes (x1, y1, x2, y2 in the image's pixels), class names and scores,
keeping the boxes scored at or above the threshold the file carries (the version's best F1 on the holdout)
unless `--threshold` says another. The file holds the class names, the resizing and the normalisation,
so any image size goes in as it is.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import onnxruntime
from PIL import Image, ImageOps

DEFAULT_THRESHOLD = 0.5  # for a version the app never measured (uploaded weights): no threshold in the file


def load(path: str) -> tuple[onnxruntime.InferenceSession, list[str], float | None]:
    session = onnxruntime.InferenceSession(path, providers=onnxruntime.get_available_providers())
    metadata = session.get_modelmeta().custom_metadata_map
    threshold = metadata.get("score_threshold") or None
    return session, json.loads(metadata.get("class_names", "[]")), float(threshold) if threshold else None


def predict(session: onnxruntime.InferenceSession, class_names: list[str], image: Image.Image,
            threshold: float) -> list[dict]:
    """Boxes of one image scored at or above `threshold`, best first."""
    pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))  # upright, as the app shows it
    boxes, labels, scores = session.run(["boxes", "labels", "scores"], {"image": pixels})
    return [{"box": [round(float(v), 2) for v in box], "class": class_names[int(label) - 1], "score": float(score)}
            for box, label, score in zip(boxes, labels, scores) if score >= threshold]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .onnx file")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--threshold", type=float, help="keep boxes scored at or above this (default: the file's)")
    args = parser.parse_args(argv)
    session, class_names, threshold = load(args.model)
    threshold = args.threshold if args.threshold is not None else (threshold or DEFAULT_THRESHOLD)
    for path in args.images:
        with Image.open(path) as image:
            print(json.dumps({"image": path, "threshold": threshold,
                              "boxes": predict(session, class_names, image, threshold)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
