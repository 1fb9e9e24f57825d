"""A watched bucket prefix is imported by a real `celery worker` running celery beat, and again when frames arrive."""
import pytest
from django.utils import timezone

from datasets.models import BucketWatch
from datasets.watches import bucket_watch_create
from review.models import Image
from tests.datasets.helpers import clip, scene_png
from tests.factories import make_project
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_beat_imports_a_watched_prefix_and_then_its_new_frames(cameras, start_worker, broker):
    if broker["url"].startswith("redis"):
        pytest.skip("beat's tasks are ordinary default-queue tasks; the filesystem broker's case is enough")
    cameras.put("site-a/night-1/a.png", scene_png(1))
    cameras.put("site-a/night-1/b.png", scene_png(2))
    project = make_project()
    bucket_watch_create(project=project, user=None, source_url=f"s3://{cameras.name}/site-a/", every_minutes=60,
                        frame_every=2)
    start_worker(queues="default", beat=True, JOB_SWEEP_SECONDS="1", **cameras.worker_env)

    def imported():
        """The names in the project once the watch's last import has finished (its images come in before its end)."""
        watch = BucketWatch.objects.select_related("last_import").get()
        if watch.last_import is None or not watch.last_import.is_finished:
            return None
        return sorted(Image.objects.filter(project=project).values_list("original_name", flat=True))
    assert wait_for(lambda: imported() == ["a.png", "b.png"], timeout=60, message="beat to import the prefix")
    cameras.put("site-a/night-2/c.png", scene_png(3))
    cameras.put("site-a/night-2/gate.mp4", clip(seconds=3))  # a clip: a frame every 2 s of it
    BucketWatch.objects.update(next_run_at=timezone.now())  # an hour later
    assert wait_for(lambda: imported() == ["a.png", "b.png", "c.png", "gate_0.00s.jpg", "gate_2.00s.jpg"], timeout=60,
                    message="the next night's frame and clip")
    last = BucketWatch.objects.select_related("last_import").get().last_import
    assert last.status == "succeeded" and last.report["objects_unchanged"] == 2
