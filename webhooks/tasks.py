"""Celery entry point of the webhooks app (the `default` queue): one attempt, then a later one if it failed."""
from celery import shared_task

from webhooks import services


@shared_task(name="webhooks.tasks.webhook_deliveries_sweep")
def webhook_deliveries_sweep() -> list[int]:
    """Run by Celery beat every JOB_SWEEP_SECONDS: deliveries whose task the broker lost are sent again."""
    return services.deliveries_stale_resend()


@shared_task(name="webhooks.tasks.webhook_delivery_send", acks_late=True)
def webhook_delivery_send(delivery_id: int) -> None:
    countdown = services.delivery_attempt(delivery_id=delivery_id)
    if countdown is not None:
        services.delivery_send_later(delivery_id, countdown=countdown)
