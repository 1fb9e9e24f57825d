"""REST shapes of training runs, snapshots and model comparisons."""
from __future__ import annotations

from rest_framework import serializers

from inference.architectures import ARCHITECTURES, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from project.job_serializers import JobRunSerializer
from training.models import DatasetSnapshot, TrainingRun


class TrainingRunSerializer(JobRunSerializer):

    class Meta:
        model = TrainingRun
        fields = ["id", "status", "percent", "progress_done", "progress_total", "architecture", "params", "epoch",
                  "snapshot", "base_version", "result_version", "loss_history", "eval_history", "comparison",
                  "images_per_second", "eta_seconds", "device", "attempts", "cancel_requested", "error",
                  "waiting", "created_at", "started_at", "finished_at"]


class TrainingRunListSerializer(TrainingRunSerializer):
    """The list leaves out the long histories; fetch one run for its loss curve."""

    class Meta(TrainingRunSerializer.Meta):
        fields = [f for f in TrainingRunSerializer.Meta.fields if f not in ("loss_history", "eval_history")]


class TrainingRunCreateSerializer(serializers.Serializer):
    architecture = serializers.ChoiceField(choices=sorted(ARCHITECTURES), required=False,
                                           help_text="Default: the active model's.")
    epochs = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    batch_size = serializers.IntegerField(min_value=1, max_value=512, required=False)
    image_size = serializers.IntegerField(min_value=MIN_IMAGE_SIZE, max_value=MAX_IMAGE_SIZE, required=False)
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


class SliceScoresSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    map = serializers.FloatField()
    errors = serializers.IntegerField()


class TagSliceSerializer(serializers.Serializer):
    tag = serializers.CharField()
    images = serializers.IntegerField(help_text="Of the compared images, those with this tag.")
    versions = SliceScoresSerializer(many=True, help_text="Each version's mAP and errors on them.")
    change_interval = serializers.ListField(
        child=serializers.FloatField(), allow_null=True,
        help_text="The middle 90% of the second version's mAP change over 200 paired resamples of these images; null "
                  "for a tag with fewer than 10 images.")
    change_bound = serializers.FloatField(
        allow_null=True, help_text="The second version's change here lies below this beyond chance (null: too few images).")
    clear_loss = serializers.BooleanField(help_text="The second version is worse on these images beyond chance "
                                                    "(docs/training.md: the bar rises with the number of tags judged).")
    holdout_waiting = serializers.IntegerField(
        allow_null=True, help_text="For a tag with too few images to judge: its held-out images still waiting for "
                                   "review (reviewed, they would count here); null for a tag judged.")


class ComparisonSerializer(serializers.Serializer):
    images = serializers.IntegerField(help_text="Reviewed holdout images both versions predicted (with `tag`, "
                                                "those tagged so).")
    score_threshold = serializers.FloatField()
    tag = serializers.CharField(allow_null=True, help_text="The tag the images were limited to, or null.")
    versions = VersionScoresSerializer(many=True)
    tags = TagSliceSerializer(many=True, help_text="The scores broken down by the images' tags (a camera, night), "
                                                   "the 20 tags with most images first.")
    unjudged = serializers.ListField(child=serializers.CharField(), help_text=(
        "The project's classes no compared image has a human box of: mAP leaves them out, so neither version is "
        "judged on them."))
    fixed = ImageChangeSerializer(many=True, help_text="Images where the second version makes fewer errors.")
    broke = ImageChangeSerializer(many=True, help_text="Images where the second version makes more errors.")


class OperatingPointsQuerySerializer(serializers.Serializer):
    choose = serializers.ChoiceField(choices=["f1", "precision", "recall"], default="f1",
                                     help_text="f1: the threshold with the best F1; precision: the lowest threshold "
                                               "whose precision reaches `target`; recall: the highest whose recall does.")
    target = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True, default=None,
                                    help_text="The precision or recall to reach (with choose=precision or recall).")

    def validate(self, data: dict) -> dict:
        if data["choose"] != "f1" and data.get("target") is None:
            raise serializers.ValidationError({"target": [f"Give the {data['choose']} to reach, between 0 and 1."]})
        return data


class OperatingPointSerializer(serializers.Serializer):
    threshold = serializers.FloatField(help_text="Keep boxes scored at or above this.")
    precision = serializers.FloatField()
    recall = serializers.FloatField()
    f1 = serializers.FloatField()
    true_positives = serializers.IntegerField()
    false_positives = serializers.IntegerField()
    missed = serializers.IntegerField(help_text="Human boxes no kept box found.")


class OperatingCurveSerializer(serializers.Serializer):
    name = serializers.CharField(help_text='A class name, or "all classes" (every box pooled).')
    human_boxes = serializers.IntegerField()
    predictions = serializers.IntegerField()
    chosen = OperatingPointSerializer(allow_null=True, help_text="By the rule asked for; null when none meets it.")
    best_f1 = OperatingPointSerializer(allow_null=True)
    points = OperatingPointSerializer(many=True, help_text="Up to 100 thresholds, highest first, for a plot.")


class ConfusionSerializer(serializers.Serializer):
    threshold = serializers.FloatField(help_text="The pooled chosen threshold (or the best F1's when none is chosen).")
    classes = serializers.ListField(child=serializers.CharField())
    counts = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text='counts[true][predicted]: rows are the classes, then "nothing there" (a box on no human box); '
                  'columns the classes, then "missed". Matched at IoU 0.5 whatever the class.')


class OperatingPointsSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    number = serializers.IntegerField()
    images = serializers.IntegerField(help_text="Reviewed holdout images this version predicted: the ones judged.")
    holdout_reviewed = serializers.IntegerField(help_text="Reviewed holdout images in the project.")
    choose = serializers.CharField()
    target = serializers.FloatField(allow_null=True)
    curves = OperatingCurveSerializer(many=True)
    confusion = ConfusionSerializer(allow_null=True)
