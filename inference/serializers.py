"""REST shapes of model versions, predictions and inference runs."""
from __future__ import annotations

from rest_framework import serializers

from inference.architectures import ARCHITECTURES
from project.converters import MAX_ID
from project.job_serializers import JobRunSerializer
from inference.models import (
    BoxOutcome, InferenceRun, InferenceScope, ModelExport, ModelExportFormat, ModelVersion, ModelVersionDeletion,
    Prediction, RerankRun, SuspectedError,
)


class ModelVersionSerializer(serializers.ModelSerializer):
    map = serializers.FloatField(read_only=True, allow_null=True)
    training_run = serializers.SerializerMethodField(help_text="The run that produced this version, if any.")
    snapshot = serializers.SerializerMethodField(help_text="The labels this version learned from, if trained here.")
    being_deleted = serializers.BooleanField(
        read_only=True, help_text="A deletion of this version is queued or running (/model-version-deletions/).")

    class Meta:
        model = ModelVersion
        fields = ["id", "number", "architecture", "class_names", "source", "parent", "is_active", "map", "metrics",
                  "note", "created_at", "training_run", "snapshot", "being_deleted"]

    # Lineage lives on TrainingRun (training depends on inference); the views select_related it.
    def get_training_run(self, version: ModelVersion) -> int | None:
        run = getattr(version, "training_run", None)
        return run.pk if run else None

    def get_snapshot(self, version: ModelVersion) -> int | None:
        run = getattr(version, "training_run", None)
        return run.snapshot_id if run else None


class ModelVersionUploadSerializer(serializers.Serializer):
    weights = serializers.FileField(help_text="A state dict: .safetensors, or a torch file loaded with weights_only "
                                              "(the state dict, or a training checkpoint holding it).")
    architecture = serializers.ChoiceField(
        choices=sorted(ARCHITECTURES), required=False, allow_blank=True, default="",
        help_text="The torchvision builder the weights were trained with; default: the one their metadata names, "
                  "else the one their tensors fit.")
    class_names = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, allow_empty=False,
        help_text="Class names in class-id order (repeat the field); default: the names stored in the weights.")
    note = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    activate = serializers.BooleanField(default=False, help_text="Make it the active model straight away.")


class ArchitectureSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The torchvision builder: what `architecture` takes everywhere.")
    image_size = serializers.IntegerField(help_text="Its default input size (the shorter side; SSD's square).")
    cpu_friendly = serializers.BooleanField(help_text="Trains from scratch in minutes on a CPU (the demo's).")
    coco_weights = serializers.BooleanField(
        help_text="This server has torchvision's COCO weights for it: POST .../model-versions/coco/ takes it.")


class ModelVersionFromCocoSerializer(serializers.Serializer):
    architecture = serializers.ChoiceField(
        choices=list(ARCHITECTURES), help_text="Whose torchvision COCO weights; the server must have that file "
                                               "(COCO_WEIGHTS_DIR).")
    activate = serializers.BooleanField(default=False, help_text="Make it the active model straight away.")
    classes = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=100), required=False, default=dict,
        help_text="Project class name -> COCO class name ({\"pedestrian\": \"person\"}), or \"\" for none; a class "
                  "not named here is the COCO class of its own name (any case), if there is one.")


class PredictionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prediction
        fields = ["id", "image", "model_version", "label_class", "x", "y", "w", "h", "score"]


class InferenceRunSerializer(JobRunSerializer):

    class Meta:
        model = InferenceRun
        fields = ["id", "model_version", "scope", "status", "percent", "progress_done", "progress_total",
                  "chunks_done", "chunks_total", "predictions_written", "images_failed", "images_per_second",
                  "device", "attempts", "cancel_requested", "error", "waiting", "created_at", "started_at", "finished_at"]


class ModelVersionDeletionSerializer(JobRunSerializer):

    class Meta:
        model = ModelVersionDeletion
        fields = ["id", "model_version", "version_number", "status", "percent", "progress_done", "progress_total",
                  "attempts", "cancel_requested", "error", "waiting", "requested_by", "created_at", "started_at",
                  "finished_at"]
        extra_kwargs = {"model_version": {"help_text": "Empty once the version is deleted."},
                        "progress_done": {"help_text": "Predictions deleted."}}


class ModelExportSerializer(JobRunSerializer):
    download_ready = serializers.SerializerMethodField(help_text="The file is there: GET /model-exports/{id}/file/.")

    class Meta:
        model = ModelExport
        fields = ["id", "model_version", "version_number", "format", "class_names", "status", "percent",
                  "progress_done", "progress_total", "attempts", "cancel_requested", "error", "waiting", "size_bytes",
                  "check_result", "download_ready", "requested_by", "created_at", "started_at", "finished_at"]
        extra_kwargs = {"progress_done": {"help_text": "Steps done: the export, each image checked, storing the file."}}

    def get_download_ready(self, export: ModelExport) -> bool:
        return bool(export.file) and export.status == "succeeded"


class ModelExportCreateSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ModelExportFormat.choices, default=ModelExportFormat.ONNX)


class RerankRunSerializer(JobRunSerializer):

    class Meta:
        model = RerankRun
        fields = ["id", "score_threshold", "status", "percent", "progress_done", "progress_total", "images_ranked",
                  "images_judged", "attempts", "cancel_requested", "error", "waiting", "requested_by", "created_at",
                  "started_at", "finished_at"]


class InferenceRunCreateSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=[InferenceScope.UNREVIEWED, InferenceScope.ALL, InferenceScope.IDS],
                                    default=InferenceScope.UNREVIEWED)
    model_version = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                             max_value=MAX_ID, help_text="Default: the active model.")
    image_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False, default=list,
                                      max_length=1_000_000, help_text="With scope=ids: the images to predict.")


class BoxOutcomeSerializer(serializers.ModelSerializer):
    truth_label_class = serializers.IntegerField(source="annotation.label_class_id", allow_null=True, read_only=True)

    class Meta:
        model = BoxOutcome
        fields = ["id", "image", "model_version", "kind", "label_class", "x", "y", "w", "h", "score", "iou",
                  "prediction", "annotation", "truth_label_class"]


class BoxOutcomeCountsSerializer(serializers.Serializer):
    total = serializers.DictField(child=serializers.IntegerField())
    by_class = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))


class SuspectedErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = SuspectedError
        fields = ["id", "image", "model_version", "kind", "status", "label_class", "x", "y", "w", "h", "score",
                  "resolved_by", "resolved_at", "created_at"]


class SuspectRateSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    open = serializers.IntegerField()
    confirmed = serializers.IntegerField()
    dismissed = serializers.IntegerField()
    confirmation_rate = serializers.FloatField(allow_null=True)
