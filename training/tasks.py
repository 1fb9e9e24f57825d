"""Celery entry points of the training app: load by id, call the service.

The execution module (torch) is imported inside the task, so a worker that does not consume the
`training` queue never loads torch (project/celery.py preloads it where it does).
"""
from celery import shared_task

# Fine-tuning can take hours on a big snapshot; the soft limit fails the run with a clear error.
SOFT_LIMIT = 6 * 3600


@shared_task(name="training.tasks.training_run_execute", acks_late=True, soft_time_limit=SOFT_LIMIT,
             time_limit=SOFT_LIMIT + 120)
def training_run_execute(run_id: int) -> None:
    from training import execution

    execution.training_run_execute(run_id=run_id)
