"""A real `celery worker` keeps its row: its queues, the task it runs, and the row gone when it stops cleanly."""
import pytest

from inference.models import InferenceChunk
from inference.services import inference_run_create
from tests.factories import add_images, add_model_version, make_project
from tests.integration.conftest import wait_for
from training.models import TrainingRun
from workers.models import Worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("broker", ["filesystem"], indirect=True)  # the row is written to the database, not the broker
def test_a_worker_says_its_queues_and_its_task_and_goes_when_it_stops(start_worker, settings):
    settings.JOB_WAIT_NOTICE_SECONDS = 0
    project = make_project()
    add_images(project, 120, size=160)  # a chunk that runs for seconds: several half-second beats see it
    add_model_version(project)
    training = TrainingRun.objects.create(project=project)  # a queue this worker does not consume
    worker = start_worker(queues="default,inference", INFERENCE_CPU_BATCH_SIZE="1", WORKER_BEAT_SECONDS="0.5")
    row = wait_for(lambda: Worker.objects.filter(name=worker.node).first(), timeout=30, message="the worker's row")
    assert (row.queues, row.concurrency, row.tasks, row.is_alive) == (["default", "inference"], 1, [], True)
    assert row.pid == worker.process.pid

    run = inference_run_create(project=project, user=None, scope="all")
    chunk = InferenceChunk.objects.get(run=run)
    row = wait_for(lambda: next((w for w in Worker.objects.filter(name=worker.node) if w.tasks), None),
                   timeout=60, interval=0.1, message="a beat that shows the running chunk")
    [task] = row.tasks
    assert (task["name"], task["args"]) == ("inference.tasks.inference_chunk_execute", [chunk.pk])
    assert task["since"] and not row.is_free
    assert "none is running; start one with `celery -A project worker -Q training`" in training.waiting

    assert worker.terminate() == 0  # the chunk finishes first (a warm shutdown), then the row goes
    assert not Worker.objects.filter(name=worker.node).exists()
    run.refresh_from_db()
    assert run.status == "succeeded"
