"""The worker side of imports and exports: run the job, report progress, record the outcome."""
from __future__ import annotations

import contextlib
import logging
import tempfile

from django.core.exceptions import ValidationError
from django.core.files import File

from datasets.bucket_source import BucketSource
from datasets.exports import ExportCancelled, ExportSpec, export_write
from datasets.imports import ImportCancelled, ImportSource, dataset_import
from datasets.models import DatasetExport, DatasetImport
from datasets.formats import FormatError, is_video_name
from datasets.video_source import VideoSource
from inference.services import inference_run_after_upload
from project.jobs import JobProgress, JobStatus, job_attempt_start, job_finish, job_heartbeat
from review.archives import ArchiveRejected

logger = logging.getLogger(__name__)


def dataset_import_execute(*, job_id: int, progress_interval: float = 1.0, listener=None) -> DatasetImport | None:
    """Run one import; `listener(done, total)` follows its progress (the management command prints it)."""
    job = job_attempt_start(DatasetImport, run_id=job_id)
    if job is None:
        return None
    with job_heartbeat(job):
        _import(job, JobProgress(job, interval=progress_interval, listener=listener))
    job.refresh_from_db()
    if job.is_finished and job.file:
        job.file.delete(save=True)  # the upload is not needed once its outcome is recorded
    return job


def _import(job: DatasetImport, progress: JobProgress) -> None:
    try:
        with contextlib.ExitStack() as stack:
            if job.source_url:
                source = BucketSource(job.source_url, project=job.project, frame_every=job.frame_every)
            elif is_video_name(job.file.name):
                source = VideoSource(stack.enter_context(job.file.open("rb")), name=job.original_name,
                                     every=job.frame_every)
            else:
                source = ImportSource(stack.enter_context(job.file.open("rb")), name=job.file.name,
                                      frame_every=job.frame_every)
            stack.callback(source.close)
            report = dataset_import(
                project=job.project, source=source, user=job.requested_by, format=job.format,
                partial=job.partial, model_name=job.model_name or job.original_name, tags=job.tags,
                tag_folders=job.tag_folders, skip_look_alikes=job.skip_look_alikes, progress=progress,
                on_plan=lambda count: _set_total(progress, count))
            if isinstance(source, BucketSource):
                report.objects_unchanged = source.unchanged
                if report.committed:
                    source.remember(refused={row["file"] for row in report.rejected})
        progress.flush()
        DatasetImport.objects.filter(pk=job.pk).update(report=report.as_dict(), detected_format=report.format)
        if report.committed:
            inference_run_after_upload(project=job.project, image_ids=report.added_image_ids, user=job.requested_by)
            job_finish(job, status=JobStatus.SUCCEEDED)
        else:
            count = len(report.rejected)
            job_finish(job, status=JobStatus.FAILED, error=(
                f"{count} file{'s were' if count != 1 else ' was'} refused, so nothing was imported; see the report, "
                "fix them or import again with partial import on to keep the valid ones."))
    except ImportCancelled:
        job_finish(job, status=JobStatus.CANCELLED)
    except (FormatError, ArchiveRejected) as exc:
        job_finish(job, status=JobStatus.FAILED, error=f"{exc} Nothing was imported.")
    except ValidationError as exc:  # the bucket prefix is no longer one the installation imports from
        job_finish(job, status=JobStatus.FAILED, error=f"{' '.join(exc.messages)} Nothing was imported.")
    except Exception as exc:
        logger.exception("import %s failed", job.pk)
        job_finish(job, status=JobStatus.FAILED, error=f"The import failed ({type(exc).__name__}: {exc}); "
                                                       "nothing was imported.")


def dataset_export_execute(*, job_id: int, progress_interval: float = 1.0, listener=None) -> DatasetExport | None:
    """Run one export; `listener(done, total)` follows its progress (the management command prints it)."""
    job = job_attempt_start(DatasetExport, run_id=job_id)
    if job is None:
        return None
    spec = ExportSpec(format=job.format, source=job.source, include_images=job.include_images,
                      model_version=job.model_version, snapshot=job.snapshot, min_score=job.min_score,
                      image_ids=tuple(job.image_ids) if job.image_ids is not None else None)
    with job_heartbeat(job):
        _export(job, spec, JobProgress(job, interval=progress_interval, listener=listener))
    job.refresh_from_db()
    return job


def _export(job: DatasetExport, spec: ExportSpec, progress: JobProgress) -> None:
    try:
        with tempfile.TemporaryFile() as out:
            summary = export_write(
                project=job.project, spec=spec, out=out, progress=progress,
                on_total=lambda count: _set_total(progress, count))
            progress.flush()
            size = out.tell()
            out.seek(0)
            job.file.save("export.zip", File(out), save=False)
        DatasetExport.objects.filter(pk=job.pk).update(
            file=job.file.name, size_bytes=size, image_count=summary.image_count, box_count=summary.box_count)
        job_finish(job, status=JobStatus.SUCCEEDED)
    except ExportCancelled:
        job_finish(job, status=JobStatus.CANCELLED)
    except Exception as exc:
        logger.exception("export %s failed", job.pk)
        job_finish(job, status=JobStatus.FAILED, error=f"The export failed ({type(exc).__name__}: {exc}).")


def _set_total(progress: JobProgress, count: int) -> None:
    progress.total = count
    progress.model.objects.filter(pk=progress.run_id).update(progress_total=count)
