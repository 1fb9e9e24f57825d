"""Celery entry points of the review app (the `default` queue): e-mails to members, project deletions."""
import smtplib

from celery import shared_task

from review import notifications, project_deletion


# A mail server that is down or refuses for a while: tried again 1, 2, 4 and 8 minutes later.
@shared_task(name=notifications.SEND_TASK, acks_late=True, autoretry_for=(OSError, smtplib.SMTPException),
             retry_backoff=60, max_retries=4)
def notification_email_send(**kwargs) -> int:
    return notifications.notification_email_send(**kwargs)


@shared_task(name=project_deletion.TASK, acks_late=True)
def project_deletion_execute(run_id: int) -> None:
    """A repeat deletes whatever is left, so a redelivered task finishes the job."""
    project_deletion.project_deletion_execute(run_id=run_id)
