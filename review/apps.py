from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = "Review"

    def ready(self) -> None:
        from project import checks  # noqa: F401  (registers the deployment checks)
        from project.jobs import job_finished
        from review import notifications
        from review.signals import members_mentioned

        members_mentioned.connect(notifications.mentioned_notify, dispatch_uid="review.notifications.mentioned")
        job_finished.connect(notifications.job_finished_notify, dispatch_uid="review.notifications.job_finished")
