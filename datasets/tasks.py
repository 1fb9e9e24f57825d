"""Celery entry points of the datasets app (queue `default`): load by id, call the execution module."""
from celery import shared_task

from datasets import execution, watches


@shared_task(name="datasets.tasks.dataset_import_execute", acks_late=True)
def dataset_import_execute(job_id: int) -> None:
    execution.dataset_import_execute(job_id=job_id)


@shared_task(name="datasets.tasks.dataset_export_execute", acks_late=True)
def dataset_export_execute(job_id: int) -> None:
    execution.dataset_export_execute(job_id=job_id)


@shared_task(name="datasets.tasks.bucket_watches_run")
def bucket_watches_run() -> list[int]:
    """Run by Celery beat every JOB_SWEEP_SECONDS: the imports of the bucket prefixes that are due."""
    return watches.bucket_watches_run()
