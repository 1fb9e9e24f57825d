from django.contrib import admin

from datasets.models import BucketObject, BucketWatch, DatasetExport, DatasetImport
from datasets.services import dataset_job_cancel
from datasets.watches import bucket_watch_delete
from project.admin_actions import cancel_runs
from project.admin_base import JobRunAdmin, ViewOnlyAdmin


class DatasetJobAdmin(JobRunAdmin):
    """Jobs are started from the project's Import & export page, the API or the commands; here they are watched."""

    list_select_related = ["project"]
    exclude = ["file"]  # no widget: media has no public URL; download exports through the API
    actions = ["cancel"]

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request, jobs):
        cancel_runs(self, request, jobs, dataset_job_cancel)


@admin.register(DatasetImport)
class DatasetImportAdmin(DatasetJobAdmin):
    list_display = ["id", "project", "original_name", "detected_format", "status", "percent", "created_at"]


@admin.register(DatasetExport)
class DatasetExportAdmin(DatasetJobAdmin):
    list_display = ["id", "project", "source", "format", "status", "percent", "image_count", "box_count", "created_at"]


@admin.register(BucketObject)
class BucketObjectAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """The bucket objects each project's imports have read; delete rows to have the next import read them again."""

    list_display = ["url", "project", "etag", "frame_every", "imported_at"]
    list_filter = ["project"]
    search_fields = ["url"]
    show_full_result_count = False


@admin.register(BucketWatch)
class BucketWatchAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Watched prefixes are added on the project's Import & export page or through the API (which check them
    against IMPORT_BUCKETS); here an operator sees them and stops one (delete)."""

    list_display = ["source_url", "project", "every_minutes", "frame_every", "skip_look_alikes", "next_run_at",
                    "last_import", "last_error"]
    list_select_related = ["project", "last_import"]
    search_fields = ["source_url", "project__name"]

    def delete_model(self, request, watch):
        bucket_watch_delete(watch=watch)

    def delete_queryset(self, request, watches):
        for watch in watches:
            bucket_watch_delete(watch=watch)
