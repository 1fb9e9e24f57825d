"""Inference pipeline vs the raw model, in one process.

(a) raw: the same detector, batch size and device on decoded uint8 tensors already in memory,
    one pass over them after every chunk of (b), so that clock drift hits both alike;
(b) pipeline: an InferenceRun executed chunk by chunk (database read, storage read, decode in
    background threads or on the GPU, model, bulk database write, uncertainty update).
Prints both rates, memory at the start and end of the pipeline, and a last line
`pipeline_vs_raw: X.XX` (goal: >= 0.80 on a 2-core CPU, >= 0.90 on a GPU).

    python bench/inference.py                       # CPU defaults (ssdlite, batch 4, 200 images)
    python bench/inference.py --arch fasterrcnn_mobilenet_v3_large_fpn --batch 16 --images 512 --rows 10000

--rows larger than --images adds image rows that reuse the generated files (with distinct hashes),
so a 10k-image run for the memory check does not first spend minutes generating PNGs.
--history N gives every image the stored predictions of N earlier versions (100 boxes each, most
scored low, as a trained model's are), as a project has after N rounds of the learning loop: the
writer reads the newest of them to score how much the versions disagree.
--reviewed N adds N reviewed images (about 10 human boxes each, outside the run), as a project
has after some rounds of review: the run scores each image's box count against theirs.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time

from _django import rss_mib, setup


def encode(image, image_format: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format.upper(), **({"quality": 90} if image_format == "jpeg" else {}))
    return out.getvalue()


def raw_pass(loaded, batches) -> float:
    """Seconds the loaded detector alone takes for one pass over the batches."""
    started = time.perf_counter()
    for chunk in batches:
        loaded.predict(chunk)  # returns numpy arrays: synchronised with the device
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default=None, help="default: the device's default architecture")
    parser.add_argument("--batch", type=int, default=None, help="default: 16 on CUDA, 4 on CPU")
    parser.add_argument("--images", type=int, default=200, help="distinct generated images")
    parser.add_argument("--rows", type=int, default=0, help="total image rows for the pipeline (>= --images)")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--format", choices=["jpeg", "png"], default="jpeg",
                        help="how the generated images are uploaded (camera frames are usually JPEG)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for this process (seconds; Python's default is 0.005)")
    parser.add_argument("--decode", choices=["gpu", "cpu"], default="gpu",
                        help="on a GPU, decode plain JPEGs with nvjpeg (the worker's default) or all with Pillow")
    parser.add_argument("--history", type=int, default=0,
                        help="earlier versions whose predictions every image already has (the learning loop's rounds)")
    parser.add_argument("--reviewed", type=int, default=0,
                        help="reviewed images with ~10 human boxes each, besides the run's images")
    parser.add_argument("--stages", action="store_true",
                        help="also time reading + decoding + model without the database (where the time goes)")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    os.environ["INFERENCE_GPU_DECODE"] = "1" if args.decode == "gpu" else "0"
    setup()

    import torch
    from django.conf import settings
    from django.core.files.storage import default_storage

    from inference import detector
    from inference.execution import detector_for, inference_chunk_execute, worker_thread_pools
    from project.storage import storage_reader
    from inference.pipeline import decode_to_tensor, predict_stream
    from inference.services import inference_run_create, model_version_create
    from review.demo_images import CLASS_NAMES, generate_scene
    from review.models import Image
    from review.services import image_create, project_create
    from django.contrib.auth import get_user_model

    width, height = map(int, args.size.split("x"))
    arch = args.arch or detector.default_architecture()
    cuda = torch.cuda.is_available()
    batch = args.batch or (16 if cuda else 4)
    device_name = torch.cuda.get_device_name(0) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {device_name}  architecture: {arch}  batch: {batch}  "
          f"images: {args.images} {args.format} at {width}x{height}  decode: {args.decode if cuda else 'cpu'}")

    owner = get_user_model().objects.create(username="bench")
    project = project_create(name="bench", owner=owner, class_names=CLASS_NAMES, holdout_fraction=0.0)
    started = time.perf_counter()
    images = [image_create(project=project, data=encode(generate_scene(seed, width=width, height=height).image, args.format),
                           filename=f"{seed}.{args.format}") for seed in range(args.images)]
    extra = max(0, args.rows - args.images)
    if extra:
        Image.objects.bulk_create([
            Image(project=project, file=images[i % len(images)].file.name, original_name=f"copy-{i}.png",
                  width=width, height=height, content_hash=f"{i:064x}", split="train")
            for i in range(extra)
        ], batch_size=2000)
    print(f"generated and stored in {time.perf_counter() - started:.1f}s; pipeline rows: {args.images + extra}")

    torch.manual_seed(0)
    model = detector.build_model(arch, len(CLASS_NAMES))
    weights = detector.weights_to_bytes(model, architecture=arch, class_names=CLASS_NAMES)
    if args.history:
        _add_history(project, owner, arch, weights, args.history)
    if args.reviewed:
        _add_reviewed(project, images[0].file.name, width, height, args.reviewed)
    version = model_version_create(project=project, architecture=arch, class_names=CLASS_NAMES, user=owner,
                                   activate=True, weights=weights)
    loaded = detector_for(version)  # the same loaded detector serves both measurements

    # (a) raw model on tensors already in memory. It is timed for one pass over these images after
    # every chunk of the pipeline, so both see the same clocks: on a shared GPU machine the model's
    # own rate drifted by up to 40% within one process.
    tensors = []
    for image in images:
        with default_storage.open(image.file.name, "rb") as handle:
            tensors.append(decode_to_tensor(handle.read(), pin=cuda))
    batches = [tensors[i:i + batch] for i in range(0, len(tensors), batch)]
    raw_pass(loaded, batches)  # warm-up: kernels chosen, memory pools filled
    raw_seconds = 0.0
    raw_images = 0

    stream_seconds = 0.0
    if args.stages:  # reading and decoding in the worker's threads, the model, no database
        decode_pool, gpu_decoder, _ = worker_thread_pools()
        items = [(image.pk, storage_reader(image.file.name)) for image in images]
        for passes in (items[:batch * 2], items):  # the first pass starts the threads and nvjpeg
            started = time.perf_counter()
            for _ in predict_stream(passes, loaded, batch_size=batch, decode_pool=decode_pool,
                                    gpu_decoder=gpu_decoder, gpu_decode=settings.INFERENCE_GPU_DECODE):
                pass
        stream_seconds = time.perf_counter() - started
        seconds = raw_pass(loaded, batches)
        raw_seconds, raw_images = raw_seconds + seconds, raw_images + len(tensors)

    # (b) the full pipeline through an InferenceRun, chunk by chunk as a worker would run it
    # The chunk tasks also go to the benchmark's throw-away broker, where no worker takes them.
    run = inference_run_create(project=project, user=owner, scope="unreviewed", chunk_size=args.chunk)
    from inference import execution

    writes = _record_calls(execution, "_write_batch")
    model_calls = _record_calls(loaded, "predict")
    rss_start, _ = rss_mib()
    rss_trace = []
    pipeline_seconds = 0.0
    idle = {"before": 0.0, "between": 0.0, "after": 0.0}
    for chunk in run.chunks.order_by("number"):
        model_calls.clear()
        started = time.perf_counter()
        inference_chunk_execute(chunk_id=chunk.pk, batch_size=batch)
        finished = time.perf_counter()
        pipeline_seconds += finished - started
        idle["before"] += model_calls[0][0] - started
        idle["between"] += sum(call[0] - before[1] for before, call in zip(model_calls, model_calls[1:]))
        idle["after"] += finished - model_calls[-1][1]
        rss_trace.append(rss_mib()[0])
        seconds = raw_pass(loaded, batches)
        raw_seconds, raw_images = raw_seconds + seconds, raw_images + len(tensors)
    pipeline_rate = run.progress_total / pipeline_seconds
    raw = raw_images / raw_seconds
    rss_end, rss_peak = rss_mib()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    print(f"raw model:  {raw:8.1f} images/s  ({raw_images} images, one pass after every chunk)")
    if stream_seconds:
        stream_rate = len(images) / stream_seconds
        print(f"read+decode+model, no database: {stream_rate:8.1f} images/s ({stream_rate / raw:.2f} of raw)")
    print(f"pipeline:   {pipeline_rate:8.1f} images/s  ({run.progress_total} images, "
          f"{run.predictions_written} predictions written)")
    print(f"worker RSS: start {rss_start:.0f} MiB, end {rss_end:.0f} MiB, peak {rss_peak:.0f} MiB; "
          f"after each chunk: {', '.join(f'{r:.0f}' for r in rss_trace[:12])}{' ...' if len(rss_trace) > 12 else ''}")
    print(f"model idle per chunk: {idle['before'] * 1000 / len(rss_trace):.0f} ms before its first batch "
          f"(setup, first reads and decoding), {idle['between'] * 1000 / len(rss_trace):.0f} ms between batches, "
          f"{idle['after'] * 1000 / len(rss_trace):.0f} ms after its last (last writes, chunk bookkeeping); "
          f"{sum(idle.values()) / pipeline_seconds:.0%} of the pipeline's time")
    print(f"prediction writer: {sum(cpu for *_, cpu in writes) * 1000 / max(len(writes), 1):.1f} ms of CPU per batch "
          f"(its thread, which shares the GIL with the model's), {len(writes)} batches")
    if cuda:
        print(f"GPU peak memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"pipeline_vs_raw: {pipeline_rate / raw:.2f}")


def _record_calls(owner, name: str) -> list[tuple[float, float, float]]:
    """Wrap `owner.name` to record (start, end, CPU seconds of the calling thread) for every call.

    On the worker's detector the gaps between calls are the model's idle time; on the prediction
    writer the CPU is what its thread spends in each batch, sharing the GIL with the model's.
    """
    calls: list[tuple[float, float, float]] = []
    original = getattr(owner, name)

    def recorded(*args, **kwargs):
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            calls.append((started, time.perf_counter(), time.thread_time() - cpu))
    setattr(owner, name, recorded)
    return calls


def _add_history(project, owner, arch: str, weights: bytes, versions: int) -> None:
    """`versions` earlier model versions, each with 100 stored boxes per image (scores ~ Beta(1, 4): most low)."""
    import numpy as np

    from inference.models import Prediction
    from inference.services import model_version_create
    from project.bulk_insert import rows_insert
    from review.models import Image, LabelClass

    rng = np.random.default_rng(0)
    class_ids = np.array(LabelClass.objects.filter(project=project).values_list("pk", flat=True), dtype=np.int64)
    image_ids = np.array(Image.objects.filter(project=project).values_list("pk", flat=True), dtype=np.int64)
    boxes = len(image_ids) * 100
    started = time.perf_counter()
    for _ in range(versions):
        earlier = model_version_create(project=project, architecture=arch, weights=weights, class_names=None, user=owner)
        rows_insert(Prediction, {
            "image": np.repeat(image_ids, 100), "model_version": np.full(boxes, earlier.pk, dtype=np.int64),
            "label_class": rng.choice(class_ids, boxes), "x": rng.uniform(0, 200, boxes),
            "y": rng.uniform(0, 200, boxes), "w": np.full(boxes, 20.0), "h": np.full(boxes, 20.0),
            "score": rng.beta(1, 4, boxes).clip(0.05, 1),
        })
    print(f"history: {versions} earlier versions x 100 boxes on {len(image_ids)} images "
          f"in {time.perf_counter() - started:.1f}s")


def _add_reviewed(project, file_name: str, width: int, height: int, count: int) -> None:
    """`count` reviewed images sharing one stored file, with Poisson(10) human boxes each."""
    import numpy as np

    from review.models import Annotation, Image, LabelClass, ReviewStatus

    started = time.perf_counter()
    reviewed = Image.objects.bulk_create([
        Image(project=project, file=file_name, original_name=f"reviewed-{i}.png", width=width, height=height,
              content_hash=f"r{i:063d}", split="train", status=ReviewStatus.REVIEWED)
        for i in range(count)
    ], batch_size=2000)
    rng = np.random.default_rng(1)
    class_ids = list(LabelClass.objects.filter(project=project).values_list("pk", flat=True))
    Annotation.objects.bulk_create([
        Annotation(image_id=image.pk, label_class_id=class_ids[i % len(class_ids)], x=1, y=1, w=20, h=20)
        for image, boxes in zip(reviewed, rng.poisson(10, count)) for i in range(boxes)
    ], batch_size=5000)
    print(f"reviewed: {count} images, {Annotation.objects.filter(image__project=project).count()} human boxes "
          f"in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
