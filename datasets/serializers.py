"""REST shapes of import and export jobs."""
from __future__ import annotations

from rest_framework import serializers

from datasets.models import (
    MAX_FRAME_EVERY, MIN_FRAME_EVERY, BucketWatch, DatasetExport, DatasetImport, ExportFormat, ExportSource, ImportFormat,
)
from project.converters import MAX_ID
from project.job_serializers import JobRunSerializer
from review.tags import MAX_TAGS

MAX_EXPORT_IDS = 1_000_000

JOB_FIELDS = ["id", "status", "percent", "progress_done", "progress_total", "attempts", "cancel_requested", "error",
              "waiting", "created_at", "started_at", "finished_at"]


SKIP_LOOK_ALIKES_HELP = ("Leave out unlabelled images that look like one kept just before: a fixed camera's unchanged "
                         "view (same size, the same 32 x 32 grey cells within 10 levels). Each is reported, not added.")

class DatasetImportSerializer(JobRunSerializer):

    class Meta:
        model = DatasetImport
        fields = JOB_FIELDS + ["original_name", "source_url", "format", "detected_format", "partial", "model_name",
                               "frame_every", "tags", "tag_folders", "skip_look_alikes", "report"]


class ImportCreateSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, help_text="A .zip of images (optionally with COCO, YOLO or VOC "
                                                           "labels, and videos whose frames become images), a COCO "
                                                           ".json for images already in the project, or a video (.mp4, "
                                                           ".mov, .m4v, .mkv, .avi, .webm) whose frames become images.")
    source_url = serializers.CharField(max_length=1024, required=False, default="", allow_blank=True,
                                       help_text="Instead of a file: s3://bucket/prefix/, the objects under a prefix "
                                                 "the installation imports from (IMPORT_BUCKETS). Importing it again "
                                                 "adds only the new images.")
    format = serializers.ChoiceField(choices=ImportFormat.choices, default=ImportFormat.AUTO)
    partial = serializers.BooleanField(default=False, help_text="Keep the valid images when some are refused.")
    frame_every = serializers.FloatField(default=1.0, min_value=MIN_FRAME_EVERY, max_value=MAX_FRAME_EVERY,
                                         help_text="For a video (a file, each one in a zip or under a prefix): "
                                                   "seconds between the frames taken from it.")
    tags = serializers.ListField(child=serializers.CharField(max_length=1000, allow_blank=True), required=False,
                                 default=list, max_length=MAX_TAGS, help_text="Tags the images it adds get (a camera's name, night): a list, or names separated by commas.")
    tag_folders = serializers.BooleanField(default=False, help_text="Tag each image it adds with its top folder's "
                                                                    "name (gate for gate/0800.jpg).")
    skip_look_alikes = serializers.BooleanField(default=False, help_text=SKIP_LOOK_ALIKES_HELP)
    model_name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True,
                                       help_text="Name of the external model whose detections (boxes with scores) "
                                                 "these are.")


class DatasetExportSerializer(JobRunSerializer):
    download_ready = serializers.SerializerMethodField()

    class Meta:
        model = DatasetExport
        fields = JOB_FIELDS + ["format", "source", "model_version", "snapshot", "include_images", "min_score",
                               "image_ids", "image_count", "box_count", "size_bytes", "download_ready"]

    def get_download_ready(self, job: DatasetExport) -> bool:
        return bool(job.file) and job.status == "succeeded"


class ExportCreateSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.choices)
    source = serializers.ChoiceField(choices=ExportSource.choices, default=ExportSource.REVIEWED)
    model_version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                             help_text="For source=predictions.")
    snapshot = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="For source=snapshot.")
    images = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                   max_length=MAX_EXPORT_IDS, help_text="Only these images (ids) of the reviewed or "
                                                                        "predicted ones; default: all of them.")
    include_images = serializers.BooleanField(default=True)
    min_score = serializers.FloatField(default=0.0, min_value=0.0, max_value=1.0,
                                       help_text="For predictions: leave out boxes scored below this.")


class BucketWatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = BucketWatch
        fields = ["id", "source_url", "format", "every_minutes", "frame_every", "tags", "tag_folders",
                  "skip_look_alikes", "next_run_at",
                  "last_import", "last_error", "created_at"]


class BucketWatchCreateSerializer(serializers.Serializer):
    source_url = serializers.CharField(max_length=1024, help_text="s3://bucket/prefix/ under IMPORT_BUCKETS.")
    every_minutes = serializers.IntegerField(default=60, help_text="5 to 10080 (a week).")
    format = serializers.ChoiceField(choices=ImportFormat.choices, default=ImportFormat.AUTO)
    frame_every = serializers.FloatField(default=1.0, min_value=MIN_FRAME_EVERY, max_value=MAX_FRAME_EVERY,
                                         help_text="For each video under the prefix: seconds between the frames "
                                                   "taken from it.")
    tags = serializers.ListField(child=serializers.CharField(max_length=1000, allow_blank=True), required=False,
                                 default=list, max_length=MAX_TAGS, help_text="Tags the images its imports add get (the camera's name, say).")
    tag_folders = serializers.BooleanField(default=False, help_text="Tag each image its imports add with its top "
                                                                    "folder's name under the prefix (a camera's).")
    skip_look_alikes = serializers.BooleanField(default=False, help_text=SKIP_LOOK_ALIKES_HELP)
