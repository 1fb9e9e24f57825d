"""Celery entry points of the inference app: load by id, call the service."""
from celery import shared_task

from inference import execution


@shared_task(name="inference.tasks.inference_chunk_execute", acks_late=True)
def inference_chunk_execute(chunk_id: int) -> None:
    execution.inference_chunk_execute(chunk_id=chunk_id)
