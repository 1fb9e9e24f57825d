"""REST shapes of projects, members, classes, images and boxes. Input serializers only validate;
services do the writing."""
from __future__ import annotations

import math

from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework import serializers

from project.converters import MAX_ID
from project.job_serializers import JobRunSerializer
from review.bulk_actions import ACTIONS, MAX_IMAGES
from review.tags import MAX_TAGS
from review.models import (
    Annotation, Comment, Image, LabelClass, Membership, Project, ProjectDeletion, ReviewStatus, Role, Tag,
)

MAX_BOXES_PER_IMAGE = 2000
MAX_CLASS_NAMES = 1000


class ActiveModelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    architecture = serializers.CharField()
    map = serializers.FloatField(allow_null=True)


class ProjectDeletionSerializer(JobRunSerializer):

    class Meta:
        model = ProjectDeletion
        fields = ["id", "project", "project_name", "status", "percent", "progress_done", "progress_total", "attempts",
                  "cancel_requested", "error", "waiting", "requested_by", "created_at", "started_at", "finished_at"]
        extra_kwargs = {"project": {"help_text": "Empty once the project is deleted."},
                        "progress_done": {"help_text": "Images deleted."}}


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, help_text="Your role in this project.")
    image_count = serializers.IntegerField(read_only=True)
    unreviewed_count = serializers.IntegerField(read_only=True)
    reviewed_count = serializers.IntegerField(read_only=True)
    active_model = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "name", "description", "holdout_fraction", "retrain_after_reviews", "infer_on_upload",
                  "promote_only_clear_gains", "tag_loss_limit", "score_threshold", "created_at", "role", "image_count", "unreviewed_count", "reviewed_count", "active_model"]
        read_only_fields = ["created_at"]

    def get_active_model(self, project: Project) -> ActiveModelSerializer(allow_null=True):
        """Filled from the annotations the view adds, so listing projects costs one query."""
        if getattr(project, "active_model_id", None) is None:
            return None
        return {"id": project.active_model_id, "number": project.active_model_number,
                "architecture": project.active_model_architecture, "map": project.active_model_map}


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    class_names = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list,
                                        max_length=MAX_CLASS_NAMES)
    holdout_fraction = serializers.FloatField(required=False, default=0.2, min_value=0.0, max_value=0.9)


class ProjectUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    holdout_fraction = serializers.FloatField(required=False, min_value=0.0, max_value=0.9)
    retrain_after_reviews = serializers.IntegerField(required=False, min_value=0)
    infer_on_upload = serializers.BooleanField(required=False)
    promote_only_clear_gains = serializers.BooleanField(required=False)
    tag_loss_limit = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=1.0,
        help_text="Project.tag_loss_limit: a fine-tune clearly worse than the active model on some tag's held-out "
                  "images by more than this (mAP) stays inactive; null turns it off.")
    score_threshold = serializers.FloatField(
        required=False, min_value=0.01, max_value=0.99,
        help_text="The review threshold (Project.score_threshold). A change ranks the queue and judges the reviewed "
                  "images again in a worker, from the predictions already stored.")


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role", "created_at"]


class MemberAddSerializer(serializers.Serializer):
    username = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all())
    role = serializers.ChoiceField(choices=Role.choices, default=Role.ANNOTATOR)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class LabelClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["id", "name", "colour", "index"]
        read_only_fields = ["index"]
        # Uniqueness is the service's to check, with a message naming the class.
        validators = []


class LabelClassCountsSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="label_class.id")
    name = serializers.CharField(source="label_class.name")
    colour = serializers.CharField(source="label_class.colour")
    boxes_training = serializers.IntegerField(help_text="Human boxes on reviewed training images: what the next "
                                                        "fine-tune learns from.")
    boxes_holdout = serializers.IntegerField(help_text="Human boxes on reviewed held-out images: what models are "
                                                       "judged on.")
    images_training = serializers.IntegerField(help_text="Reviewed training images with a box of it.")
    images_holdout = serializers.IntegerField(help_text="Reviewed held-out images with a box of it.")
    judged = serializers.BooleanField(help_text="False when no held-out image has a box of it: COCO's mAP leaves "
                                                "the class out, so a fine-tune worse on it can still be promoted.")


class LabelClassUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    colour = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False,
                                    error_messages={"invalid": "The colour must look like #1f77b4."})


class ImageSerializer(serializers.ModelSerializer):
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField(help_text="A small JPEG of it (384 pixels on the longer side).")
    box_count = serializers.IntegerField(read_only=True)
    prediction_count = serializers.IntegerField(
        read_only=True, help_text="Boxes the active model proposed at or above the project's review threshold.")
    correction_count = serializers.IntegerField(read_only=True, help_text="Corrections reviewers made on it so far.")
    comment_count = serializers.IntegerField(read_only=True, help_text="Comments on it: GET /images/{id}/comments/.")
    open_by = serializers.CharField(read_only=True, help_text="Who has it open in the editor now (held for them), "
                                    "or empty. A hold only steers `next-image`; saves are guarded by `version`.")
    assigned_to = serializers.CharField(source="assigned_to.username", read_only=True, default=None,
                                        help_text="The member it is assigned to (their next-image offers it, "
                                                  "nobody else's does), or null.")
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name",
                                        help_text="Its tags (a camera's name, night): set by the bulk actions "
                                                  "tag and untag, or by the import that brought it.")

    class Meta:
        model = Image
        fields = ["id", "original_name", "width", "height", "status", "split", "version", "priority", "uncertainty",
                  "disagreement", "count_anomaly", "created_at", "reviewed_at", "file_url", "thumbnail_url", "box_count",
                  "prediction_count", "correction_count", "comment_count", "open_by", "assigned_to", "tags"]

    def get_file_url(self, image: Image) -> str:
        return reverse("api:image_file", args=[image.pk])  # token or session: scripts fetch the pixels too

    def get_thumbnail_url(self, image: Image) -> str:
        return reverse("api:image_thumbnail", args=[image.pk])


# The boxes of an image detail go out on every editor load and every save (50 to 2,000 of them).
# DRF's field-by-field path cost about 1.3 ms per 50 boxes, so these two write their fields out;
# the declared fields still describe them in the API schema, and a test compares both paths.

class BoxSerializer(serializers.ModelSerializer):
    """A human box as stored (an Annotation, or a row with the same attribute names)."""

    class Meta:
        model = Annotation
        fields = ["id", "label_class", "x", "y", "w", "h", "source", "source_prediction_id"]

    def to_representation(self, box) -> dict:
        return {"id": box.id, "label_class": box.label_class_id, "x": float(box.x), "y": float(box.y),
                "w": float(box.w), "h": float(box.h), "source": box.source,
                "source_prediction_id": box.source_prediction_id}


class PredictedBoxSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label_class = serializers.IntegerField(source="label_class_id")
    x = serializers.FloatField()
    y = serializers.FloatField()
    w = serializers.FloatField()
    h = serializers.FloatField()
    score = serializers.FloatField()

    def to_representation(self, box) -> dict:
        return {"id": box.id, "label_class": box.label_class_id, "x": float(box.x), "y": float(box.y),
                "w": float(box.w), "h": float(box.h), "score": float(box.score)}


class ImageDetailSerializer(ImageSerializer):
    boxes = BoxSerializer(many=True, source="shown_boxes", read_only=True)
    predictions = PredictedBoxSerializer(many=True, read_only=True, source="shown_predictions")
    model_version = serializers.IntegerField(read_only=True, allow_null=True, source="shown_model_version_id",
                                             help_text="The model version whose predictions are listed.")
    reviewed_by = serializers.CharField(source="reviewed_by.username", read_only=True, default=None)

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "inference_error", "reviewed_by", "model_version", "boxes",
                  "predictions"]


PIXELS = {"invalid": "Must be a finite number of pixels."}


class BoxInSerializer(serializers.Serializer):
    label_class = serializers.IntegerField(min_value=1, max_value=MAX_ID,
                                           help_text="Id of a label class of the image's project.")
    x = serializers.FloatField(help_text="Left edge in image pixels.", error_messages=PIXELS)
    y = serializers.FloatField(help_text="Top edge in image pixels.", error_messages=PIXELS)
    w = serializers.FloatField(help_text="Width in image pixels, > 0.", error_messages=PIXELS)
    h = serializers.FloatField(help_text="Height in image pixels, > 0.", error_messages=PIXELS)
    source_prediction = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                                 max_value=MAX_ID, help_text="Id of the prediction this box was made from, if any.")

    def to_internal_value(self, data):
        """A box of plain JSON numbers is taken as it is; anything else goes through the fields.

        Every save sends all boxes of the image, and the fields' checks cost about 2 ms per 50 boxes.
        The fast path accepts only what the fields would accept unchanged (ints, finite floats, no
        booleans), so errors and conversions stay the fields' own.
        """
        if isinstance(data, dict) and _is_id(data.get("label_class")) and all(
                _is_finite_number(data.get(name)) for name in ("x", "y", "w", "h")):
            source = data.get("source_prediction")
            if source is None or _is_id(source):
                return {"label_class": data["label_class"], "x": float(data["x"]), "y": float(data["y"]),
                        "w": float(data["w"]), "h": float(data["h"]), "source_prediction": source}
        return super().to_internal_value(data)


def _is_id(value) -> bool:
    return type(value) is int and 1 <= value <= MAX_ID  # not bool, which the fields refuse


def _is_finite_number(value) -> bool:
    # Whole numbers beyond 2**53 are left to the fields: float() would round them.
    return (type(value) is float and math.isfinite(value)) or (type(value) is int and abs(value) <= 2**53)


class BoxesSaveSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The image version the editor loaded.")
    boxes = BoxInSerializer(many=True, max_length=MAX_BOXES_PER_IMAGE, allow_empty=True)
    model_version = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                             max_value=MAX_ID,
                                             help_text="The version whose predictions were shown; default: active.")
    score_threshold = serializers.FloatField(required=False, default=0.0, min_value=0.0, max_value=1.0,
                                             help_text="Predictions below this score were hidden from the reviewer.")
    seconds_spent = serializers.FloatField(required=False, default=0.0, min_value=0.0, max_value=86400.0)


class ImageStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ReviewStatus.choices)
    version = serializers.IntegerField(required=False, min_value=0,
                                       help_text="The image version you looked at; if someone saved since, the "
                                                 "answer is 409 with the image as it is now, and nothing changes.")
    comment = serializers.CharField(required=False, default="", allow_blank=True,
                                    help_text="Why (say, why it goes back): added to the image's comments with the "
                                              "change, for whoever reviews it next. At most 2,000 characters.")


class BulkActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(ACTIONS), help_text="predict (reviewer): a run of the active model; "
                                     "assign, approve, send_back, tag, untag (reviewer); export, delete (manager).")
    images = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                   max_length=MAX_IMAGES, help_text="The images, by id.")
    filter = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False,
                                   help_text="Instead of ids: every image matching these queue filters "
                                             '(the images list\'s query parameters), e.g. {"status": "reviewed"}.')
    comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000,
                                    help_text="With approve or send_back: added to each image's comments.")
    format = serializers.ChoiceField(choices=["coco", "yolo", "voc"], default="coco",
                                     help_text="With export: the layout of the zip.")
    assignee = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID,
                                        help_text="With assign: the member (user id) who gets the unreviewed "
                                                  "images, or null to give them back to everyone.")
    tags = serializers.ListField(child=serializers.CharField(max_length=1000, allow_blank=True), required=False,
                                 default=list, max_length=MAX_TAGS,
                                 help_text="With tag and untag: the tag names (a camera's name, night).")

    def validate(self, data: dict) -> dict:
        if ("images" in data) == ("filter" in data):
            raise serializers.ValidationError({"images": "Give either images or filter."})
        if data["action"] == "assign" and "assignee" not in data:  # a forgotten field must not unassign
            raise serializers.ValidationError({"assignee": "Name the member (a user id), or null for nobody."})
        return data


class BulkResultSerializer(serializers.Serializer):
    action = serializers.CharField()
    matched = serializers.IntegerField(help_text="Images selected.")
    changed = serializers.IntegerField(help_text="Images the action applied to.")
    skipped = serializers.IntegerField(help_text="Selected images it does not apply to (approving an unreviewed "
                                                 "image, say): left as they were.")
    inference_run = serializers.IntegerField(source="inference_run_id", allow_null=True,
                                             help_text="With predict: the run to follow.")
    export = serializers.IntegerField(source="export_id", allow_null=True,
                                      help_text="With export: the job to follow (GET /exports/{id}/), then download.")
    detail = serializers.CharField(source="message", help_text="What happened, in a sentence.")


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, default=None)
    mentions = serializers.SerializerMethodField(help_text="The members this comment names as @username.")

    class Meta:
        model = Comment
        fields = ["id", "author", "text", "created_at", "edited_at", "mentions"]
        read_only_fields = ["id", "author", "created_at", "edited_at", "mentions"]
        extra_kwargs = {"text": {"help_text": "At most 2,000 characters; @username notifies that member."}}

    def get_mentions(self, comment: Comment) -> list[str]:
        return sorted(mention.user.username for mention in comment.mentions.all())


class MemberActivitySerializer(serializers.Serializer):
    user = serializers.IntegerField(source="user_id", help_text="Their id: the images they saved are images?saved_by=")
    username = serializers.CharField()
    role = serializers.CharField(allow_null=True, help_text="Null: no longer a member.")
    saves = serializers.IntegerField(help_text="Box saves in the window.")
    images = serializers.IntegerField(help_text="Distinct images saved.")
    median_seconds = serializers.FloatField(allow_null=True, help_text="Median editor time per save.")
    corrections_per_image = serializers.FloatField(
        allow_null=True, help_text="Boxes moved, relabeled, deleted or added per save of an image with predictions.")
    approved = serializers.IntegerField(help_text="Images this member approved.")
    sent_back = serializers.IntegerField(help_text="Images this member sent back.")
    theirs_approved = serializers.IntegerField(help_text="This member's reviews that someone else approved.")
    theirs_sent_back = serializers.IntegerField(help_text="This member's reviews that someone else sent back.")
    theirs_sent_back_share = serializers.FloatField(allow_null=True)
    last_active = serializers.DateTimeField(allow_null=True)
    assigned_waiting = serializers.IntegerField(help_text="Unreviewed images assigned to them now (any window): "
                                                          "images?assigned_to=<user>&status=unreviewed.")


class BoxVersionSerializer(serializers.Serializer):
    boxes = serializers.ListField(child=serializers.DictField(), help_text=(
        "As the box save takes them: label_class, x, y, w, h, source_prediction."))
    saved_by = serializers.CharField(allow_null=True, help_text="Who saved these boxes; null if they came before "
                                                                "any save (imported or drawn) or the user is gone.")
    saved_at = serializers.DateTimeField(allow_null=True)
    replaced_by = serializers.CharField(allow_null=True, help_text="Whose save replaced them.")
    replaced_at = serializers.DateTimeField()
    left_out = serializers.IntegerField(help_text="Boxes of a class deleted since; they cannot come back.")


class NextImageSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[ReviewStatus.UNREVIEWED, ReviewStatus.REVIEWED], default=ReviewStatus.UNREVIEWED,
        help_text="unreviewed: the most urgent image to review; reviewed: the longest-waiting one to approve (reviewer).")
    skip = serializers.ListField(child=serializers.IntegerField(min_value=1), default=list, max_length=1000,
                                 help_text="Image ids to pass over: the ones you skipped, or just saved.")


class TagSerializer(serializers.ModelSerializer):
    image_count = serializers.IntegerField(read_only=True, help_text="Images with this tag.")

    class Meta:
        model = Tag
        fields = ["id", "name", "image_count", "created_at"]


class TagRenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=1000, help_text="The new name; another tag's name merges the two.")


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False,
                                  help_text="One or more image files (repeat the field).")
    partial = serializers.BooleanField(default=False, help_text="Keep the valid files when some are refused.")
    tags = serializers.ListField(child=serializers.CharField(max_length=1000, allow_blank=True), required=False,
                                 default=list, max_length=MAX_TAGS,
                                 help_text="Tags the images added get (a camera's name, night): repeat the field, "
                                           "or separate names by commas.")


class ZipUploadSerializer(serializers.Serializer):
    archive = serializers.FileField(help_text="A .zip of images; folders are allowed, other files are ignored.")
    partial = serializers.BooleanField(default=False, help_text="Keep the valid images when some are refused.")
    tags = serializers.ListField(child=serializers.CharField(max_length=1000, allow_blank=True), required=False,
                                 default=list, max_length=MAX_TAGS,
                                 help_text="Tags the images added get (a camera's name, night): repeat the field, "
                                           "or separate names by commas.")


class UploadReportSerializer(serializers.Serializer):
    committed = serializers.BooleanField(help_text="False when refused files rolled the whole upload back.")
    added = serializers.ListField(child=serializers.DictField())
    duplicates = serializers.ListField(child=serializers.DictField())
    rejected = serializers.ListField(child=serializers.DictField())
    ignored = serializers.ListField(child=serializers.DictField())
    inference_run = serializers.IntegerField(allow_null=True)
