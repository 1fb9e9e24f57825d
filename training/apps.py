from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from project.file_cleanup import files_go_with_rows
        from training.models import DatasetSnapshot

        files_go_with_rows(DatasetSnapshot)
