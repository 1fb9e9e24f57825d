from django.contrib import admin

from project.admin_actions import cancel_runs
from project.admin_base import JobRunAdmin, ViewOnlyAdmin
from training.models import DatasetSnapshot, TrainingRun
from training.services import training_run_cancel


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Frozen by fine-tuning or through the API (content-hashed); one a training run used is kept with it."""

    list_display = ["id", "project", "content_hash", "image_count", "annotation_count", "created_at"]
    list_select_related = ["project"]
    exclude = ["file", "train_image_ids", "holdout_image_ids"]  # the file through the API; thousands of ids
    readonly_fields = ["stored_file"]

    @admin.display(description="File")
    def stored_file(self, snapshot: DatasetSnapshot) -> str:
        return snapshot.file.name


@admin.register(TrainingRun)
class TrainingRunAdmin(JobRunAdmin):
    """Started from the project page, the models page, the API, `manage.py finetune` or the projects' action."""

    list_display = ["id", "project", "architecture", "status", "percent", "epoch", "base_version", "result_version",
                    "created_at"]
    list_filter = ["status", "architecture"]
    list_select_related = ["project", "base_version", "result_version"]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected runs")
    def cancel(self, request, runs):
        cancel_runs(self, request, runs, training_run_cancel)
