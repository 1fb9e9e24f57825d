from django.contrib import admin

from project.admin_actions import cancel_runs
from training.models import DatasetSnapshot, TrainingRun
from training.services import training_run_cancel


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "content_hash", "image_count", "annotation_count", "created_at"]
    list_select_related = ["project"]
    raw_id_fields = ["project", "created_by"]
    exclude = ["file"]  # no widget: media has no public URL; download through the API
    readonly_fields = ["stored_file", "content_hash", "train_image_ids", "holdout_image_ids", "class_names"]

    @admin.display(description="File")
    def stored_file(self, snapshot: DatasetSnapshot) -> str:
        return snapshot.file.name


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "architecture", "status", "percent", "epoch", "base_version", "result_version",
                    "created_at"]
    list_filter = ["status", "architecture"]
    list_select_related = ["project", "base_version", "result_version"]
    raw_id_fields = ["project", "snapshot", "base_version", "result_version", "requested_by"]
    readonly_fields = ["loss_history", "eval_history", "comparison", "celery_task_id", "held_by_task", "started_at", "finished_at"]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected runs")
    def cancel(self, request, runs):
        cancel_runs(self, request, runs, training_run_cancel)
