"""Celery entry point of the review app (the `default` queue): e-mails to members."""
import smtplib

from celery import shared_task

from review import notifications


# A mail server that is down or refuses for a while: tried again 1, 2, 4 and 8 minutes later.
@shared_task(name=notifications.SEND_TASK, acks_late=True, autoretry_for=(OSError, smtplib.SMTPException),
             retry_backoff=60, max_retries=4)
def notification_email_send(**kwargs) -> int:
    return notifications.notification_email_send(**kwargs)
