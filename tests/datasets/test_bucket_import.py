"""Imports from a bucket prefix: only allowed prefixes, the same checks as a zip, and again adds only new images.

The bucket is moto's S3 server on this machine (the edge of the world: AWS, MinIO or R2 in production).
"""
import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from datasets.execution import dataset_import_execute
from datasets.models import BucketWatch, DatasetImport
from datasets.services import dataset_import_start
from datasets.watches import bucket_watch_create, bucket_watches_run
from review.archives import ArchiveRejected
from review.models import Annotation, Image, ReviewStatus, Role
from tests.datasets.helpers import COLOURS, clip, coco_doc, frame_colour, scene_png
from tests.factories import add_member, api_client, make_project

pytestmark = pytest.mark.django_db


def _import(project, url, **options) -> DatasetImport:
    job = dataset_import_start(project=project, user=None, source_url=url, queue=False, **options)
    return dataset_import_execute(job_id=job.pk)


def test_a_prefix_is_imported_with_its_labels_and_again_adds_only_the_new_frames(cameras):
    project = make_project(class_names=["circle", "square"])
    doc = coco_doc([("day1/a.png", 96, 96)], [(0, "square", [1, 2, 30, 40])], classes=("circle", "square"))
    cameras.put("site-a/day1/a.png", scene_png(1))
    cameras.put("site-a/day1/b.png", scene_png(2))
    cameras.put("site-a/annotations.json", json.dumps(doc).encode())
    cameras.put("site-ab/c.png", scene_png(3))  # another site, whose name only starts the same
    cameras.put("site-b/d.png", scene_png(4))

    job = _import(project, f"s3://{cameras.name}/site-a/")
    assert job.status == "succeeded", job.error
    assert (job.report["images_added"], job.report["boxes_added"], job.report["format"]) == (2, 1, "coco")
    assert sorted(Image.objects.filter(project=project).values_list("original_name", flat=True)) == ["a.png", "b.png"]
    labelled = Image.objects.get(project=project, original_name="a.png")
    assert labelled.status == ReviewStatus.REVIEWED and Annotation.objects.get(image=labelled).w == 30
    assert job.source_url == f"s3://{cameras.name}/site-a/" and not job.file

    cameras.put("site-a/day2/e.png", scene_png(5))  # the next night's frame
    again = _import(project, f"s3://{cameras.name}/site-a", format="images")
    assert again.status == "succeeded", again.error
    assert (again.report["images_added"], again.report["objects_unchanged"], again.report["duplicates"]) == (1, 3, [])
    assert Image.objects.filter(project=project).count() == 3

    cameras.put("site-a/day1/b.png", scene_png(6))  # a camera wrote over a frame: read again
    cameras.put("site-a/day2/f.png", scene_png(1))  # the same picture as a.png under a new name: a duplicate
    third = _import(project, f"s3://{cameras.name}/site-a/")
    assert (third.report["images_added"], third.report["objects_unchanged"]) == (1, 3)
    assert [row["file"] for row in third.report["duplicates"]] == ["day2/f.png"]
    nothing_new = _import(project, f"s3://{cameras.name}/site-a/")
    assert nothing_new.status == "succeeded" and nothing_new.report["images_added"] == 0
    assert nothing_new.report["objects_unchanged"] == 5
    other = make_project(name="Another project")  # remembered per project: another one reads everything
    assert _import(other, f"s3://{cameras.name}/site-a/", format="images").report["images_added"] == 3  # f = a


@pytest.mark.parametrize("url, message", [
    ("s3://{bucket}/site-b/", "not under a prefix this installation imports from"),
    ("s3://{bucket}/site-ab/", "not under a prefix this installation imports from"),
    ("s3://{bucket}/site-a/../site-b/", "Give an S3 URL"),
    ("s3://other-bucket/site-a/", "not under a prefix"),
    ("https://{bucket}.s3.amazonaws.com/site-a/", "Give an S3 URL"),
    ("/etc/passwd", "Give an S3 URL"),
])
def test_a_prefix_outside_the_allowed_ones_is_refused_before_anything_is_queued(cameras, url, message):
    project = make_project()
    with pytest.raises(ValidationError, match=message):
        dataset_import_start(project=project, user=None, source_url=url.format(bucket=cameras.name))
    assert not DatasetImport.objects.exists()


def test_no_bucket_is_read_unless_the_operator_allows_one(cameras, settings):
    settings.IMPORT_BUCKETS = []
    with pytest.raises(ValidationError, match="imports from no bucket"):
        dataset_import_start(project=make_project(), user=None, source_url=f"s3://{cameras.name}/site-a/")


def test_a_prefix_no_longer_allowed_when_the_job_runs_fails_it_and_reads_nothing(cameras, settings):
    cameras.put("site-a/a.png", scene_png(1))
    project = make_project()
    job = dataset_import_start(project=project, user=None, source_url=f"s3://{cameras.name}/site-a/", queue=False)
    settings.IMPORT_BUCKETS = [f"s3://{cameras.name}/site-b"]
    job = dataset_import_execute(job_id=job.pk)
    assert job.status == "failed" and "not under a prefix" in job.error and not Image.objects.exists()


def test_bad_objects_are_refused_like_bad_archive_entries(cameras, settings):
    settings.MAX_IMAGE_BYTES = 20_000
    cameras.put("site-a/big.png", scene_png(1, size=256))
    cameras.put("site-a/broken.png", b"\x89PNG not really")
    cameras.put("site-a/ok.png", scene_png(2, size=32))
    cameras.put("site-a/clip.mp4", b"a camera's clip")
    cameras.put("site-a/notes.txt", b"installed 2026-11-30")
    project = make_project()
    job = _import(project, f"s3://{cameras.name}/site-a/", partial=True)
    refused = {row["file"]: row["error"] for row in job.report["rejected"]}
    assert job.status == "succeeded" and set(refused) == {"big.png", "broken.png", "clip.mp4"}
    assert job.report["skipped"] == [{"file": "notes.txt", "reason": "not an image or a label file of this format"}]
    assert "larger than" in refused["big.png"] and "not a video FFmpeg can read" in refused["clip.mp4"]
    assert list(Image.objects.values_list("original_name", flat=True)) == ["ok.png"]
    whole = _import(make_project(name="Other"), f"s3://{cameras.name}/site-a/")
    assert whole.status == "failed" and not Image.objects.exclude(project=project).exists()


def test_a_prefix_s_videos_give_their_frames_and_are_read_again_only_when_they_change(cameras):
    project = make_project()
    cameras.put("site-a/gate/0800.mp4", clip(seconds=3))
    cameras.put("site-a/gate/snapshot.png", scene_png(1))
    job = _import(project, f"s3://{cameras.name}/site-a/", frame_every=1, tag_folders=True)
    assert job.status == "succeeded", job.error
    assert (job.report["images_added"], job.report["rejected"], job.report["skipped"]) == (4, [], [])
    frames = list(Image.objects.filter(project=project, original_name__startswith="0800_").order_by("original_name"))
    assert [image.original_name for image in frames] == ["0800_0.00s.jpg", "0800_1.00s.jpg", "0800_2.00s.jpg"]
    assert Image.objects.filter(project=project, tags__name="gate").count() == 4  # the camera's folder
    for image, colour in zip(frames, COLOURS):
        assert abs(frame_colour(image) - colour).max() < 40  # the frame shown at its second

    again = _import(project, f"s3://{cameras.name}/site-a/")
    assert (again.report["images_added"], again.report["objects_unchanged"]) == (0, 2)
    closer = _import(project, f"s3://{cameras.name}/site-a/", frame_every=0.5)  # the clip at another interval
    assert (closer.report["images_added"], closer.report["objects_unchanged"]) == (3, 1)  # 0.5, 1.5 and 2.5 s
    assert len(closer.report["duplicates"]) == 3  # the frames at 0, 1 and 2 s, already there
    again = _import(project, f"s3://{cameras.name}/site-a/", frame_every=0.5)
    assert (again.report["images_added"], again.report["objects_unchanged"]) == (0, 2)
    cameras.put("site-a/gate/0800.mp4", clip(seconds=3, still=True))  # the camera wrote over the clip
    third = _import(project, f"s3://{cameras.name}/site-a/")
    assert (third.report["images_added"], third.report["objects_unchanged"], third.report["duplicates"]) == (
        3, 1, [])


def test_a_video_that_gives_no_frames_is_refused_alone_and_too_many_frames_refuse_the_import(cameras, settings):
    project = make_project()
    cameras.put("site-a/ok.mp4", clip(seconds=2))
    cameras.put("site-a/truncated.mp4", clip(seconds=2)[:300])
    cameras.put("site-a/too-big.mp4", clip(seconds=2, size=(96, 96)))
    settings.MAX_IMAGE_PIXELS = 64 * 48
    job = _import(project, f"s3://{cameras.name}/site-a/", partial=True)
    refused = {row["file"]: row["error"] for row in job.report["rejected"]}
    assert job.status == "succeeded" and set(refused) == {"truncated.mp4", "too-big.mp4"}, refused
    assert "96x96 pixels" in refused["too-big.mp4"]
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["ok_0.00s.jpg", "ok_1.00s.jpg"]
    retried = _import(project, f"s3://{cameras.name}/site-a/", partial=True)  # refused ones are read again
    assert retried.report["objects_unchanged"] == 1 and len(retried.report["rejected"]) == 2

    settings.MAX_ARCHIVE_ENTRIES = 4  # each new video's frames are fewer; together they are more
    cameras.put("site-b/x.png", scene_png(1))  # outside the prefix: counts for nothing
    cameras.put("site-a/long.mp4", clip(seconds=3))
    cameras.put("site-a/more.mp4", clip(seconds=2, still=True))
    crowded = _import(project, f"s3://{cameras.name}/site-a/", partial=True)
    assert crowded.status == "failed" and "give 5 images and label files (one frame every 1 s" in crowded.error
    assert Image.objects.count() == 2


def test_a_video_read_in_small_blocks_gives_the_frames_its_whole_bytes_give(cameras, monkeypatch):
    import io

    from datasets import bucket_source
    from datasets.video_source import VideoSource

    data = clip(seconds=6, size=(160, 120))
    monkeypatch.setattr(bucket_source, "VIDEO_BLOCK_BYTES", 500)  # the clip spans many blocks, fetches and evictions
    monkeypatch.setattr(bucket_source, "VIDEO_READ_AHEAD_BLOCKS", 4)
    monkeypatch.setattr(bucket_source, "VIDEO_CACHE_BLOCKS", 6)
    assert len(data) > 20 * 500
    cameras.put("site-a/gate.mp4", data)
    for every in (0.5, 4):  # every frame read on, and seeks ahead
        whole = VideoSource(io.BytesIO(data), name="gate.mp4", every=every)
        source = bucket_source.BucketSource(f"s3://{cameras.name}/site-a/", project=make_project(), frame_every=every)
        try:
            assert source.names == whole.names
            assert [source.read(name) for name in source.names] == [whole.read(name) for name in whole.names]
            assert source.read(source.names[0]) == whole.read(whole.names[0])  # and back to the start
        finally:
            source.close()
            whole.close()


def test_a_video_rewritten_while_its_frames_are_read_is_refused_not_mixed(cameras):
    from datasets.bucket_source import BucketSource

    cameras.put("site-a/gate.mp4", clip(seconds=3))
    source = BucketSource(f"s3://{cameras.name}/site-a/", project=make_project(), frame_every=1)
    try:
        assert source.names == ["gate_0.00s.jpg", "gate_1.00s.jpg", "gate_2.00s.jpg"]
        cameras.put("site-a/gate.mp4", clip(seconds=3, still=True))  # the camera's next upload, same name
        with pytest.raises(ArchiveRejected, match="gate.mp4 could not be read from the bucket"):
            source.read("gate_0.00s.jpg")
    finally:
        source.close()


def test_an_object_deleted_between_the_listing_and_its_read_is_refused_alone(cameras):
    import boto3

    from datasets.bucket_source import BucketSource

    cameras.put("site-a/a.png", scene_png(1))
    cameras.put("site-a/b.png", scene_png(2))
    source = BucketSource(f"s3://{cameras.name}/site-a/", project=make_project())
    boto3.client("s3").delete_object(Bucket=cameras.name, Key="site-a/a.png")  # retention, while the import runs
    with pytest.raises(ArchiveRejected, match="a.png was deleted from the bucket"):
        source.read("a.png")
    assert source.read("b.png") == scene_png(2)


def test_objects_are_fetched_ahead_in_the_order_the_import_reads_them_and_no_further(cameras):
    from datasets.bucket_source import PREFETCH, BucketSource

    names = [f"{n:02d}.png" for n in range(PREFETCH * 2 + 3)]
    for n, name in enumerate(names):
        cameras.put(f"site-a/{name}", scene_png(n, size=32))
    source = BucketSource(f"s3://{cameras.name}/site-a/", project=make_project())
    order = list(reversed(names))  # whatever order the plan chose
    source.will_read(order)
    try:
        for n, name in enumerate(order):
            assert source.read(name) == scene_png(int(name[:2]), size=32)
            assert set(source._pending) == set(order[n + 1:n + 1 + PREFETCH])  # the next ones, no more
        assert source.read(order[0]) == scene_png(int(order[0][:2]), size=32)  # a second read still works
    finally:
        source.close()


def test_an_empty_prefix_a_missing_bucket_and_too_many_objects_say_so(cameras, settings):
    project = make_project()
    empty = _import(project, f"s3://{cameras.name}/site-a/nothing-here/")
    assert empty.status == "failed" and "No objects under" in empty.error
    settings.IMPORT_BUCKETS = ["s3://no-such-bucket-here"]
    missing = _import(project, "s3://no-such-bucket-here/x/")
    assert missing.status == "failed" and "does not exist" in missing.error
    settings.IMPORT_BUCKETS, settings.MAX_ARCHIVE_ENTRIES = [f"s3://{cameras.name}/site-a"], 2
    for n in range(3):
        cameras.put(f"site-a/{n}.png", scene_png(n))
    crowded = _import(project, f"s3://{cameras.name}/site-a/")
    assert crowded.status == "failed" and "More than 2 new objects" in crowded.error
    assert not Image.objects.exists()


def test_the_api_page_and_command_take_a_prefix(cameras, client, capsys):
    cameras.put("site-a/a.png", scene_png(1))
    project = make_project(name="Gate")
    manager = project.memberships.get(role=Role.MANAGER).user
    url = f"s3://{cameras.name}/site-a/"
    response = api_client(manager).post(reverse("api:import_list", args=[project.pk]), {"source_url": url},
                                        format="json")
    assert response.status_code == 202 and response.json()["source_url"] == url
    refused = api_client(manager).post(reverse("api:import_list", args=[project.pk]),
                                       {"source_url": f"s3://{cameras.name}/site-b/"}, format="json")
    assert refused.status_code == 400 and "source_url" in refused.json()["fields"]
    neither = api_client(manager).post(reverse("api:import_list", args=[project.pk]), {}, format="json")
    assert neither.status_code == 400
    reviewer = add_member(project, Role.REVIEWER)
    assert api_client(reviewer).post(reverse("api:import_list", args=[project.pk]), {"source_url": url},
                                     format="json").status_code == 403

    client.force_login(manager)
    page = client.get(reverse("datasets:project_data", args=[project.pk])).content.decode()
    assert 'id="bucket-import-form"' in page and f"s3://{cameras.name}/site-a" in page
    client.post(reverse("datasets:import_start", args=[project.pk]), {"source_url": url, "format": "images"})
    assert DatasetImport.objects.filter(project=project, source_url=url).count() == 2

    call_command("import_dataset", "Gate", url)
    assert "1 images added" in capsys.readouterr().out
    with pytest.raises(CommandError, match="not under a prefix"):
        call_command("import_dataset", "Gate", f"s3://{cameras.name}/site-b/")


def test_a_watched_prefix_is_imported_on_its_schedule_never_twice_at_once(cameras, django_capture_on_commit_callbacks):
    cameras.put("site-a/a.png", scene_png(1))
    project = make_project()
    watch = bucket_watch_create(project=project, user=None, source_url=f"s3://{cameras.name}/site-a", every_minutes=60)
    assert watch.source_url == f"s3://{cameras.name}/site-a/"
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        [first] = bucket_watches_run(now=now)
    assert len(queued) == 1  # the import's task, sent once this commits
    assert bucket_watches_run(now=now + timedelta(minutes=61)) == []  # the first still runs: no second one
    dataset_import_execute(job_id=first)
    assert bucket_watches_run(now=now + timedelta(minutes=30)) == []  # not due yet
    cameras.put("site-a/b.png", scene_png(2))
    with django_capture_on_commit_callbacks(execute=False):
        [second] = bucket_watches_run(now=now + timedelta(minutes=61))
    job = dataset_import_execute(job_id=second)
    assert job.partial and job.report["images_added"] == 1 and job.report["objects_unchanged"] == 1
    watch.refresh_from_db()
    assert watch.last_import_id == second and watch.next_run_at == now + timedelta(minutes=121)


def test_a_watch_is_checked_like_an_import_and_says_when_it_cannot_start(cameras, settings):
    project = make_project()
    for bad, field in [({"source_url": f"s3://{cameras.name}/site-b/"}, "not under a prefix"),
                       ({"every_minutes": 1}, "5 minutes"), ({"format": "pdf"}, "Unknown format"),
                       ({"frame_every": 0}, "frames every 0.01 to 86400 seconds")]:
        with pytest.raises(ValidationError, match=field):
            bucket_watch_create(project=project, user=None, **{"source_url": f"s3://{cameras.name}/site-a/", **bad})
    watch = bucket_watch_create(project=project, user=None, source_url=f"s3://{cameras.name}/site-a/")
    with pytest.raises(ValidationError, match="watches .* already"):
        bucket_watch_create(project=project, user=None, source_url=f"s3://{cameras.name}/site-a")
    settings.IMPORT_BUCKETS = []  # the operator took the prefix back
    assert bucket_watches_run() == []
    watch.refresh_from_db()
    assert "imports from no bucket" in watch.last_error and not DatasetImport.objects.exists()
    assert BucketWatch.objects.count() == 1


def test_watches_through_the_api_and_the_page(cameras, client, django_capture_on_commit_callbacks):
    cameras.put("site-a/a.png", scene_png(1))
    project = make_project()
    manager = project.memberships.get(role=Role.MANAGER).user
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client(manager).post(reverse("api:bucket_watch_list", args=[project.pk]),
                                            {"source_url": f"s3://{cameras.name}/site-a/", "every_minutes": 30,
                                             "frame_every": 2.5, "tags": ["site-a"], "tag_folders": True,
                                             "skip_look_alikes": True},
                                            format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["every_minutes"] == 30 and body["last_import"] is not None  # the first import started at once
    first = DatasetImport.objects.get(pk=body["last_import"])
    assert body["frame_every"] == 2.5 and first.frame_every == 2.5 and body["tags"] == first.tags == ["site-a"]
    assert body["tag_folders"] is first.tag_folders is True
    assert body["skip_look_alikes"] is first.skip_look_alikes is True  # each import of the watch leaves them out
    assert api_client(manager).post(reverse("api:bucket_watch_list", args=[project.pk]),
                                    {"source_url": "s3://elsewhere/x/"}, format="json").status_code == 400
    client.force_login(manager)
    page = client.get(reverse("datasets:project_data", args=[project.pk])).content.decode()
    assert f'data-watch-id="{body["id"]}"' in page and "30 min" in page and "frames every 2.5 s" in page
    assert "tagged site-a, by folder" in page and "unchanged frames left out" in page
    dataset_import_execute(job_id=body["last_import"])
    assert list(Image.objects.get(project=project).tags.values_list("name", flat=True)) == ["site-a"]
    cameras.put("site-a/b.png", scene_png(2))
    dataset_import_execute(job_id=dataset_import_start(project=project, user=None, source_url=f"s3://{cameras.name}/site-a/",
                                                       queue=False).pk)
    page = client.get(reverse("datasets:project_data", args=[project.pk])).content.decode()
    assert "1 objects unchanged since an earlier import" in page
    client.post(reverse("datasets:bucket_watch_remove", args=[body["id"]]))
    assert not BucketWatch.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("datasets:bucket_watch_add", args=[project.pk]),
                    {"source_url": f"s3://{cameras.name}/site-a/", "every_minutes": "oops"})
    assert not BucketWatch.objects.exists()  # refused: said on the page
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("datasets:bucket_watch_add", args=[project.pk]),
                    {"source_url": f"s3://{cameras.name}/site-a/", "every_minutes": "60", "frame_every": "10",
                     "tag_folders": "on"})
    watch = BucketWatch.objects.get()
    assert watch.frame_every == 10 and watch.tag_folders
