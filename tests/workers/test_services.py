"""workers/services.py: a worker's beat and its goodbye."""
from datetime import timedelta

import pytest
from django.utils import timezone

from workers.models import Worker
from workers.services import worker_gone, worker_seen

pytestmark = pytest.mark.django_db


def test_a_beat_writes_the_row_again_and_a_goodbye_deletes_it():
    start = timezone.now() - timedelta(hours=2)
    worker_seen(name="gpu@host", queues=["training", "inference"], concurrency=0, pid=10, tasks=[], started_at=start)
    task = {"id": "t", "name": "inference.tasks.inference_chunk_execute", "args": [3], "since": None}
    worker_seen(name="gpu@host", queues=["inference"], concurrency=2, pid=11, tasks=[task], started_at=start)
    row = Worker.objects.get()
    assert (row.queues, row.concurrency, row.pid, row.tasks, row.started_at) == (["inference"], 2, 11, [task], start)
    assert row.is_alive and row.is_free  # one task of two
    worker_gone(name="elsewhere@host")  # another worker's goodbye takes nothing
    worker_gone(name="gpu@host")
    assert not Worker.objects.exists()


def test_a_worker_row_not_written_for_a_day_is_forgotten():
    now = timezone.now()
    Worker.objects.create(name="pod-7f3a@k8s", queues=["inference"], seen_at=now - timedelta(days=1, minutes=1))
    Worker.objects.create(name="pod-9c1e@k8s", queues=["inference"], seen_at=now - timedelta(hours=23))
    worker_seen(name="gpu@host", queues=["inference"], concurrency=1, pid=1, tasks=[], started_at=now)
    assert sorted(Worker.objects.values_list("name", flat=True)) == ["gpu@host", "pod-9c1e@k8s"]
