"""What a deployment gets from the ONNX file (inference/onnx_export.py) against torch, on this machine's CPU.

For each architecture: the export's time and size, then images/s one frame at a time (what a camera's
detector does) through torch (torchvision's model, inference mode, the app's Detector) and through
onnxruntime (the file, CPUExecutionProvider, as tools/onnx_predict.py runs it), on the same 640 x 480
frames, both with the same threads. The last line per architecture: `onnx_vs_torch: X.XX` (above 1:
the file is faster). Random weights: speed does not depend on what the weights learned.

    .venv/bin/python bench/onnx_vs_torch.py [--arch NAME ...] [--images 30] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from inference import detector, onnx_export  # noqa: E402


def images_per_second(predict, frames: list[np.ndarray]) -> float:
    predict(frames[0])  # warm up: first-call allocations and graph optimisation
    start = time.perf_counter()
    for frame in frames:
        predict(frame)
    return len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=["ssdlite320_mobilenet_v3_large",
                                                      "fasterrcnn_mobilenet_v3_large_fpn"])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(args.images)]
    print(f"{args.images} frames of 640x480, one at a time, {args.threads} threads, CPU")
    for architecture in args.arch:
        torch.manual_seed(0)
        model = detector.build_model(architecture, 3).eval()
        start = time.perf_counter()
        data = onnx_export.onnx_from_model(model, metadata={})
        exported = time.perf_counter() - start
        runner = detector.Detector(model, device=torch.device("cpu"))
        torch_rate = images_per_second(lambda f: runner.predict([torch.from_numpy(f).permute(2, 0, 1)]), frames)
        session = onnx_export.onnx_session(data, threads=args.threads)
        onnx_rate = images_per_second(lambda f: session.run(None, {"image": f}), frames)
        print(f"{architecture}: export {exported:.1f} s, {len(data) / 1e6:.1f} MB; torch {torch_rate:.2f} images/s, "
              f"onnxruntime {onnx_rate:.2f} images/s")
        print(f"onnx_vs_torch: {onnx_rate / torch_rate:.2f}")


if __name__ == "__main__":
    main()
