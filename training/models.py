"""Frozen training data (DatasetSnapshot) and fine-tuning jobs (TrainingRun)."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from inference.models import ModelVersion
from project.jobs import JobRun, JobStatus
from review.models import Project


def checkpoint_storage_name(project_id: int, run_id: int) -> str:
    """Where a training run keeps its last epoch's checkpoint, to resume from after a lost worker."""
    return f"projects/{project_id}/training/run-{run_id}-checkpoint.pt"


def snapshot_upload_path(snapshot: DatasetSnapshot, filename: str) -> str:
    return f"projects/{snapshot.project_id}/snapshots/{snapshot.content_hash}.json"


class DatasetSnapshot(models.Model):
    """The reviewed labels of a project frozen as COCO JSON: exactly what one model learned from."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="snapshots")
    file = models.FileField(upload_to=snapshot_upload_path, max_length=255, help_text="COCO JSON in storage.")
    content_hash = models.CharField(
        max_length=64, help_text="SHA-256 of the COCO JSON: unchanged labels give the same hash (and the same row).",
    )
    train_image_ids = models.JSONField(default=list)
    holdout_image_ids = models.JSONField(default=list)
    class_names = models.JSONField(default=list, help_text="Category names in model class-id order.")
    image_count = models.PositiveIntegerField(default=0)
    annotation_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "content_hash"], name="snapshot_unique_content")]

    def __str__(self) -> str:
        return f"snapshot {self.content_hash[:10]} ({self.image_count} images)"


class TrainingRun(JobRun):
    """Fine-tune from the active version on a snapshot; always yields a version, promoted only if better."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    # RESTRICT, not PROTECT: a snapshot a run used cannot be deleted on its own, but deleting the
    # whole project (which cascades to both) still works. Empty until the worker has frozen the labels.
    snapshot = models.ForeignKey(
        DatasetSnapshot, null=True, blank=True, on_delete=models.RESTRICT, related_name="training_runs",
        help_text="The reviewed labels it trains on, frozen by the worker when the run starts.",
    )
    base_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The active version when the run started; empty means training from scratch.",
    )
    result_version = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_run",
        help_text="The version this run produced (lineage: result_version.training_run.snapshot).",
    )
    architecture = models.CharField(max_length=64)
    params = models.JSONField(default=dict, help_text="epochs, batch_size, learning_rate, image_size, seed.")
    epoch = models.PositiveIntegerField(default=0, help_text="Epochs completed.")
    loss_history = models.JSONField(default=list, help_text="[{step, epoch, loss}] as training goes.")
    eval_history = models.JSONField(default=list, help_text="[{epoch, map, ap50}] on the holdout images.")
    comparison = models.JSONField(
        default=dict, blank=True, help_text="New vs active version on the same holdout images, and whether it was promoted.",
    )
    images_per_second = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=64, blank=True)

    class Meta(JobRun.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(status__in=["queued", "running"]), name="trainingrun_one_active",
                violation_error_message="This project already has a training run in progress.",
            ),
        ]

    webhook_event = "training_run.finished"
    notify_every_end = True  # minutes to hours of GPU time: its starter wants to hear how it went

    def notification_summary(self) -> str:
        comparison = self.comparison if isinstance(self.comparison, dict) else {}
        if self.status != JobStatus.SUCCEEDED or not comparison:
            return super().notification_summary()
        new = comparison.get("new") or {}
        verdict = "promoted: it is the active model now" if comparison.get("promoted") else "kept, not promoted"
        return f"{self} succeeded: v{new.get('version')} {verdict} ({comparison.get('reason', '')})."

    @classmethod
    def storage_names_in_use(cls) -> list[str]:
        """Checkpoints of runs that may still resume (training/execution.py keeps exactly those)."""
        runs = cls.objects.exclude(status__in=[JobStatus.SUCCEEDED, JobStatus.CANCELLED]).values_list("project_id", "pk")
        return [checkpoint_storage_name(project_id, pk) for project_id, pk in runs]

    def __str__(self) -> str:
        return f"Training #{self.pk}"

    def webhook_data(self) -> dict:
        promoted = bool(self.comparison.get("promoted")) if isinstance(self.comparison, dict) else False
        return {**super().webhook_data(), "api": f"/api/v1/training-runs/{self.pk}/",
                "result_version": self.result_version_id, "promoted": promoted,
                "holdout": self.eval_history[-1] if self.eval_history else None}

    def pending_tasks(self) -> list[tuple[str, list]]:
        return [("training.tasks.training_run_execute", [self.pk])]
