"""Fine-tuning through a real `celery worker`: a killed worker's run resumes from its last epoch."""
import os
import signal

import pytest

from project.jobs import JobStatus
from tests.factories import add_images, add_model_version, make_project
from tests.integration.conftest import wait_for
from tests.training.test_services import review_with_truth
from training.models import TrainingRun
from training.services import training_run_start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_killed_training_resumes_from_the_last_epoch(start_worker, broker):
    if broker["url"].startswith("redis"):
        pytest.skip("the redelivery path is broker-independent and covered for Redis by the inference test")
    project = make_project(holdout_fraction=0.3)
    review_with_truth(add_images(project, 12, size=96))
    base = add_model_version(project)
    worker = start_worker()
    run = training_run_start(project=project, user=None, params={"epochs": 4, "batch_size": 4})
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).epoch >= 1, timeout=180, message="the first epoch")
    os.kill(worker.child_pids()[0], signal.SIGKILL)
    run = wait_for(lambda: (r := TrainingRun.objects.get(pk=run.pk)).is_finished and r, timeout=300,
                   message="the resumed run to finish")
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.attempts == 2
    assert "resumes after epoch" in worker.log()
    # Resumed, not restarted: every step appears once and epochs were evaluated once each.
    steps = [row["step"] for row in run.loss_history]
    assert steps == list(range(1, run.progress_total + 1))
    assert [row["epoch"] for row in run.eval_history] == [1, 2, 3, 4]
    base.refresh_from_db()
    assert run.result_version.parent == base
