from django.contrib import admin

from training.models import DatasetSnapshot, TrainingRun


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "content_hash", "image_count", "annotation_count", "created_at"]
    list_select_related = ["project"]
    raw_id_fields = ["project", "created_by"]
    readonly_fields = ["content_hash", "train_image_ids", "holdout_image_ids", "class_names"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "architecture", "status", "percent", "epoch", "base_version", "result_version",
                    "created_at"]
    list_filter = ["status", "architecture"]
    list_select_related = ["project", "base_version", "result_version"]
    raw_id_fields = ["project", "snapshot", "base_version", "result_version", "requested_by"]
    readonly_fields = ["loss_history", "eval_history", "comparison", "celery_task_id", "started_at", "finished_at"]
