"""Celery entry points of the inference app: load by id, call the service."""
from celery import shared_task

from inference import execution, outcomes


@shared_task(name="inference.tasks.inference_chunk_execute", acks_late=True)
def inference_chunk_execute(chunk_id: int) -> None:
    execution.inference_chunk_execute(chunk_id=chunk_id)


@shared_task(name="inference.tasks.box_outcomes_refresh", acks_late=True)
def box_outcomes_refresh(image_ids: list[int]) -> None:
    """Recomputed from scratch each time: a repeated or redelivered task writes the same rows."""
    outcomes.box_outcomes_refresh(image_ids=image_ids)
