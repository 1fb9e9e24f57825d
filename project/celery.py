"""The Celery app: configured from Django settings (CELERY_ namespace), tasks found in each app."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="project.stale_runs_sweep")
def stale_runs_sweep() -> dict:
    """Run by Celery beat every JOB_SWEEP_SECONDS (see project/sweeper.py)."""
    from project.sweeper import stale_runs_sweep as sweep

    return sweep()
