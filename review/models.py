"""Projects, their people and classes, images and the human boxes on them (the truth).

`review` is the bottom of the dependency chain (review <- inference <- training), so it holds no
foreign key into the other apps: where a review row names a prediction or a model version it keeps
the id as a plain integer (see `Annotation.source_prediction_id`, `ReviewEvent.model_version_id`).
"""
from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from project.jobs import ACTIVE_STATUSES, JobRun


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    MANAGER = "manager", "Manager"


# Each role can do everything the roles before it can.
ROLE_RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.MANAGER: 3}


class Project(models.Model):
    name = models.CharField(max_length=200, help_text="Shown in the project list.")
    description = models.TextField(blank=True)
    holdout_fraction = models.FloatField(
        default=0.2,
        help_text="Share of images kept out of training to evaluate models (0 to 0.9). "
        "Applies to images uploaded after a change; existing images keep their split.",
    )
    retrain_after_reviews = models.PositiveIntegerField(
        default=0,
        help_text="Start fine-tuning automatically after this many newly reviewed images; 0 turns it off.",
    )
    infer_on_upload = models.BooleanField(
        default=True, help_text="Run the active model on new images as soon as they are uploaded.",
    )
    promote_only_clear_gains = models.BooleanField(
        default=False, help_text="Make a fine-tuned model active only when its gain over the active one is clear: "
        "its mAP higher in at least 95% of resamples of the held-out images (the 90% interval of the gain above "
        "0), not merely higher once. For deployments that take each new active model at once; with few held-out "
        "images, fewer fine-tunes pass.",
    )
    tag_loss_limit = models.FloatField(
        null=True, blank=True, help_text="Keep a fine-tuned model inactive when, on the held-out images of some tag "
        "(a camera, night; tags with at least 10), its mAP is lower than the active model's by more than this, beyond "
        "chance, even if it is better overall. 0 refuses any clear loss; empty: a tag's loss is told, not acted on. "
        "Beyond chance: over paired resamples of the tag's images, with a bar that rises with the number of tags "
        "judged, so that a model that changed nothing is refused by chance at most one time in 20.",
    )
    score_threshold = models.FloatField(
        default=0.5,
        help_text="Predictions scored at least this are the model's answer: shown in the editor, judged in error "
        "review and counted in the review queue's ranking. Set it to the score your deployment keeps boxes at "
        "(each model's threshold page suggests one).",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(holdout_fraction__gte=0) & Q(holdout_fraction__lte=0.9),
                name="project_holdout_fraction_range",
                violation_error_message="The held-out fraction must be between 0 and 0.9.",
            ),
            models.CheckConstraint(
                condition=Q(tag_loss_limit__isnull=True) | (Q(tag_loss_limit__gte=0) & Q(tag_loss_limit__lte=1)),
                name="project_tag_loss_limit_range",
                violation_error_message="The limit on a tag's loss must be between 0 and 1 (mAP), or empty.",
            ),
            models.CheckConstraint(
                condition=Q(score_threshold__gte=0.01) & Q(score_threshold__lte=0.99),
                name="project_score_threshold_range",
                violation_error_message="The review threshold must be between 0.01 and 0.99.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(
        max_length=16, choices=Role.choices, default=Role.ANNOTATOR,
        help_text="annotator: review and edit; reviewer: also approve; manager: also members, models, training.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user"], name="membership_unique_user",
                violation_error_message="This user is already a member of the project.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_classes")
    name = models.CharField(max_length=100)
    colour = models.CharField(max_length=7, default="#e6194b", help_text="Box colour as #rrggbb.", validators=[
        RegexValidator(r"^#[0-9a-fA-F]{6}$", "The colour must look like #1f77b4.")])
    index = models.PositiveIntegerField(
        help_text="Position of the class in the project; snapshots list classes in this order.",
    )

    class Meta:
        ordering = ["project", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"], name="labelclass_unique_name",
                violation_error_message="A label class with this name already exists in the project.",
            ),
            models.UniqueConstraint(fields=["project", "index"], name="labelclass_unique_index"),
            models.CheckConstraint(
                condition=Q(colour__regex=r"^#[0-9a-fA-F]{6}$"), name="labelclass_colour_hex",
                violation_error_message="The colour must look like #1f77b4.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ReviewStatus(models.TextChoices):
    UNREVIEWED = "unreviewed", "Unreviewed"
    REVIEWED = "reviewed", "Reviewed"
    APPROVED = "approved", "Approved"


# Images whose human boxes are the truth: what training, evaluation, exports and error review read.
REVIEWED_STATUSES = (ReviewStatus.REVIEWED, ReviewStatus.APPROVED)


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    HOLDOUT = "holdout", "Holdout"


def image_upload_path(image: Image, filename: str) -> str:
    # Content-addressed: the name says nothing a user typed, so it cannot escape the folder.
    extension = filename.rsplit(".", 1)[-1].lower()
    return f"projects/{image.project_id}/images/{image.content_hash[:2]}/{image.content_hash}.{extension}"


def image_thumbnail_path(image: Image, filename: str) -> str:
    return f"projects/{image.project_id}/thumbnails/{image.content_hash[:2]}/{image.content_hash}.jpg"


class Tag(models.Model):
    """A name for a slice of a project's images: the camera or site they come from, night, rain, a week's
    batch. Images get tags from their import (or watch) and from the queue's bulk actions; the queue filters
    by them and a comparison of two model versions is broken down by them (review/tags.py)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=50)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="tag_unique_name")]

    def __str__(self) -> str:
        return self.name


class Image(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(
        upload_to=image_upload_path, max_length=255,
        help_text="Stored upright (EXIF orientation applied) through Django's storage API.",
    )
    thumbnail = models.FileField(
        upload_to=image_thumbnail_path, max_length=255, blank=True,
        help_text="A small JPEG for the pages that show many images (review/thumbnails.py), made the first time "
        "one is asked for; empty until then, and for an image small enough to be its own thumbnail.",
    )
    original_name = models.CharField(max_length=255, help_text="File name as uploaded; shown, never used as a path.")
    width = models.PositiveIntegerField(help_text="Pixels, after EXIF orientation is applied.")
    height = models.PositiveIntegerField(help_text="Pixels, after EXIF orientation is applied.")
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the uploaded bytes; duplicates are refused.")
    stored_hash = models.CharField(
        max_length=64, blank=True, db_index=True,
        help_text="SHA-256 of the stored (upright, metadata-free) file: what an export holds, so re-importing "
        "an export is recognised as duplicates too.",
    )
    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.UNREVIEWED)
    split = models.CharField(
        max_length=8, choices=Split.choices,
        help_text="Assigned once at upload from the content hash: holdout images are never trained on.",
    )
    version = models.PositiveIntegerField(
        default=1, help_text="Bumped by every save of the boxes; a save naming an older version is refused (409).",
    )
    priority = models.FloatField(
        default=0.0, help_text="Review priority: higher means a human should look sooner. The queue's default order; "
        "a weighted sum of the three parts below (docs/error-review.md).",
    )
    uncertainty = models.FloatField(
        null=True, blank=True, help_text="How unsure the latest model was on this image (0 to 1); empty before inference.",
    )
    disagreement = models.FloatField(
        null=True, blank=True, help_text="How much the latest model's confident boxes differ from the version before "
        "it on this image (0 to 1); empty until two versions predicted it.",
    )
    count_anomaly = models.FloatField(
        null=True, blank=True, help_text="How far the latest model's box count is from the project's usual count of "
        "human boxes per image (0 to 1).",
    )
    inference_error = models.TextField(blank=True, help_text="Why the last inference could not read this image.")
    ranked_by = models.PositiveIntegerField(
        null=True, blank=True, help_text="The number of the model version whose predictions set the scores above "
        "(so they can be worked out again when the project's review threshold changes); empty before inference.",
    )
    correction_count = models.PositiveIntegerField(
        default=0, help_text="Corrections reviewers made on it so far: the sum over its review events, kept by each "
        "save (the queue sorts by it; a sum per image over 100k images took 0.4 s a page).",
    )
    comment_count = models.PositiveIntegerField(
        default=0, help_text="Comments on it, kept by every comment added or deleted: the editor skips the query "
        "when there are none, and the queue shows the count.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    # Two reviewers pressing "Save & next" at once would otherwise both get the most urgent image.
    held_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who has it open in the editor: the queue gives others other images until held_until.",
    )
    held_until = models.DateTimeField(
        null=True, blank=True, help_text="The hold ends here, or when its holder saves, approves or moves on.",
    )
    # A lead splits the work: the assignee's "next image" gives them theirs first, and nobody else's
    # gives it to anyone else. It steers the queue only, like a hold: anyone may still open and save it.
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The member who should review it; other members' next image passes it over.",
    )
    tags = models.ManyToManyField(Tag, related_name="images", blank=True,
                                  help_text="Slices it belongs to (a camera, night): the project's own tags only.")

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "content_hash"], name="image_unique_content",
                violation_error_message="This image is already in the project.",
            ),
            models.CheckConstraint(condition=Q(width__gt=0) & Q(height__gt=0), name="image_positive_size"),
        ]
        indexes = [
            # The review queue: one project, one status, most urgent first.
            models.Index(fields=["project", "status", "-priority", "id"], name="image_queue_idx"),
            # The queue with no status filter (the default page): top of the queue without a sort.
            models.Index(fields=["project", "-priority", "id"], name="image_priority_idx"),
            models.Index(fields=["project", "split", "status"], name="image_split_idx"),
            models.Index(fields=["project", "-created_at"], name="image_newest_idx"),
            models.Index(fields=["project", "-correction_count", "id"], name="image_corrections_idx"),
            # The images reviewed last: what "next image" compares the queue's next ones with (look-alikes).
            models.Index(fields=["project", "-reviewed_at"], name="image_reviewed_idx"),
            # The "uncertainty" sort, never-predicted images last (review/queue.py's uncertainty_rank).
            models.Index(F("project"), Coalesce(F("uncertainty"), Value(-1.0)).desc(), F("id"),
                         name="image_uncertainty_idx"),
        ]

    def __str__(self) -> str:
        return self.original_name

    @property
    def open_by(self) -> str:
        """The username of whoever has it open in the editor now, or ''. Select `held_by` with it."""
        if self.held_by_id is None or self.held_until is None or self.held_until <= timezone.now():
            return ""
        return self.held_by.username


class ImageLook(models.Model):
    """What an image looks like, shrunk to 32 x 32 grey cells (review/look_alikes.py): how *Start reviewing*
    tells a fixed camera's next, unchanged frame from a new scene. Kept apart from Image so that the
    queue's rows stay small; images added before it was kept have none and never look alike."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, primary_key=True, related_name="look")
    cells = models.BinaryField(help_text="LOOK_SIDE x LOOK_SIDE grey levels, row by row.")

    def __str__(self) -> str:
        return f"Look of image {self.image_id}"


class AnnotationSource(models.TextChoices):
    DRAWN = "drawn", "Drawn by a person"
    ACCEPTED = "accepted_prediction", "Accepted prediction"
    EDITED = "edited_prediction", "Edited prediction"
    IMPORTED = "imported", "Imported"


class Annotation(models.Model):
    """A human box: the truth that models are trained and judged on. Coordinates in image pixels."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    label_class = models.ForeignKey(LabelClass, on_delete=models.PROTECT, related_name="annotations")
    x = models.FloatField(help_text="Left edge in image pixels.")
    y = models.FloatField(help_text="Top edge in image pixels.")
    w = models.FloatField(help_text="Width in image pixels, > 0.")
    h = models.FloatField(help_text="Height in image pixels, > 0.")
    source = models.CharField(max_length=24, choices=AnnotationSource.choices, default=AnnotationSource.DRAWN)
    source_prediction_id = models.BigIntegerField(
        null=True, blank=True,
        help_text="Id of the Prediction this box came from. A plain id, not a foreign key: review does not "
        "depend on inference, and the box must outlive a re-run that replaces predictions.",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["image", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(w__gt=0) & Q(h__gt=0) & Q(x__gte=0) & Q(y__gte=0), name="annotation_valid_box",
                violation_error_message="A box needs a positive width and height and must start inside the image.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label_class} at ({self.x:.0f}, {self.y:.0f}, {self.w:.0f}, {self.h:.0f})"


# How ReviewEvent.replaced stores each box it replaced: these Annotation fields, in this order.
REPLACED_BOX_FIELDS = ("label_class_id", "x", "y", "w", "h", "source_prediction_id")

# What a review counts as corrections: every box the reviewer had to change, remove or add.
CORRECTION_KINDS = ("moved", "relabeled", "deleted", "added")


class ReviewEvent(models.Model):
    """One saved review of one image: the product's core metric (corrections per image per version)."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="review_events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    model_version_id = models.BigIntegerField(
        null=True, blank=True, db_index=True,
        help_text="Id of the ModelVersion whose predictions were shown (plain id: review does not depend on inference).",
    )
    accepted = models.PositiveIntegerField(default=0, help_text="Predictions kept as they were.")
    moved = models.PositiveIntegerField(default=0, help_text="Predictions kept but moved or resized.")
    relabeled = models.PositiveIntegerField(default=0, help_text="Predictions kept with another class.")
    deleted = models.PositiveIntegerField(default=0, help_text="Predictions removed.")
    added = models.PositiveIntegerField(default=0, help_text="Boxes drawn that no prediction proposed.")
    seconds_spent = models.FloatField(default=0.0, help_text="Time the editor was open before saving.")
    replaced = models.JSONField(
        null=True, blank=True, editable=False,
        help_text="The human boxes this save replaced, each [label_class_id, x, y, w, h, source_prediction_id], so "
                  "that no earlier version of an image's boxes is lost. Null on saves made before it was kept.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def corrections(self) -> int:
        return sum(getattr(self, kind) for kind in CORRECTION_KINDS)


class StatusChange(models.Model):
    """One approval or send-back: who judged whose review, and when (the team page counts them)."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="status_changes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+",
                             help_text="Who approved or sent back.")
    status = models.CharField(max_length=16, choices=ReviewStatus.choices, help_text="The status it was given.")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Whose saved boxes were judged: the last to save the image before the change.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.image_id} → {self.status}"


class Comment(models.Model):
    """A note on an image between the people who review it: why it was sent back, a question, the answer."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True, help_text="When its author last changed the text.")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["image", "created_at"], name="comment_image_idx")]

    def __str__(self) -> str:
        return self.text[:60]


class Mention(models.Model):
    """A member named as @username in a comment: listed for them ("Mentions of you") until they open the image."""

    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="mentions")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+", help_text="The comment's image.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True, help_text="When they opened the image since.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comment", "user"], name="mention_once_per_comment")]
        indexes = [models.Index(fields=["user", "read_at"], name="mention_user_unread_idx")]


class NotificationSettings(models.Model):
    """Which e-mails a user wants (review/notifications.py). No row: all of them, to the account's address."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings")
    email_mentions = models.BooleanField("when someone names me in a comment", default=True)
    email_send_backs = models.BooleanField("when an image I reviewed is sent back", default=True)
    email_assignments = models.BooleanField("when images are assigned to me", default=True)
    email_jobs = models.BooleanField("when a fine-tune I started ends, or a job I started fails", default=True)
    pending_email = models.EmailField(
        blank=True, help_text="A new address asked for on the account page: it counts once the link e-mailed to it "
        "is opened (review/notifications.py).",
    )

    def __str__(self) -> str:
        return f"notifications of {self.user}"


class ApiToken(models.Model):
    """A user's key for scripts (`Authorization: Token <key>`), stored only as its SHA-256 digest: the
    key is shown once when it is made, and a copy of the database does not hand out API access.
    A fast hash is enough here because keys are 240 random bits, not passwords people choose."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key, in hex.")
    prefix = models.CharField(max_length=8, help_text="The key's first characters, to tell keys apart.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="To within a few minutes.")

    def __str__(self) -> str:
        return f"{self.prefix}… of {self.user}"


class PasswordResetRequest(models.Model):
    """One reset e-mail asked for, kept an hour to throttle them (review/password_resets.py).

    The address is stored only as a digest: anyone may type any address into the reset form.
    """

    address_digest = models.CharField(max_length=64, help_text="SHA-256 of the lower-cased address, in hex.")
    client = models.GenericIPAddressField(null=True, blank=True, help_text="Who asked, as the login throttle sees it.")
    sent = models.BooleanField(default=False, help_text="Whether an e-mail went out (not past a limit).")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["address_digest", "created_at"], name="resetrequest_address_idx"),
                   models.Index(fields=["client", "created_at"], name="resetrequest_client_idx")]

    def __str__(self) -> str:
        return f"reset asked by {self.client} at {self.created_at:%Y-%m-%d %H:%M}"


class ProjectDeletion(JobRun):
    """A project deleted by a worker, its images a chunk at a time (review/project_deletion.py).

    While it is queued or running the project is hidden from everyone (`project_being_deleted`);
    cancelled or failed, the project comes back with the images not yet deleted. The row outlives
    its project (`project` set to NULL) as the record of who deleted what and when.
    """

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="deletions")
    project_name = models.CharField(max_length=200, help_text="The project's name when its deletion was asked for.")

    class Meta(JobRun.Meta):
        constraints = [models.UniqueConstraint(
            fields=["project"], condition=Q(status__in=ACTIVE_STATUSES), name="projectdeletion_one_active",
            violation_error_message="This project is already being deleted.")]

    def __str__(self) -> str:
        return f"Deletion #{self.pk} of {self.project_name}"

    def pending_tasks(self) -> list[tuple[str, list]]:
        return [("review.tasks.project_deletion_execute", [self.pk])]


def project_being_deleted(project_ref: str = "pk") -> Exists:
    """True for a row whose project (the outer query's `project_ref`) has a deletion queued or running.

    Every way into a project goes through review/access.py or the project list, which leave these out.
    """
    return Exists(ProjectDeletion.objects.filter(project_id=OuterRef(project_ref), status__in=ACTIVE_STATUSES))
