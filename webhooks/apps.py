from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from project.jobs import job_finished
        from review.signals import label_class_renamed, members_mentioned
        from webhooks.services import job_finished_send, label_class_renamed_send, members_mentioned_send

        # Every background job reports its end through project.jobs.job_finish; this turns it into an event.
        job_finished.connect(job_finished_send, dispatch_uid="webhooks.job_finished_send")
        members_mentioned.connect(members_mentioned_send, dispatch_uid="webhooks.members_mentioned_send")
        label_class_renamed.connect(label_class_renamed_send, dispatch_uid="webhooks.label_class_renamed_send")
