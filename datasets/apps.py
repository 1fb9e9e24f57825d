from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "datasets"
    verbose_name = "Import and export"

    def ready(self) -> None:
        from datasets.models import DatasetExport, DatasetImport
        from project.file_cleanup import files_go_with_rows

        files_go_with_rows(DatasetExport, DatasetImport)
