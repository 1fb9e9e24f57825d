"""The Celery app: configured from Django settings (CELERY_ namespace), tasks found in each app."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Queues whose tasks run a model. Their task modules import torch only inside the task, so that a
# `default`-queue worker (imports, exports, error review) stays small.
MODEL_QUEUES = {"inference", "training"}


@signals.worker_init.connect
def model_libraries_preload(sender, **kwargs) -> None:
    """A worker that consumes a model queue imports torch and torchvision once, before its pool forks.

    Otherwise every pool process would pay the import (seconds) inside its first task. Importing
    torch does not start CUDA, so the forked processes can still use the GPU.
    """
    if MODEL_QUEUES & set(sender.app.amqp.queues.consume_from):
        import inference.detector  # noqa: F401
        import training.trainer  # noqa: F401


@app.task(name="project.stale_runs_sweep")
def stale_runs_sweep() -> dict:
    """Run by Celery beat every JOB_SWEEP_SECONDS (see project/sweeper.py)."""
    from project.sweeper import stale_runs_sweep as sweep

    return sweep()
