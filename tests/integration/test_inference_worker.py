"""Inference through real `celery worker` processes, on the filesystem broker and on Redis."""
import os
import signal
from collections import Counter

import pytest

from inference.execution import detector_for
from inference.models import InferenceRun, Prediction
from inference.pipeline import predict_stream
from inference.services import inference_run_cancel, inference_run_create
from project.jobs import JobStatus
from tests.factories import add_images, add_model_version, make_project
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(run_id: int) -> InferenceRun | None:
    run = InferenceRun.objects.get(pk=run_id)
    return run if run.is_finished else None


def expected_counts(images) -> Counter:
    """What one clean pass of the same (deterministic, CPU) model writes per image."""
    version = images[0].project.model_versions.get(is_active=True)
    model = detector_for(version)
    items = [(i.pk, (lambda i=i: i.file.open("rb").read())) for i in images]
    counts = Counter()
    for batch in predict_stream(items, model, batch_size=4):
        for result in batch:
            counts[result.key] = len(result.detections.scores)
    return counts


def test_run_queued_on_commit_reaches_succeeded_through_a_worker(start_worker):
    project = make_project()
    add_images(project, 5, size=96)
    add_model_version(project)
    start_worker()
    run = inference_run_create(project=project, user=None, scope="all", chunk_size=2)  # queued on commit
    run = wait_for(lambda: finished(run.pk), message="the run to finish")
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.percent == 100.0 and run.progress_done == 5 and run.chunks_done == 3
    assert run.predictions_written == Prediction.objects.filter(model_version=run.model_version).count()


def test_worker_killed_mid_chunk_redelivers_without_duplicates(start_worker):
    project = make_project()
    # Enough images that the chunk is still running when the first progress (after ~1 s) is seen.
    images = add_images(project, 240, size=160)
    add_model_version(project)
    worker = start_worker(INFERENCE_CPU_BATCH_SIZE="1")
    run = inference_run_create(project=project, user=None, scope="all")
    wait_for(lambda: InferenceRun.objects.get(pk=run.pk).progress_done > 0, message="the chunk to start writing")
    children = worker.child_pids()
    assert children, "expected a prefork pool process"
    os.kill(children[0], signal.SIGKILL)
    run = wait_for(lambda: finished(run.pk), timeout=180, message="the redelivered chunk to finish")
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.attempts == 2
    written = Counter(Prediction.objects.filter(model_version=run.model_version).values_list("image_id", flat=True))
    expected = expected_counts(images)
    assert {k: v for k, v in written.items()} == {k: v for k, v in expected.items() if v}


def test_cancel_stops_a_running_run(start_worker, broker):
    if broker["url"].startswith("redis"):
        pytest.skip("the cancel is read from the database, whichever broker brought the task: once is enough")
    project = make_project()
    images = add_images(project, 30, size=160)
    add_model_version(project)
    start_worker(INFERENCE_CPU_BATCH_SIZE="1")
    run = inference_run_create(project=project, user=None, scope="all", chunk_size=5)
    wait_for(lambda: InferenceRun.objects.get(pk=run.pk).progress_done > 0, message="the run to start")
    inference_run_cancel(run=InferenceRun.objects.get(pk=run.pk))
    run = wait_for(lambda: finished(run.pk), message="the run to stop")
    assert run.status == JobStatus.CANCELLED
    assert run.progress_done < run.progress_total
    # What was written is whole: every predicted image has exactly the boxes of one clean pass.
    written = Counter(Prediction.objects.filter(model_version=run.model_version).values_list("image_id", flat=True))
    expected = expected_counts(images)
    assert written and all(written[image_id] == expected[image_id] for image_id in written)


def test_two_workers_share_the_chunks_of_one_run(start_worker, broker):
    if broker["url"].startswith("redis"):
        pytest.skip("each chunk is a task of its own on either broker: once is enough (the kill tests run on both)")
    project = make_project()
    add_images(project, 16, size=160)
    add_model_version(project)
    first, second = start_worker("a", INFERENCE_CPU_BATCH_SIZE="1"), start_worker("b", INFERENCE_CPU_BATCH_SIZE="1")
    run = inference_run_create(project=project, user=None, scope="all", chunk_size=2)
    run = wait_for(lambda: finished(run.pk), timeout=180, message="the run to finish")
    assert run.status == JobStatus.SUCCEEDED and run.chunks_done == 8
    done = [w.log().count("inference.tasks.inference_chunk_execute") for w in (first, second)]
    assert all(n > 0 for n in done), f"each worker should have taken chunks: {done}"


def test_a_second_message_for_a_chunk_at_work_is_left_to_the_first(start_worker, broker):
    """The sweeper sends a long-queued run's tasks again (their messages may be lost); when the first
    message was only late, both arrive. The worker that takes the second leaves the chunk alone."""
    from celery import current_app

    if broker["url"].startswith("redis"):
        pytest.skip("the hold is in the database, whichever broker brought the message: once is enough")

    project = make_project()
    # Long enough for the other worker to take the second message while the first still works: 32 images
    # were not on a faster machine, where the chunk was finished by then.
    images = add_images(project, 96, size=160)
    add_model_version(project)
    workers = [start_worker(name=name, INFERENCE_CPU_BATCH_SIZE="1") for name in ("one", "two")]
    run = inference_run_create(project=project, user=None, scope="all")
    wait_for(lambda: InferenceRun.objects.get(pk=run.pk).progress_done > 0, message="the chunk to start writing")
    chunk = run.chunks.get()
    current_app.send_task("inference.tasks.inference_chunk_execute", args=[chunk.pk])
    wait_for(lambda: any("is held by task" in worker.log() for worker in workers), timeout=60,
             message="the other worker to find the chunk held")
    run = wait_for(lambda: finished(run.pk), timeout=180, message="the run to finish")
    chunk.refresh_from_db()
    assert (run.status, run.chunks_done, run.progress_done, chunk.attempts) == (JobStatus.SUCCEEDED, 1, 96, 1), run.error
    per_image = Counter(Prediction.objects.filter(model_version=run.model_version).values_list("image_id", flat=True))
    assert per_image == expected_counts(images)


def test_broker_losing_a_running_chunk_is_recovered_by_the_sweeper(start_worker, broker, settings):
    """kill -9 the whole worker mid-chunk, then empty the broker (a Redis restart without persistence):
    nothing would ever redeliver the chunk; the stale-run sweeper sends it again and the run completes."""
    if not broker["url"].startswith("redis"):
        pytest.skip("the filesystem broker keeps its messages on disk; a lost message is the Redis case")
    from datetime import timedelta

    import redis
    from django.utils import timezone

    from project.sweeper import stale_runs_sweep

    project = make_project()
    images = add_images(project, 240, size=160)  # the chunk still running when killed
    add_model_version(project)
    worker = start_worker(INFERENCE_CPU_BATCH_SIZE="1")
    run = inference_run_create(project=project, user=None, scope="all")
    wait_for(lambda: InferenceRun.objects.get(pk=run.pk).progress_done > 0, message="the chunk to start writing")
    worker.stop()  # SIGKILL to the pool and the parent: no one acknowledges or rejects the message
    redis.Redis.from_url(broker["url"]).flushdb()  # and the broker forgets it
    assert InferenceRun.objects.get(pk=run.pk).status == "running"
    later = timezone.now() + timedelta(minutes=settings.JOB_STALE_MINUTES + 1)
    assert stale_runs_sweep(now=later)["resumed"] == [f"InferenceRun #{run.pk}"]
    start_worker(name="second")
    run = wait_for(lambda: finished(run.pk), timeout=180, message="the resumed run to finish")
    assert run.status == JobStatus.SUCCEEDED, run.error
    per_image = Counter(Prediction.objects.filter(model_version=run.model_version).values_list("image_id", flat=True))
    assert per_image == expected_counts(images)  # exactly one set of predictions per image


def test_a_version_is_exported_as_onnx_by_a_worker_of_the_inference_queue(start_worker, broker):
    """Queued on commit to the `inference` queue, whose workers have torch; the file comes back checked."""
    if broker["url"].startswith("redis"):
        pytest.skip("an export is one ordinary inference-queue task; the filesystem broker's case is enough")
    from inference.model_exports import model_export_start
    from inference.models import ModelExport
    from inference.onnx_export import onnx_session

    project = make_project()
    add_images(project, 3, size=96)
    version = add_model_version(project)
    start_worker(queues="inference")
    export, created = model_export_start(version=version)
    assert created
    export = wait_for(lambda: (e := ModelExport.objects.get(pk=export.pk)).is_finished and e, message="the export")
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.check_result["images"] == 3 and export.check_result["passed"]
    session = onnx_session(export.file.read())
    assert [i.name for i in session.get_inputs()] == ["image"]
