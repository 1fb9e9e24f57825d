from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from inference.models import ModelExport
        from inference.services import class_names_follow_rename, predictions_of_images_delete
        from project.file_cleanup import files_go_with_rows
        from review.signals import images_deleting, label_class_renamed

        files_go_with_rows(ModelExport)  # a version's deletion takes its exports by cascade

        images_deleting.connect(predictions_of_images_delete, dispatch_uid="inference.predictions_of_images_delete")
        label_class_renamed.connect(class_names_follow_rename, dispatch_uid="inference.class_names_follow_rename")
