"""Writes of the datasets app: start an import or an export job (checked first), cancel one."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction

from datasets.bucket_source import bucket_url_allowed
from datasets.exports import ExportSpec, export_spec_check
from datasets.formats import VIDEO_SUFFIXES
from datasets.models import MAX_FRAME_EVERY, MIN_FRAME_EVERY, DatasetExport, DatasetImport, ImportFormat
from project.jobs import JobRun, job_cancel_request, job_queue_on_commit
from review.models import Image, Project
from review.project_deletion import project_deletion_guard
from review.services import display_name
from review.tags import tag_names_clean

IMPORT_TASK = "datasets.tasks.dataset_import_execute"
EXPORT_TASK = "datasets.tasks.dataset_export_execute"


def frame_every_check(frame_every) -> None:
    """A ValidationError unless `frame_every` is seconds between a video's frames that an import takes."""
    if not (isinstance(frame_every, (int, float)) and MIN_FRAME_EVERY <= frame_every <= MAX_FRAME_EVERY):
        raise ValidationError({"frame_every": f"Take a video's frames every {MIN_FRAME_EVERY:g} to "
                                              f"{MAX_FRAME_EVERY:g} seconds."})


@transaction.atomic
def dataset_import_start(*, project: Project, user: AbstractBaseUser | None, file: File | None = None, name: str = "",
                         source_url: str = "", format: str = ImportFormat.AUTO, partial: bool = False,
                         model_name: str = "", frame_every: float = 1.0, tags: list[str] | str | None = None,
                         tag_folders: bool = False, skip_look_alikes: bool = False, queue: bool = True) -> DatasetImport:
    """Store the uploaded zip, COCO file or video, or check the bucket prefix (`source_url`,
    s3://bucket/prefix/), and queue the import (or leave it for the caller to run: queue=False).
    A video gives one frame every `frame_every` seconds; the images added get the named `tags`, and with
    `tag_folders` their top folder's name; with `skip_look_alikes`, unlabelled images that look like one kept
    just before are left out."""
    tags = tag_names_clean(tags)
    if format not in ImportFormat.values:
        raise ValidationError({"format": f"Unknown format {format!r}; choose one of {', '.join(ImportFormat.values)}."})
    frame_every_check(frame_every)
    if (file is None) == (not source_url):
        raise ValidationError({"file": "Upload a file or name a bucket prefix (source_url), one of the two."})
    if source_url:
        bucket, prefix = bucket_url_allowed(source_url)
        source_url = f"s3://{bucket}/{prefix}"
    elif not name.lower().endswith((".zip", ".json", *VIDEO_SUFFIXES)):
        raise ValidationError({"file": "Upload a .zip archive (images, optionally with labels), a COCO .json file "
                                       f"or a video ({', '.join(VIDEO_SUFFIXES)})."})
    job = DatasetImport(project=project, requested_by=user, format=format, partial=partial,
                        original_name=source_url[:255] or display_name(name, fallback="upload"),
                        source_url=source_url, model_name=model_name.strip()[:200], frame_every=frame_every,
                        tags=tags, tag_folders=bool(tag_folders), skip_look_alikes=bool(skip_look_alikes))
    with transaction.atomic():
        project_deletion_guard(project)
        if file is not None:
            job.file.save(name, file, save=False)
        job.save()
        if queue:
            job_queue_on_commit(job, IMPORT_TASK)
    return job


@transaction.atomic
def dataset_export_start(*, project: Project, user: AbstractBaseUser | None, spec: ExportSpec,
                         queue: bool = True) -> DatasetExport:
    """Check the export and queue it (or leave it for the caller to run: queue=False)."""
    project_deletion_guard(project)
    export_spec_check(project, spec)
    # Against all the project's ids rather than `pk__in` the chosen ones: SQLite takes at most 32,766
    # parameters in a statement, and an export may name more images than that.
    if spec.image_ids is not None and (missing := sorted(
            set(spec.image_ids) - set(Image.objects.filter(project=project).values_list("pk", flat=True)))):
        raise ValidationError({"images": f"Not images of this project: {missing[:20]}"})
    job = DatasetExport.objects.create(
        project=project, requested_by=user, format=spec.format, source=spec.source, model_version=spec.model_version,
        snapshot=spec.snapshot, include_images=spec.include_images, min_score=spec.min_score,
        image_ids=sorted(set(spec.image_ids)) if spec.image_ids is not None else None,
    )
    if queue:
        job_queue_on_commit(job, EXPORT_TASK)
    return job


def dataset_job_cancel(*, job: JobRun) -> JobRun:
    """Stop an import (nothing is written) or an export (no file is kept)."""
    return job_cancel_request(job)

