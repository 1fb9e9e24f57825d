"""Bucket prefixes a project imports from on a schedule: the deployment drops frames, the app brings them in.

Celery beat runs `bucket_watches_run` every JOB_SWEEP_SECONDS; each watch that is due starts an
import of its prefix (datasets/bucket_source.py: only the objects that are new since) unless its
previous import still runs. Imports started here keep the valid images when some are refused
(partial), so one corrupt frame does not hold back a night's worth. With an active model and
"predict uploads" on, the new images are then predicted, and the review queue puts the ones the
model is least sure of first.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from datasets.bucket_source import bucket_url_allowed
from datasets.models import BucketWatch, ImportFormat
from datasets.services import dataset_import_start, frame_every_check
from review.models import Project, project_being_deleted
from review.tags import tag_names_clean

logger = logging.getLogger(__name__)
MIN_MINUTES, MAX_MINUTES = 5, 7 * 24 * 60


def bucket_watch_create(*, project: Project, user: AbstractBaseUser | None, source_url: str, every_minutes: int = 60,
                        format: str = ImportFormat.AUTO, frame_every: float = 1.0,
                        tags: list[str] | str | None = None, tag_folders: bool = False,
                        skip_look_alikes: bool = False) -> BucketWatch:
    """Watch a prefix; its first import starts at the next beat (or at once with bucket_watches_run). Each
    video under it gives one frame every `frame_every` seconds; the images its imports add get `tags`
    (the camera's name, say) and, with `tag_folders`, their top folder's name under the prefix (one
    watch for a site whose cameras each write to a folder of their own); with `skip_look_alikes`, its imports
    leave out the frames that look like one kept just before (a camera that saw nothing new)."""
    tags = tag_names_clean(tags)
    if format not in ImportFormat.values:
        raise ValidationError({"format": f"Unknown format {format!r}; choose one of {', '.join(ImportFormat.values)}."})
    if not MIN_MINUTES <= every_minutes <= MAX_MINUTES:
        raise ValidationError({"every_minutes": f"Import every {MIN_MINUTES} minutes at the most often and once a "
                                                f"week at the least (got {every_minutes})."})
    frame_every_check(frame_every)
    bucket, prefix = bucket_url_allowed(source_url)
    url = f"s3://{bucket}/{prefix}"
    if BucketWatch.objects.filter(project=project, source_url=url).exists():
        raise ValidationError({"source_url": f"{project.name} watches {url} already."})
    return BucketWatch.objects.create(project=project, source_url=url, format=format, every_minutes=every_minutes,
                                      frame_every=frame_every, tags=tags, tag_folders=bool(tag_folders),
                                      skip_look_alikes=bool(skip_look_alikes), created_by=user)


def bucket_watch_delete(*, watch: BucketWatch) -> None:
    """Stop watching; an import it started runs to its end."""
    watch.delete()


def bucket_watches_run(*, now: datetime | None = None, watch_ids: list[int] | None = None) -> list[int]:
    """Start the import of each watch that is due and whose last import has finished; the ids of those started."""
    now = now or timezone.now()
    due = (BucketWatch.objects.filter(next_run_at__lte=now).exclude(project_being_deleted("project_id"))
           .select_related("project", "created_by", "last_import"))
    if watch_ids is not None:
        due = due.filter(pk__in=watch_ids)
    started = []
    for watch in due:
        if watch.last_import is not None and not watch.last_import.is_finished:
            continue  # still importing: looked at again at the next beat
        # Claimed by moving its next run: a second beat (or a click) that read the same row changes nothing.
        if not BucketWatch.objects.filter(pk=watch.pk, next_run_at=watch.next_run_at).update(
                next_run_at=now + timedelta(minutes=watch.every_minutes)):
            continue
        try:
            with transaction.atomic():
                job = dataset_import_start(project=watch.project, user=watch.created_by, source_url=watch.source_url,
                                           format=watch.format, partial=True, frame_every=watch.frame_every,
                                           tags=watch.tags, tag_folders=watch.tag_folders,
                                           skip_look_alikes=watch.skip_look_alikes)
        except ValidationError as exc:  # the prefix is no longer allowed, say: said on the page, tried again later
            error = " ".join(exc.messages)[:500]
            logger.warning("bucket watch %s could not start an import: %s", watch.pk, error)
            BucketWatch.objects.filter(pk=watch.pk).update(last_error=error)
            continue
        BucketWatch.objects.filter(pk=watch.pk).update(last_import=job, last_error="")
        started.append(job.pk)
    return started
