"""Import and export jobs: a dataset brought into a project, or a project's labels written out as a zip.

`datasets` sits on top of the other apps (review <- inference <- training <- datasets) because an
import may create an external model's predictions and an export may read a training snapshot.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from datasets.formats import is_video_name
from inference.models import ModelVersion
from project.jobs import JobRun
from review.models import Project
from training.models import DatasetSnapshot


# Seconds between the frames an import takes from a video: every frame of a 100 fps one, to one a day.
MIN_FRAME_EVERY, MAX_FRAME_EVERY = 0.01, 86_400.0


class ImportFormat(models.TextChoices):
    AUTO = "auto", "Detect from the files"
    COCO = "coco", "COCO JSON"
    YOLO = "yolo", "YOLO (labels/*.txt and data.yaml)"
    VOC = "voc", "Pascal VOC XML"
    IMAGES = "images", "Images only"


class ExportFormat(models.TextChoices):
    COCO = "coco", "COCO JSON"
    YOLO = "yolo", "YOLO (ultralytics layout with data.yaml)"
    VOC = "voc", "Pascal VOC XML"


class ExportSource(models.TextChoices):
    REVIEWED = "reviewed", "Reviewed labels"
    PREDICTIONS = "predictions", "Predictions of one model version"
    SNAPSHOT = "snapshot", "A frozen training snapshot"


def import_upload_path(job: DatasetImport, filename: str) -> str:
    # The user's file name never becomes a path: a random name keeps it inside the folder.
    lowered = filename.lower()
    if lowered.endswith(".json"):
        extension = "json"
    elif is_video_name(lowered):
        extension = lowered.rsplit(".", 1)[1]  # the video's own: the worker opens it as a video by it
    else:
        extension = "zip"
    return f"projects/{job.project_id}/imports/{uuid.uuid4().hex}.{extension}"


def export_upload_path(job: DatasetExport, filename: str) -> str:
    return f"projects/{job.project_id}/exports/{uuid.uuid4().hex}.zip"


class DatasetImport(JobRun):
    """A zip (images, optionally with COCO, YOLO or VOC labels), a COCO file, a video's frames
    (datasets/video_source.py) or the objects under a bucket prefix (datasets/bucket_source.py) brought
    into a project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    file = models.FileField(
        upload_to=import_upload_path, max_length=255, blank=True,
        help_text="The uploaded file, kept until the import finishes.",
    )
    original_name = models.CharField(max_length=255, help_text="The uploaded file's name; shown, never used as a path.")
    source_url = models.CharField(
        max_length=1024, blank=True,
        help_text="s3://bucket/prefix/ when the import reads a bucket's objects instead of an uploaded file.",
    )
    format = models.CharField(max_length=8, choices=ImportFormat.choices, default=ImportFormat.AUTO)
    detected_format = models.CharField(max_length=8, blank=True, help_text="The format the labels were read as.")
    partial = models.BooleanField(
        default=False, help_text="Keep the valid images when some are refused; otherwise nothing is kept then.",
    )
    model_name = models.CharField(
        max_length=200, blank=True,
        help_text="For detections with scores: the name of the external model they become predictions of.",
    )
    frame_every = models.FloatField(
        default=1.0, validators=[MinValueValidator(MIN_FRAME_EVERY), MaxValueValidator(MAX_FRAME_EVERY)],
        help_text="For a video: seconds between the frames taken from it.")
    tags = models.JSONField(default=list, blank=True, help_text="Tag names the images it adds are given.")
    tag_folders = models.BooleanField(
        default=False, help_text="Tag each image it adds with its top folder (a camera's, under a bucket prefix).")
    skip_look_alikes = models.BooleanField(
        default=False, help_text="Leave out unlabelled images that look like one kept just before (a fixed camera's "
                                 "unchanged view: review/look_alikes.py).")
    report = models.JSONField(default=dict, blank=True, help_text="What was added, skipped and refused, per file.")

    class Meta(JobRun.Meta):
        pass

    webhook_event = "dataset_import.finished"

    def __str__(self) -> str:
        return f"Import #{self.pk} of {self.original_name}"

    def webhook_data(self) -> dict:
        return {**super().webhook_data(), "api": f"/api/v1/imports/{self.pk}/", "report": {
            key: value for key, value in self.report.items() if not isinstance(value, (list, dict))}}

    def pending_tasks(self) -> list[tuple[str, list]]:
        return [("datasets.tasks.dataset_import_execute", [self.pk])]


class DatasetExport(JobRun):
    """A project's reviewed labels, one model's predictions or a snapshot, written as a zip."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=8, choices=ExportFormat.choices, default=ExportFormat.COCO)
    source = models.CharField(max_length=16, choices=ExportSource.choices, default=ExportSource.REVIEWED)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Whose predictions, for source=predictions.",
    )
    snapshot = models.ForeignKey(
        DatasetSnapshot, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Which snapshot, for source=snapshot.",
    )
    include_images = models.BooleanField(default=True)
    min_score = models.FloatField(default=0.0, help_text="For predictions: leave out boxes scored below this.")
    image_ids = models.JSONField(
        null=True, blank=True, help_text="Only these images (chosen on the queue page, say); null: every image.",
    )
    file = models.FileField(upload_to=export_upload_path, max_length=255, blank=True, help_text="The finished zip.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    image_count = models.PositiveIntegerField(default=0)
    box_count = models.PositiveIntegerField(default=0)

    class Meta(JobRun.Meta):
        pass

    webhook_event = "dataset_export.finished"

    def __str__(self) -> str:
        return f"Export #{self.pk} ({self.source}, {self.format})"

    def webhook_data(self) -> dict:
        done = self.status == "succeeded"
        return {**super().webhook_data(), "api": f"/api/v1/exports/{self.pk}/",
                "download": f"/api/v1/exports/{self.pk}/download/" if done else None,
                "format": self.format, "source": self.source, "image_count": self.image_count,
                "box_count": self.box_count, "size_bytes": self.size_bytes}

    def pending_tasks(self) -> list[tuple[str, list]]:
        return [("datasets.tasks.dataset_export_execute", [self.pk])]


class BucketObject(models.Model):
    """An object of a bucket prefix that an import of this project has read (added, or found already there).

    The next import of the prefix skips it unless its ETag changed (or, for a video, the import takes its
    frames at another interval), so importing a growing prefix again reads only the new objects instead
    of every one (datasets/bucket_source.py)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    url = models.CharField(max_length=1100, help_text="s3://bucket/key")
    etag = models.CharField(max_length=100)
    frame_every = models.FloatField(
        null=True, blank=True, help_text="For a video: seconds between the frames taken from it. An import at "
                                         "another interval reads it again (empty: read before this was kept).")
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "url"], name="bucketobject_unique_url")]

    def __str__(self) -> str:
        return self.url


class BucketWatch(models.Model):
    """A bucket prefix a project imports from on a schedule: celery beat starts an import of its new objects
    every `every_minutes` (datasets/watches.py), never while the previous one still runs."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="bucket_watches")
    source_url = models.CharField(max_length=1024, help_text="s3://bucket/prefix/ under IMPORT_BUCKETS.")
    format = models.CharField(max_length=8, choices=ImportFormat.choices, default=ImportFormat.AUTO)
    every_minutes = models.PositiveIntegerField(default=60)
    frame_every = models.FloatField(
        default=1.0, validators=[MinValueValidator(MIN_FRAME_EVERY), MaxValueValidator(MAX_FRAME_EVERY)],
        help_text="For the videos under the prefix: seconds between the frames taken from each.")
    tags = models.JSONField(default=list, blank=True, help_text="Tag names the images its imports add are given.")
    tag_folders = models.BooleanField(
        default=False, help_text="Tag each image its imports add with its top folder under the prefix (a camera's).")
    skip_look_alikes = models.BooleanField(
        default=False, help_text="Its imports leave out unlabelled images that look like one kept just before.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    next_run_at = models.DateTimeField(default=timezone.now)
    last_import = models.ForeignKey(DatasetImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_error = models.CharField(max_length=500, blank=True, help_text="Why the last import could not start.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "source_url"], name="bucketwatch_unique_url")]

    def __str__(self) -> str:
        return f"{self.source_url} every {self.every_minutes} min"
