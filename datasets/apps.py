from django.apps import AppConfig
from django.db.models.signals import post_delete


class DatasetsConfig(AppConfig):
    name = "datasets"
    verbose_name = "Import and export"

    def ready(self) -> None:
        from datasets.file_cleanup import job_file_delete
        from datasets.models import DatasetExport, DatasetImport

        for model in (DatasetExport, DatasetImport):
            post_delete.connect(job_file_delete, sender=model, dispatch_uid=f"datasets.{model.__name__}.file_delete")
