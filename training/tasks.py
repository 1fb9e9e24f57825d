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


@shared_task(name="training.tasks.training_after_review", acks_late=True)
def training_after_review(project_id: int) -> None:
    """The auto-retrain rule fired on a saved review: check it again and start the run (on the default queue:
    freezing the labels is database work, not a GPU's)."""
    from review.models import Project
    from training.services import training_after_review as start_if_due

    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        start_if_due(project=project)
