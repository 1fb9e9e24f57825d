"""Celery entry points of the inference app: load by id, call the service.

The execution modules (torch, torchvision, onnx) are imported inside the tasks, so a worker of the `default`
queue, which runs only box_outcomes_refresh, rerank_run_execute and model_version_deletion_execute
here, never loads torch; a worker that consumes the `inference` queue imports it once at start
(project/celery.py).
"""
from celery import shared_task

from inference import model_exports, outcomes, rerank, version_deletion


@shared_task(name="inference.tasks.inference_chunk_execute", acks_late=True)
def inference_chunk_execute(chunk_id: int) -> None:
    from inference import execution

    execution.inference_chunk_execute(chunk_id=chunk_id)


@shared_task(name="inference.tasks.box_outcomes_refresh", acks_late=True)
def box_outcomes_refresh(image_ids: list[int]) -> None:
    """Recomputed from scratch each time: a repeated or redelivered task writes the same rows."""
    outcomes.box_outcomes_refresh(image_ids=image_ids)


@shared_task(name="inference.tasks.rerank_run_execute", acks_late=True)
def rerank_run_execute(run_id: int) -> None:
    """After the project's review threshold changed; worked out from scratch, so a repeat writes the same."""
    rerank.rerank_run_execute(run_id=run_id)


@shared_task(name="inference.tasks.model_version_deletion_execute", acks_late=True)
def model_version_deletion_execute(run_id: int) -> None:
    """A repeat deletes whatever is left, so a redelivered task finishes the job."""
    version_deletion.model_version_deletion_execute(run_id=run_id)


@shared_task(name="inference.tasks.model_export_execute", acks_late=True)
def model_export_execute(run_id: int) -> None:
    """A repeat exports again from the weights, which never change: the same file."""
    model_exports.model_export_execute(run_id=run_id)
