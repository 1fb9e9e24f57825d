"""Celery entry points of the training app: load by id, call the service."""
from celery import shared_task

from training import execution

# Fine-tuning can take hours on a big snapshot; the soft limit fails the run with a clear error.
SOFT_LIMIT = 6 * 3600


@shared_task(name="training.tasks.training_run_execute", acks_late=True, soft_time_limit=SOFT_LIMIT,
             time_limit=SOFT_LIMIT + 120)
def training_run_execute(run_id: int) -> None:
    execution.training_run_execute(run_id=run_id)
