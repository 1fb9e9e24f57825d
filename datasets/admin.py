from django.contrib import admin

from datasets.models import BucketObject, DatasetExport, DatasetImport
from datasets.services import dataset_job_cancel
from project.admin_actions import cancel_runs
from project.admin_base import ViewOnlyAdmin


class DatasetJobAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Jobs are started from the project's Import & export page, the API or the commands; here they are watched."""

    list_filter = ["status"]
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

    list_display = ["url", "project", "etag", "imported_at"]
    list_filter = ["project"]
    search_fields = ["url"]
    show_full_result_count = False
