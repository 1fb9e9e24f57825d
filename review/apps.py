from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = "Review"

    def ready(self) -> None:
        from project import checks  # noqa: F401  (registers the deployment checks)
        from review import notifications
        from review.signals import members_mentioned

        members_mentioned.connect(notifications.mentioned_notify, dispatch_uid="review.notifications.mentioned")
