"""REST shapes of training runs, snapshots and model comparisons."""
from __future__ import annotations

from rest_framework import serializers

from inference.architectures import ARCHITECTURES
from training.models import DatasetSnapshot, TrainingRun


class TrainingRunSerializer(serializers.ModelSerializer):
    percent = serializers.FloatField(read_only=True)

    class Meta:
        model = TrainingRun
        fields = ["id", "status", "percent", "progress_done", "progress_total", "architecture", "params", "epoch",
                  "snapshot", "base_version", "result_version", "loss_history", "eval_history", "comparison",
                  "images_per_second", "eta_seconds", "device", "attempts", "cancel_requested", "error",
                  "created_at", "started_at", "finished_at"]


class TrainingRunListSerializer(TrainingRunSerializer):
    """The list leaves out the long histories; fetch one run for its loss curve."""

    class Meta(TrainingRunSerializer.Meta):
        fields = [f for f in TrainingRunSerializer.Meta.fields if f not in ("loss_history", "eval_history")]


class TrainingRunCreateSerializer(serializers.Serializer):
    architecture = serializers.ChoiceField(choices=sorted(ARCHITECTURES), required=False,
                                           help_text="Default: the active model's.")
    epochs = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    batch_size = serializers.IntegerField(min_value=1, max_value=512, required=False)
    image_size = serializers.IntegerField(min_value=32, max_value=4096, required=False)
    learning_rate = serializers.FloatField(min_value=1e-8, max_value=0.999, required=False)


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetSnapshot
        fields = ["id", "content_hash", "image_count", "annotation_count", "class_names", "train_image_ids",
                  "holdout_image_ids", "created_at"]


class SnapshotListSerializer(SnapshotSerializer):
    class Meta(SnapshotSerializer.Meta):
        fields = ["id", "content_hash", "image_count", "annotation_count", "class_names", "created_at"]


class VersionScoresSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    map = serializers.FloatField()
    ap50 = serializers.FloatField()
    per_class = serializers.DictField(child=serializers.FloatField())
    images = serializers.IntegerField()
    errors = serializers.IntegerField()


class ImageChangeSerializer(serializers.Serializer):
    image = serializers.IntegerField()
    errors_before = serializers.IntegerField()
    errors_after = serializers.IntegerField()


class ComparisonSerializer(serializers.Serializer):
    images = serializers.IntegerField(help_text="Reviewed holdout images both versions predicted.")
    score_threshold = serializers.FloatField()
    versions = VersionScoresSerializer(many=True)
    fixed = ImageChangeSerializer(many=True, help_text="Images where the second version makes fewer errors.")
    broke = ImageChangeSerializer(many=True, help_text="Images where the second version makes more errors.")
