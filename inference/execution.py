"""The worker side of inference: run one chunk of an InferenceRun and write its predictions.

A chunk is idempotent: its predictions for (model version, image) replace any earlier ones, batch
by batch in one transaction each, so a redelivered chunk never duplicates rows and a cancelled one
leaves every image either fully predicted or untouched.
"""
from __future__ import annotations

import logging
from collections import OrderedDict

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from inference import detector
from inference.models import InferenceChunk, InferenceRun, ModelVersion, Prediction
from inference.pipeline import ImageResult, image_uncertainty, predict_stream
from project.jobs import ACTIVE_STATUSES, JobProgress, JobStatus, job_finish
from review.models import Image, LabelClass

logger = logging.getLogger(__name__)

# Loaded detectors kept per worker process, so consecutive chunks skip loading the weights again.
_DETECTORS: OrderedDict[tuple[int, str], detector.Detector] = OrderedDict()
_DETECTOR_CACHE_SIZE = 2


def detector_for(version: ModelVersion) -> detector.Detector:
    key = (version.pk, version.weights.name)
    if key not in _DETECTORS:
        if not version.weights or not default_storage.exists(version.weights.name):
            raise detector.WeightsError(f"The weights file of {version} is missing from storage.")
        with default_storage.open(version.weights.name, "rb") as handle:
            data = handle.read()
        _DETECTORS[key] = detector.Detector.from_bytes(
            data, architecture=version.architecture, num_classes=len(version.class_names))
        while len(_DETECTORS) > _DETECTOR_CACHE_SIZE:
            _DETECTORS.popitem(last=False)
    _DETECTORS.move_to_end(key)
    return _DETECTORS[key]


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
    InferenceRun.objects.filter(pk=run.pk, device="").update(device=str(model.device))

    class_ids = dict(LabelClass.objects.filter(project_id=run.project_id).values_list("name", "id"))
    # model class id (1..N) -> label class id of this project
    label_map = {i + 1: class_ids.get(name) for i, name in enumerate(version.class_names)}
    files = dict(Image.objects.filter(pk__in=chunk.image_ids).values_list("pk", "file"))
    items = [(image_id, _reader(files[image_id])) for image_id in chunk.image_ids if image_id in files]

    progress = JobProgress(run)
    written = failed = 0
    cancelled = False
    for results in predict_stream(items, model, batch_size=batch_size or _batch_size(version, model)):
        batch_written, batch_failed = _write_batch(version, results, label_map)
        written += batch_written
        failed += batch_failed
        progress.add(len(results))
        if progress.cancelled():
            cancelled = True
            break
    if not cancelled:
        progress.add(len(chunk.image_ids) - len(items))  # images deleted since the run was created
    progress.flush()
    _chunk_finish(chunk, written=written, failed=failed, cancelled=cancelled)


def _reader(name: str):
    def read() -> bytes:
        with default_storage.open(name, "rb") as handle:
            return handle.read()
    return read


def _batch_size(version: ModelVersion, model: detector.Detector) -> int:
    if model.device.type == "cuda":
        return detector.ARCHITECTURES[version.architecture].batch_size
    return settings.INFERENCE_CPU_BATCH_SIZE


@transaction.atomic
def _write_batch(version: ModelVersion, results: list[ImageResult], label_map: dict[int, int | None]) -> tuple[int, int]:
    """Replace this version's predictions on these images and update their uncertainty; one transaction."""
    keys = [r.key for r in results]
    Prediction.objects.filter(model_version=version, image_id__in=keys).delete()
    rows, images, failed = [], [], 0
    for result in results:
        image = Image(pk=result.key)
        if result.detections is None:
            failed += 1
            image.inference_error, image.uncertainty, image.priority = result.error[:2000], None, 0.0
            images.append(image)
            continue
        d = result.detections
        for (x1, y1, x2, y2), label, score in zip(d.boxes_xyxy.tolist(), d.labels.tolist(), d.scores.tolist()):
            label_class_id = label_map.get(label)
            if label_class_id is None:
                continue  # a class the project has since deleted
            rows.append(Prediction(image_id=result.key, model_version=version, label_class_id=label_class_id,
                                   x=x1, y=y1, w=x2 - x1, h=y2 - y1, score=min(max(score, 0.0), 1.0)))
        image.inference_error = ""
        image.uncertainty = image_uncertainty(d.scores)
        image.priority = image.uncertainty
        images.append(image)
    Prediction.objects.bulk_create(rows, batch_size=2000)
    Image.objects.bulk_update(images, ["inference_error", "uncertainty", "priority"])
    return len(rows), failed


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
    if chunk.attempts >= settings.JOB_MAX_ATTEMPTS:
        job_finish(run, status=JobStatus.FAILED, error=(
            f"Chunk {chunk.number} stopped its worker {chunk.attempts} times (killed, out of memory or lost); "
            "gave up. Images of that chunk: " + ", ".join(map(str, chunk.image_ids[:20]))))
        InferenceChunk.objects.filter(pk=chunk.pk).update(finished=True)
        return None
    chunk.attempts += 1
    chunk.save(update_fields=["attempts"])
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
        run = InferenceRun.objects.select_for_update().get(pk=chunk.run_id)
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
