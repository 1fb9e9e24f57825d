"""The model registry (ModelVersion), the boxes models propose (Prediction) and inference jobs."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from project.jobs import ACTIVE_STATUSES, JobRun
from review.models import Annotation, Image, LabelClass, Project


class ModelSource(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded base weights"
    TRAINED = "trained", "Fine-tuned here"
    EXTERNAL = "external", "External (imported predictions only)"
    COCO = "coco", "torchvision's COCO weights"


def weights_upload_path(version: ModelVersion, filename: str) -> str:
    return f"projects/{version.project_id}/models/v{version.number}-{timezone.now():%Y%m%d%H%M%S}.safetensors"


class ModelVersion(models.Model):
    """One set of weights for one project. Lineage: `parent` and, for trained ones, `training_run.snapshot`.

    The snapshot link lives on TrainingRun (training depends on inference, never the reverse).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField(help_text="v1, v2, ... within the project.")
    architecture = models.CharField(max_length=64, help_text="A name from inference.detector.ARCHITECTURES.")
    weights = models.FileField(
        upload_to=weights_upload_path, max_length=255, blank=True,
        help_text="safetensors state dict; empty for external models that only brought predictions.",
    )
    class_names = models.JSONField(
        default=list, help_text="Label class names in model class-id order (id 1 is the first name; 0 is background).",
    )
    source = models.CharField(max_length=16, choices=ModelSource.choices, default=ModelSource.UPLOADED)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children",
        help_text="The version whose weights this one started from.",
    )
    is_active = models.BooleanField(
        default=False, help_text="The version that predicts new images and starts the next fine-tune; one per project.",
    )
    metrics = models.JSONField(
        default=dict, blank=True,
        help_text="Holdout evaluation: map, ap50, per_class, holdout_images and the snapshot hash it was measured on.",
    )
    note = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="modelversion_unique_number"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True), name="modelversion_one_active",
                violation_error_message="A project has at most one active model version.",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.number} ({self.architecture})"

    def webhook_data(self) -> dict:
        """What a webhook receiver (a deployment, say) is told about a version that became active."""
        metrics = ({key: self.metrics.get(key) for key in ("map", "ap50", "holdout_images", "operating_point")}
                   if self.metrics else {})
        return {"id": self.pk, "number": self.number, "architecture": self.architecture,
                "class_names": self.class_names, "source": self.source, "parent": self.parent_id,
                "metrics": metrics, "created_at": self.created_at.isoformat(),
                "api": f"/api/v1/model-versions/{self.pk}/", "weights": f"/api/v1/model-versions/{self.pk}/weights/"}

    @property
    def map(self) -> float | None:
        return self.metrics.get("map")


class Prediction(models.Model):
    """A model box. Never edited and never copied over a human box; a new version writes new rows."""

    # No index of its own: prediction_image_version_idx leads with it, and every batch of 1,600
    # inserted rows paid for both.
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="predictions", db_index=False)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="predictions")
    x = models.FloatField(help_text="Left edge in image pixels.")
    y = models.FloatField(help_text="Top edge in image pixels.")
    w = models.FloatField(help_text="Width in image pixels.")
    h = models.FloatField(help_text="Height in image pixels.")
    score = models.FloatField(help_text="Model confidence, 0 to 1.")

    class Meta:
        ordering = ["image", "-score"]
        constraints = [
            models.CheckConstraint(
                condition=Q(w__gt=0) & Q(h__gt=0) & Q(score__gte=0) & Q(score__lte=1), name="prediction_valid_box",
            ),
        ]
        indexes = [models.Index(fields=["image", "model_version"], name="prediction_image_version_idx")]

    def __str__(self) -> str:
        return f"{self.label_class} {self.score:.2f}"


class OutcomeKind(models.TextChoices):
    TRUE_POSITIVE = "tp", "Correct"
    FALSE_POSITIVE = "fp", "False positive"
    WRONG_CLASS = "wrong_class", "Wrong class"
    POOR_LOCALISATION = "poor_localisation", "Poor localisation"
    MISSED = "missed", "Missed"


class BoxOutcome(models.Model):
    """How one box of a reviewed image fared for one model version, judged against the human boxes.

    One row per confident prediction (correct, false positive, wrong class, poor localisation) and
    one per human box that no confident prediction found (missed). Recomputed whenever the image's
    review is saved and whenever the version's predictions for it are written (inference/outcomes.py).
    """

    # Neither has an index of its own: the two in Meta.indexes lead with them.
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="box_outcomes", db_index=False)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="box_outcomes",
                                      db_index=False)
    kind = models.CharField(max_length=20, choices=OutcomeKind.choices)
    prediction = models.ForeignKey(Prediction, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="The human box missed, matched, or sat on (wrong class, poor localisation).",
    )
    label_class = models.ForeignKey(
        LabelClass, on_delete=models.CASCADE, related_name="+", help_text="The prediction's class, or the missed box's.",
    )
    x = models.FloatField()
    y = models.FloatField()
    w = models.FloatField()
    h = models.FloatField()
    score = models.FloatField(null=True, blank=True, help_text="The prediction's score; empty for a missed box.")
    iou = models.FloatField(default=0.0, help_text="Largest overlap of the prediction with any human box.")

    class Meta:
        ordering = ["image", "model_version", "id"]
        indexes = [
            models.Index(fields=["model_version", "kind"], name="boxoutcome_version_kind_idx"),
            models.Index(fields=["image", "model_version"], name="boxoutcome_image_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.label_class} on image {self.image_id}"


class SuspectKind(models.TextChoices):
    POSSIBLY_MISSED = "possibly_missed", "Possibly missed by the reviewer"
    POSSIBLY_SPURIOUS = "possibly_spurious", "Possibly a spurious box"
    CLASS_SWAP = "class_swap", "Possibly the wrong class"
    LOCATION = "location", "Possibly misplaced"


class SuspectStatus(models.TextChoices):
    OPEN = "open", "Open"
    CONFIRMED = "confirmed", "Confirmed: the labels were fixed"
    DISMISSED = "dismissed", "Dismissed: the labels were right"


class SuspectedError(models.Model):
    """A reviewed image whose human labels a model confidently disagrees with: worth a second look.

    Derived from the newest version's BoxOutcomes (inference/suspects.py). Open ones are re-derived
    whenever outcomes change; resolved ones are kept, to measure how often each kind was right.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="suspected_errors")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=SuspectKind.choices)
    status = models.CharField(max_length=12, choices=SuspectStatus.choices, default=SuspectStatus.OPEN)
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    x = models.FloatField()
    y = models.FloatField()
    w = models.FloatField()
    h = models.FloatField()
    score = models.FloatField(null=True, blank=True, help_text="The model's score; empty for a spurious-box suspect.")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-score", "id"]
        indexes = [models.Index(fields=["image", "status"], name="suspect_image_status_idx"),
                   models.Index(fields=["status", "kind"], name="suspect_status_kind_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on image {self.image_id}"


class InferenceScope(models.TextChoices):
    ALL = "all", "All images"
    UNREVIEWED = "unreviewed", "Unreviewed images"
    IDS = "ids", "Chosen images"
    NEW_UPLOADS = "new_uploads", "New uploads"


class InferenceRun(JobRun):
    """Run one model version over a set of images, split into chunk tasks that any worker may take."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="inference_runs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="inference_runs")
    scope = models.CharField(max_length=16, choices=InferenceScope.choices, default=InferenceScope.UNREVIEWED)
    image_ids = models.JSONField(
        default=list, blank=True, help_text="The images of the run, fixed when it was created (progress_total of them).",
    )
    chunk_size = models.PositiveIntegerField(default=512, help_text="Images per chunk task.")
    chunks_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    predictions_written = models.PositiveIntegerField(default=0)
    images_failed = models.PositiveIntegerField(default=0, help_text="Images that could not be read; see Image.inference_error.")
    images_per_second = models.FloatField(null=True, blank=True, help_text="Throughput of the whole run.")
    device = models.CharField(max_length=64, blank=True, help_text="Where the model ran, e.g. cuda:0 or cpu.")

    class Meta(JobRun.Meta):
        indexes = [models.Index(fields=["project", "status"], name="inferencerun_project_idx")]

    webhook_event = "inference_run.finished"

    def __str__(self) -> str:
        return f"Inference #{self.pk} with {self.model_version}"

    def webhook_data(self) -> dict:
        return {**super().webhook_data(), "api": f"/api/v1/inference-runs/{self.pk}/",
                "model_version": self.model_version_id, "predictions_written": self.predictions_written,
                "images_failed": self.images_failed}

    def pending_tasks(self) -> list[tuple[str, list]]:
        return [("inference.tasks.inference_chunk_execute", [pk])
                for pk in self.chunks.filter(finished=False).values_list("pk", flat=True)]

    def holders_release(self) -> None:
        super().holders_release()
        self.chunks.filter(finished=False).update(held_by_task="")  # each chunk is held by its own message


class RerankRun(JobRun):
    """The project's queue ranked and its reviewed images judged again at a new review threshold (inference/rerank.py).

    A later threshold change supersedes a rerank still going: it is cancelled, and the new one does the work.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rerank_runs")
    score_threshold = models.FloatField(help_text="The review threshold this run ranks and judges at.")
    images_ranked = models.PositiveIntegerField(default=0, help_text="Unreviewed images ranked again.")
    images_judged = models.PositiveIntegerField(default=0, help_text="Reviewed images whose boxes were judged again.")

    class Meta(JobRun.Meta):
        indexes = [models.Index(fields=["project", "status"], name="rerankrun_project_idx")]

    def __str__(self) -> str:
        return f"Rerank #{self.pk} at ≥ {self.score_threshold:.4g}"

    def pending_tasks(self) -> list[tuple[str, list]]:
        return [("inference.tasks.rerank_run_execute", [self.pk])]


class ModelVersionDeletion(JobRun):
    """A model version deleted by a worker, its predictions a chunk at a time (inference/version_deletion.py).

    While it is queued or running the version cannot be made active, predicted with or exported;
    cancelled or failed, the version stays with the predictions not yet deleted. The row outlives the
    version (`model_version` set to NULL) as the record of who deleted which version and when.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_version_deletions")
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="deletions")
    version_number = models.PositiveIntegerField(help_text="The version's number when its deletion was asked for.")

    class Meta(JobRun.Meta):
        constraints = [models.UniqueConstraint(
            fields=["model_version"], condition=Q(status__in=ACTIVE_STATUSES), name="versiondeletion_one_active",
            violation_error_message="This version is already being deleted.")]

    def __str__(self) -> str:
        return f"Deletion #{self.pk} of v{self.version_number}"

    def pending_tasks(self) -> list[tuple[str, list]]:
        return [("inference.tasks.model_version_deletion_execute", [self.pk])]


class ModelExportFormat(models.TextChoices):
    ONNX = "onnx", "ONNX (onnxruntime, TensorRT, OpenVINO)"


def model_export_path(export: ModelExport, filename: str) -> str:
    return f"projects/{export.project_id}/model-exports/v{export.version_number}-{export.pk}.{export.format}"


class ModelExport(JobRun):
    """A model version written as a file a deployment runs without this app or torch (inference/model_exports.py).

    An `inference`-queue worker exports it and checks the file against the model on some of the
    project's images; a version's weights never change, so one export per version, format and class
    names serves every later download.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_exports")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="exports")
    version_number = models.PositiveIntegerField(help_text="The version's number, for the file's name.")
    format = models.CharField(max_length=8, choices=ModelExportFormat.choices, default=ModelExportFormat.ONNX)
    class_names = models.JSONField(default=list, help_text="The class names the file carries, as they were then.")
    file = models.FileField(upload_to=model_export_path, max_length=255, blank=True, help_text="The finished file.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    check_result = models.JSONField(
        default=dict, blank=True, help_text="The file's boxes against the model's on the same images "
        "(inference.onnx_export.OnnxCheck): images, boxes, matched, max_box_difference, max_score_difference.")

    class Meta(JobRun.Meta):
        constraints = [models.UniqueConstraint(
            fields=["model_version", "format"], condition=Q(status__in=ACTIVE_STATUSES), name="modelexport_one_active",
            violation_error_message="This version is already being exported in that format.")]

    def __str__(self) -> str:
        return f"Export #{self.pk} of v{self.version_number} as {self.get_format_display().split()[0]}"

    def pending_tasks(self) -> list[tuple[str, list]]:
        return [("inference.tasks.model_export_execute", [self.pk])]


def version_being_deleted(version_id: int | None) -> bool:
    return version_id is not None and ModelVersionDeletion.objects.filter(
        model_version_id=version_id, status__in=ACTIVE_STATUSES).exists()


class InferenceChunk(models.Model):
    """One slice of an InferenceRun: a unit of work a worker takes, retries and finishes exactly once."""

    run = models.ForeignKey(InferenceRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    image_ids = models.JSONField(default=list)
    attempts = models.PositiveSmallIntegerField(default=0)
    finished = models.BooleanField(default=False)
    held_by_task = models.CharField(max_length=64, blank=True, help_text="As JobRun.held_by_task, for this chunk.")

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="inferencechunk_unique_number")]
