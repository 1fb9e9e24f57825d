"""A model version exported as ONNX by a worker, checked, and kept for download (ModelExport).

A deployment that runs onnxruntime, TensorRT or OpenVINO (an edge box beside the camera, say)
cannot load torchvision weights. *ONNX* beside a version on the models page (or
`POST /model-versions/{id}/exports/`) queues a ModelExport on the `inference` queue, whose workers
have torch: the worker loads the weights, writes the ONNX file (inference/onnx_export.py), runs it with
onnxruntime on up to CHECK_IMAGES of the project's images (held-out reviewed ones first, the images
the version was judged on) and compares its boxes with the model's, then stores the file. A file
that does not predict what the model does is not offered: the export fails and says which box differs.

A version's weights never change, so a second request for the same version, format and class names
returns the export already made (or still going) instead of making another. Progress: 1 for the
export, 1 per image checked, 1 for storing the file; cancel is checked between them.
"""
from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Case, IntegerField, Value, When

from inference.models import ModelExport, ModelExportFormat, ModelVersion, version_being_deleted
from project.jobs import (
    ACTIVE_STATUSES, JobProgress, JobStatus, job_attempt_start, job_cancel_request, job_end, job_heartbeat,
    job_queue_on_commit,
)
from project.storage import storage_read
from review.models import REVIEWED_STATUSES, Image, Split
from review.project_deletion import project_deletion_guard

TASK = "inference.tasks.model_export_execute"
CHECK_IMAGES = 4
logger = logging.getLogger(__name__)


@transaction.atomic
def model_export_start(*, version: ModelVersion, format: str = ModelExportFormat.ONNX,
                       user: AbstractBaseUser | None = None) -> tuple[ModelExport, bool]:
    """The version's export in `format`: the one made or going already, else a new one queued (then True)."""
    if format not in ModelExportFormat.values:
        raise ValidationError(f"Unknown export format {format!r}; choose one of {', '.join(ModelExportFormat.values)}.")
    project_deletion_guard(version.project)
    # Held until this commits: a deletion of the version starting now waits, then cancels this export.
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version_being_deleted(version.pk):
        raise ValidationError(f"{version} is being deleted.")
    if not version.weights:
        raise ValidationError(f"{version} has no weights to export: it brought only its predictions.")
    existing = (ModelExport.objects.filter(model_version=version, format=format, class_names=version.class_names,
                                           status__in=(*ACTIVE_STATUSES, JobStatus.SUCCEEDED))
                .order_by("-created_at", "-id").first())
    if existing is not None:
        return existing, False
    export = ModelExport.objects.create(
        project_id=version.project_id, model_version=version, version_number=version.number, format=format,
        class_names=version.class_names, requested_by=user, progress_total=CHECK_IMAGES + 2)
    job_queue_on_commit(export, TASK)
    return export, True


def model_export_cancel(*, export: ModelExport) -> ModelExport:
    """Stop at the next step; nothing is kept (ValidationError once finished)."""
    return job_cancel_request(export)


def model_export_execute(*, run_id: int, progress_interval: float = 1.0) -> ModelExport | None:
    """Export, check and store the file; the run's error says why when it cannot."""
    run = job_attempt_start(ModelExport, run_id=run_id)
    if run is None:
        return None
    with job_heartbeat(run):
        progress = JobProgress(run, interval=progress_interval)
        try:
            return _export(run, progress)
        except Exception as error:  # said now, not left "running" until the sweeper looks
            logger.exception("%s failed", run)
            return job_end(run, progress, JobStatus.FAILED,
                           f"The export failed ({type(error).__name__}: {error}); nothing was kept. Export it again.")


def _export(run: ModelExport, progress: JobProgress) -> ModelExport:
    from inference import onnx_export  # torch and onnx: only a worker of the inference queue loads them
    from inference.detector import WeightsError, load_model
    from inference.pipeline import decode_to_tensor

    version = run.model_version
    images = _check_images(version)
    ModelExport.objects.filter(pk=run.pk).update(progress_done=0, progress_total=len(images) + 2)
    try:  # a model of its own on the CPU, where the file is made: the worker's cached detectors stay as they are
        model = load_model(storage_read(version.weights.name), architecture=version.architecture,
                           num_classes=len(version.class_names))
    except (WeightsError, ValueError, FileNotFoundError) as error:
        return job_end(run, progress, JobStatus.FAILED, f"The weights of {version} could not be loaded: {error}")
    metadata = onnx_export.metadata_for(
        architecture=version.architecture, class_names=run.class_names,
        score_threshold=(version.metrics.get("operating_point") or {}).get("threshold"),
        version=f"v{version.number}", project=version.project.name)
    data = onnx_export.onnx_from_model(model, metadata=metadata)
    progress.add(1)
    session, check = onnx_export.onnx_session(data), onnx_export.OnnxCheck()
    for image in images:
        if progress.cancelled():
            return job_end(run, progress, JobStatus.CANCELLED)
        try:
            pixels = decode_to_tensor(storage_read(image.file.name), pin=False).permute(1, 2, 0).numpy()
        except (OSError, ValueError) as error:  # gone from storage, or unreadable: another image will do
            logger.warning("ONNX check skips image %s: %s", image.pk, error)
        else:
            onnx_export.onnx_check_image(session, model, pixels, check, name=image.original_name)
        progress.add(1)
    ModelExport.objects.filter(pk=run.pk).update(check_result=check.as_dict())
    if not check.passed:
        said = check_in_words(check.as_dict())
        return job_end(run, progress, JobStatus.FAILED, f"The ONNX file does not predict what the model does "
                       f"({said}); first: {check.first_mismatch}. Nothing was kept.")
    if progress.cancelled():
        return job_end(run, progress, JobStatus.CANCELLED)
    run.file.save("model.onnx", ContentFile(data), save=False)
    ModelExport.objects.filter(pk=run.pk).update(file=run.file.name, size_bytes=len(data))
    progress.add(1)
    return job_end(run, progress, JobStatus.SUCCEEDED)

def check_in_words(check: dict) -> str:
    """One line for the models page and a failed export's error."""
    if not check:
        return ""
    floor = check.get("min_score")
    if not check.get("boxes"):
        return f"checked on {check.get('images', 0)} image(s): no box scored {floor} or more to compare"
    said = f"{check['matched']} of {check['boxes']} boxes scored ≥ {floor} agree on {check['images']} image(s)"
    if check.get("max_score_difference") is not None:
        said += f" (scores within {check['max_score_difference']:.1g})"
    return said


def _check_images(version: ModelVersion) -> list[Image]:
    """Up to CHECK_IMAGES of the project's images: reviewed held-out ones first (the version was judged on
    them), then reviewed, then any; none that failed to decode before."""
    rank = Case(When(split=Split.HOLDOUT, status__in=REVIEWED_STATUSES, then=Value(0)),
                When(status__in=REVIEWED_STATUSES, then=Value(1)), default=Value(2), output_field=IntegerField())
    return list(Image.objects.filter(project_id=version.project_id, inference_error="")
                .annotate(rank=rank).order_by("rank", "pk")[:CHECK_IMAGES])
