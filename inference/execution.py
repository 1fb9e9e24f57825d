"""The worker side of inference: run one chunk of an InferenceRun and write its predictions.

A chunk is idempotent: its predictions for (model version, image) replace any earlier ones, batch
by batch in one transaction each, so a redelivered chunk never duplicates rows and a cancelled one
leaves every image either fully predicted or untouched.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, connections, reset_queries, transaction
from django.db.models import F
from django.utils import timezone

from inference import detector
from inference.models import BoxOutcome, InferenceChunk, InferenceRun, ModelVersion, Prediction
from inference.matching import ImagePredictions
from inference.outcomes import box_outcomes_refresh, previous_predictions, reviewed_box_counts
from inference.pipeline import ImageResult, predict_stream
from inference.ranking import image_ranking
from project.bulk_insert import rows_insert, rows_update
from project.jobs import ACTIVE_STATUSES, JobProgress, JobStatus, job_finish, message_hold
from project.row_locks import key_share_lock, update_lock
from project.storage import storage_reader
from review.models import REVIEWED_STATUSES, Image, LabelClass, Project

logger = logging.getLogger(__name__)

# Loaded detectors kept per worker process, so consecutive chunks skip loading the weights again.
_DETECTORS: OrderedDict[tuple[int, str], detector.Detector] = OrderedDict()
_DETECTOR_CACHE_SIZE = 2
WRITES_IN_FLIGHT = 2
_DECODE_POOL: ThreadPoolExecutor | None = None
_GPU_DECODER: ThreadPoolExecutor | None = None
_WRITER: ThreadPoolExecutor | None = None
_REVIEWED_COUNTS: tuple[int | None, dict[int, int]] = (None, {})  # (run id, its reviewed box counts)
IMAGE_SCORE_COLUMNS = ("inference_error", "uncertainty", "disagreement", "count_anomaly", "priority", "ranked_by")


def worker_thread_pools() -> tuple[ThreadPoolExecutor, ThreadPoolExecutor, ThreadPoolExecutor]:
    """Read/decode, GPU-decode and writer threads made once per worker process, reused by every chunk.

    New threads per chunk would each take a fresh malloc arena, and memory would grow run after run.
    """
    global _DECODE_POOL, _GPU_DECODER, _WRITER
    if _DECODE_POOL is None:
        _DECODE_POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2), thread_name_prefix="decode")
        _GPU_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpu-decode")
        _WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prediction-writer")
    return _DECODE_POOL, _GPU_DECODER, _WRITER


def detector_for(version: ModelVersion) -> detector.Detector:
    key = (version.pk, version.weights.name)
    if key not in _DETECTORS:
        if not version.weights or not default_storage.exists(version.weights.name):
            raise detector.WeightsError(f"The weights file of {version} is missing from storage.")
        with default_storage.open(version.weights.name, "rb") as handle:
            data = handle.read()
        _DETECTORS[key] = _on_cpu_runtime(detector.Detector.from_bytes(
            data, architecture=version.architecture, num_classes=len(version.class_names)), version)
        while len(_DETECTORS) > _DETECTOR_CACHE_SIZE:
            _DETECTORS.popitem(last=False)
    _DETECTORS.move_to_end(key)
    return _DETECTORS[key]


def _on_cpu_runtime(loaded: detector.Detector, version: ModelVersion):
    """On a CPU, the model as INFERENCE_CPU_RUNTIME says: its ONNX file in onnxruntime by default. An export
    that fails (an operator the exporter cannot write) leaves the version on torch, said in the log."""
    if loaded.device.type != "cpu" or settings.INFERENCE_CPU_RUNTIME != "onnxruntime":
        return loaded
    from inference.onnx_export import OnnxDetector

    try:
        return OnnxDetector.from_detector(loaded, threads=torch.get_num_threads())
    except Exception:
        logger.warning("%s could not run in onnxruntime; it runs in torch", version, exc_info=True)
        return loaded


def inference_chunk_execute(*, chunk_id: int, batch_size: int | None = None) -> None:
    """Predict every image of one chunk, write predictions batch by batch, report progress."""
    chunk = _chunk_attempt_start(chunk_id)
    if chunk is None:
        return
    run = chunk.run
    version = run.model_version
    try:
        model = detector_for(version)
    except (detector.WeightsError, ValueError, OSError) as exc:
        job_finish(run, status=JobStatus.FAILED, error=f"Could not load the model {version}: {exc}")
        InferenceChunk.objects.filter(pk=chunk.pk).update(finished=True)
        return
    where = str(model.device) + (", onnxruntime" if getattr(model, "session", None) is not None else "")
    InferenceRun.objects.filter(pk=run.pk, device="").update(device=where)
    try:  # no job_heartbeat needed: a chunk reports its progress after every batch, so it is never quiet long
        written, failed, cancelled = _chunk_predict(chunk, model, batch_size)
    except Exception as exc:  # the run must say what went wrong now, not stay "running" until the sweeper
        logger.exception("inference run %s, chunk %s failed", run.pk, chunk.number)
        job_finish(run, status=JobStatus.FAILED, error=f"Chunk {chunk.number} failed: {exc}")
        InferenceChunk.objects.filter(pk=chunk.pk).update(finished=True)
        return
    _chunk_finish(chunk, written=written, failed=failed, cancelled=cancelled)


def _chunk_predict(chunk: InferenceChunk, model: detector.Detector, batch_size: int | None) -> tuple[int, int, bool]:
    """Stream the chunk's images through the model; returns (predictions written, unreadable images, cancelled)."""
    run = chunk.run
    version = run.model_version
    class_ids = dict(LabelClass.objects.filter(project_id=run.project_id).values_list("name", "id"))
    # model class id (1..N) -> label class id of this project
    label_map = {i + 1: class_ids.get(name) for i, name in enumerate(version.class_names)}
    files = dict(Image.objects.filter(pk__in=chunk.image_ids).values_list("pk", "file"))
    items = [(image_id, storage_reader(files[image_id])) for image_id in chunk.image_ids if image_id in files]

    progress = JobProgress(run)
    written: list[tuple[int, int]] = []  # (predictions, unreadable images) per written batch
    cancelled = False
    decode_pool, gpu_decoder, writer = worker_thread_pools()
    # The writer's first job, so the model does not wait for it; the batches' writes run after it.
    reviewed_counts = writer.submit(_reviewed_counts, run)

    def write(results: list[ImageResult]) -> tuple[int, int]:
        return _write_batch(version, results, label_map, reviewed_counts.result())

    stream = predict_stream(items, model, batch_size=batch_size or _batch_size(version, model),
                            decode_pool=decode_pool, gpu_decoder=gpu_decoder, gpu_decode=settings.INFERENCE_GPU_DECODE)
    # Database writes run in one background thread so the model never waits for them; at most
    # WRITES_IN_FLIGHT batches are queued, and progress counts only batches that are written.
    in_flight: deque[tuple[Future, int]] = deque()
    try:
        for results in stream:
            in_flight.append((writer.submit(write, results), len(results)))
            while len(in_flight) > WRITES_IN_FLIGHT:
                written.append(_collect(in_flight, progress))
            if progress.cancelled():
                cancelled = True
                break
    finally:
        stream.close()
        while in_flight:  # the batches already predicted are still written (or their error raised)
            written.append(_collect(in_flight, progress))
        writer.submit(_connections_tidy).result()
    if not cancelled:
        progress.add(len(chunk.image_ids) - len(items))  # images deleted since the run was created
    progress.flush()
    return sum(w for w, _ in written), sum(f for _, f in written), cancelled


def _reviewed_counts(run: InferenceRun) -> dict[int, int]:
    """The project's box counts per reviewed image (count_anomaly's reference), read once per run per worker.

    One GROUP BY over every reviewed image of the project: about 100 ms on PostgreSQL for 20,000
    of them, which every chunk used to pay before its first batch. Later reviews change it little.
    """
    global _REVIEWED_COUNTS
    if _REVIEWED_COUNTS[0] != run.pk:
        _REVIEWED_COUNTS = (run.pk, reviewed_box_counts(run.project_id))
    return _REVIEWED_COUNTS[1]


def _collect(in_flight: deque, progress: JobProgress) -> tuple[int, int]:
    future, images = in_flight.popleft()
    result = future.result()  # re-raises a failed write here, in the task
    progress.add(images)
    return result


def _connections_tidy() -> None:
    """Between chunks, as Celery does for the task's own thread: the writer thread keeps a healthy
    connection for the next chunk (CONN_MAX_AGE) and drops a broken or expired one."""
    for connection_ in connections.all(initialized_only=True):
        connection_.close_if_unusable_or_obsolete()


def _batch_size(version: ModelVersion, model: detector.Detector) -> int:
    if model.device.type == "cuda":
        return detector.ARCHITECTURES[version.architecture].batch_size
    return settings.INFERENCE_CPU_BATCH_SIZE


@transaction.atomic
def _write_batch(version: ModelVersion, results: list[ImageResult], label_map: dict[int, int | None],
                 reviewed_counts: dict[int, int] | None = None, *, threshold: float | None = None
                 ) -> tuple[int, int]:
    """Replace this version's predictions on these images, rank them for review, judge the reviewed ones.

    Ranked at `threshold`, by default the project's review threshold, read in this batch's transaction:
    a change during a run applies from the next batch, and the rerank it queued redoes the earlier ones.
    """
    # Images and label classes deleted since the chunk read them are skipped; the rest are held
    # until this batch commits, so a concurrent delete waits for it and its cascade takes the new
    # rows with it (project/row_locks.py).
    present = set(update_lock(Image.objects.filter(pk__in=[r.key for r in results])))
    results = [r for r in results if r.key in present]
    # The version too: its deletion's last step (inference/version_deletion.py) waits for this batch and
    # takes its rows; a batch after that finds it gone and writes nothing.
    if not results or not key_share_lock(ModelVersion.objects.filter(pk=version.pk)):
        return 0, 0
    live_classes = key_share_lock(LabelClass.objects.filter(pk__in=[pk for pk in label_map.values() if pk]))
    keys = [r.key for r in results]
    if threshold is None:
        threshold = Project.objects.values_list("score_threshold", flat=True).get(pk=version.project_id)
    _predictions_delete(version, keys)
    previous = previous_predictions(keys, before=version.number, threshold=threshold)
    kept: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # image id, label class ids, boxes, scores
    images: list[tuple] = []  # IMAGE_SCORE_COLUMNS, then the image id
    failed = 0
    # model class id -> label class id, as an array so whole batches map at once (0: class gone)
    lookup = np.zeros(max(label_map, default=0) + 1, dtype=np.int64)
    for model_class, label_class_id in label_map.items():
        lookup[model_class] = label_class_id if label_class_id in live_classes else 0
    for result in results:
        if result.detections is None:
            failed += 1
            images.append((result.error[:2000], None, None, None, 0.0, None, result.key))
            continue
        d = result.detections
        labels = lookup[np.clip(d.labels, 0, len(lookup) - 1)]
        keep = labels > 0  # drop boxes of classes the project has since deleted
        boxes, scores = d.boxes_xyxy[keep].astype(np.float64), np.clip(d.scores[keep], 0.0, 1.0).astype(np.float64)
        kept.append((result.key, labels[keep], boxes, scores))
        rank = image_ranking(ImagePredictions(result.key, boxes.astype(np.float32), labels[keep],
                                              scores.astype(np.float32)),
                             previous=previous.get(result.key), reviewed_counts=reviewed_counts, threshold=threshold)
        images.append(("", rank.uncertainty, rank.disagreement, rank.count_anomaly, rank.priority, version.number,
                       result.key))
    written = _predictions_insert(version, kept)
    rows_update(Image, IMAGE_SCORE_COLUMNS, images)
    reviewed = list(Image.objects.filter(pk__in=keys, status__in=REVIEWED_STATUSES).values_list("pk", flat=True))
    if reviewed:
        box_outcomes_refresh(image_ids=reviewed, model_version_ids=[version.pk])
    reset_queries()  # with DEBUG on, Django would otherwise keep every (large) INSERT of a long chunk
    return written, failed


def _predictions_delete(version: ModelVersion, image_ids: list[int]) -> None:
    """This version's earlier boxes on these images (a redelivered or repeated chunk), and the outcomes citing them.

    In SQL, not QuerySet.delete(): to cascade to BoxOutcome, Django loads every prediction as a
    model object first (1,600 per batch, 50 ms of CPU holding the GIL). The outcomes of reviewed
    images are rebuilt after the insert.
    """
    BoxOutcome.objects.filter(model_version=version, image_id__in=image_ids).delete()
    placeholders = ", ".join(["%s"] * len(image_ids))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Prediction._meta.db_table} WHERE model_version_id = %s "
                       f"AND image_id IN ({placeholders})", [version.pk, *image_ids])


def _predictions_insert(version: ModelVersion, kept: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> int:
    """Store a batch's boxes column by column: no Python work per row (project/bulk_insert.py)."""
    if not kept:
        return 0
    image_ids, labels, boxes, scores = zip(*kept)
    boxes = np.concatenate(boxes).reshape(-1, 4)
    return rows_insert(Prediction, {
        "image": np.repeat(image_ids, [len(per_image) for per_image in labels]).astype(np.int64),
        "model_version": np.full(len(boxes), version.pk, dtype=np.int64),
        "label_class": np.concatenate(labels).astype(np.int64),
        "x": boxes[:, 0], "y": boxes[:, 1], "w": boxes[:, 2] - boxes[:, 0], "h": boxes[:, 3] - boxes[:, 1],
        "score": np.concatenate(scores),
    })


@transaction.atomic
def _chunk_attempt_start(chunk_id: int) -> InferenceChunk | None:
    """Count an attempt on the chunk; None when there is nothing to do (finished, cancelled, failed)."""
    chunk = InferenceChunk.objects.select_for_update().select_related("run", "run__model_version").filter(
        pk=chunk_id).first()
    if chunk is None or chunk.finished:
        return None
    run = chunk.run
    if run.status not in ACTIVE_STATUSES:
        InferenceChunk.objects.filter(pk=chunk.pk).update(finished=True)
        return None
    if run.cancel_requested:
        job_finish(run, status=JobStatus.CANCELLED)
        return None
    holder = message_hold(chunk.held_by_task, f"inference run {run.pk}, chunk {chunk.number}")
    if holder is None:
        return None
    if chunk.attempts >= settings.JOB_MAX_ATTEMPTS:
        job_finish(run, status=JobStatus.FAILED, error=(
            f"Chunk {chunk.number} stopped its worker {chunk.attempts} times (killed, out of memory or lost); "
            "gave up. Images of that chunk: " + ", ".join(map(str, chunk.image_ids[:20]))))
        InferenceChunk.objects.filter(pk=chunk.pk).update(finished=True)
        return None
    chunk.attempts += 1
    chunk.held_by_task = holder
    chunk.save(update_fields=["attempts", "held_by_task"])
    InferenceRun.objects.filter(pk=run.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now())
    InferenceRun.objects.filter(pk=run.pk, attempts__lt=chunk.attempts).update(attempts=chunk.attempts)
    run.refresh_from_db()
    return chunk


def _chunk_finish(chunk: InferenceChunk, *, written: int, failed: int, cancelled: bool) -> None:
    with transaction.atomic():
        InferenceChunk.objects.filter(pk=chunk.pk).update(finished=True)
        InferenceRun.objects.filter(pk=chunk.run_id).update(
            chunks_done=F("chunks_done") + 1,
            predictions_written=F("predictions_written") + written,
            images_failed=F("images_failed") + failed,
        )
        run = InferenceRun.objects.select_for_update().filter(pk=chunk.run_id).first()
    if run is None:  # deleted with its project while the chunk ran
        return
    if cancelled or run.cancel_requested:
        job_finish(run, status=JobStatus.CANCELLED)
    elif run.chunks_done >= run.chunks_total:
        job_finish(run, status=JobStatus.SUCCEEDED)
    else:
        return
    run.refresh_from_db()
    if run.started_at and run.finished_at:
        seconds = max((run.finished_at - run.started_at).total_seconds(), 1e-6)
        InferenceRun.objects.filter(pk=run.pk).update(images_per_second=run.progress_done / seconds)
    logger.info("inference run %s %s: %s/%s images", run.pk, run.status, run.progress_done, run.progress_total)
