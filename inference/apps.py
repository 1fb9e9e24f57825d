from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from inference.services import predictions_of_images_delete
        from review.signals import images_deleting

        images_deleting.connect(predictions_of_images_delete, dispatch_uid="inference.predictions_of_images_delete")
