"""A camera's video imported as its frames, one every so many seconds (datasets/video_source.py)."""
import io

import av
import numpy as np
import PIL.Image
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets.execution import dataset_import_execute
from datasets.models import DatasetImport
from datasets.video_source import VideoSource
from project.jobs import JobStatus
from review.models import Image, Role
from tests.datasets.helpers import COLOURS, clip, frame_colour, scene_png, zip_of
from tests.factories import api_client, make_project

pytestmark = pytest.mark.django_db

def _import(project, data: bytes, name: str = "gate-cam.mp4", **fields):
    client = api_client(project.memberships.get(role=Role.MANAGER).user)
    response = client.post(f"/api/v1/projects/{project.pk}/imports/",
                           {"file": SimpleUploadedFile(name, data), **fields}, format="multipart")
    assert response.status_code == 202, response.data
    return dataset_import_execute(job_id=response.data["id"], progress_interval=0)


def test_one_frame_a_second_becomes_an_image_each_shown_at_its_time():
    project = make_project()
    job = _import(project, clip(), frame_every="1")
    assert job.status == JobStatus.SUCCEEDED and job.report["images_added"] == 3 and job.frame_every == 1.0
    images = list(Image.objects.filter(project=project).order_by("original_name"))
    assert [image.original_name for image in images] == ["gate-cam_0.00s.jpg", "gate-cam_1.00s.jpg", "gate-cam_2.00s.jpg"]
    for image, colour in zip(images, COLOURS):
        assert (image.width, image.height) == (64, 48)
        assert np.abs(frame_colour(image) - colour).max() < 12
    assert not DatasetImport.objects.get(pk=job.pk).file  # the video is deleted once recorded


def test_a_still_camera_s_identical_frames_are_added_once():
    project = make_project()
    job = _import(project, clip(still=True, container="matroska"), name="still.mkv", frame_every="0.5")
    assert job.status == JobStatus.SUCCEEDED
    assert job.report["images_added"] == 3 and len(job.report["duplicates"]) == 3  # 0.5 s, 1.5 s and 2.5 s


def test_frames_are_read_in_any_order():
    source = VideoSource(io.BytesIO(clip()), name="c.mp4", every=0.25)
    assert len(source.names) == 12
    bars = {}
    for name in reversed(source.names):  # backwards: every read seeks back to a keyframe
        with PIL.Image.open(io.BytesIO(source.read(name))) as frame:
            bars[name] = int((np.asarray(frame.convert("L"))[0, :12] < 60).sum())
    assert [bars[name] for name in source.names[:5]] == [1, 3, 6, 8, 1]  # frames 0, 2, 5, 7, 10: bar n % 10 + 1
    source.close()


def test_frames_far_apart_are_found_by_seeking_ahead():
    source = VideoSource(io.BytesIO(clip(seconds=9)), name="c.mp4", every=4)  # 4 s apart: each read seeks
    frames = [np.asarray(PIL.Image.open(io.BytesIO(source.read(name))).convert("RGB")) for name in source.names]
    assert source.names == ["c_0.00s.jpg", "c_4.00s.jpg", "c_8.00s.jpg"]
    for frame, colour in zip(frames, [COLOURS[0], COLOURS[1], COLOURS[2]]):  # seconds 0, 4 and 8
        assert np.abs(frame[:, 20:].reshape(-1, 3).mean(0) - colour).max() < 12
        assert int((frame[0, :12].mean(1) < 60).sum()) == 1  # the first frame of its second
    source.close()


def test_a_phone_s_sideways_frames_are_stored_upright():
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as video:  # as a phone held upright stores them
        stream = video.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(-90)  # shown turned a quarter clockwise
        pixels = np.zeros((48, 64, 3), np.uint8)
        pixels[:24], pixels[24:] = COLOURS[0], COLOURS[2]  # red above blue, as stored
        for _ in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                video.mux(packet)
        for packet in stream.encode():
            video.mux(packet)
    source = VideoSource(io.BytesIO(out.getvalue()), name="phone.mp4", every=1)
    with PIL.Image.open(io.BytesIO(source.read(source.names[0]))) as frame:
        pixels = np.asarray(frame.convert("RGB")).astype(int)
    assert pixels.shape == (64, 48, 3)  # portrait
    assert np.abs(pixels[:, 30:].reshape(-1, 3).mean(0) - COLOURS[0]).max() < 15  # what was above is on the right
    assert np.abs(pixels[:, :18].reshape(-1, 3).mean(0) - COLOURS[2]).max() < 15
    source.close()


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x00\x00\x18ftypmp42 but nothing after", "not a video FFmpeg can read"),
    (b"hello", "not a video FFmpeg can read"),
])
def test_a_file_that_is_no_video_fails_the_import_clearly(data, message):
    project = make_project()
    job = _import(project, data)
    assert job.status == JobStatus.FAILED and message in job.error and "Nothing was imported" in job.error
    assert not Image.objects.exists()


def test_too_many_frames_or_pixels_are_refused_before_any_is_read(settings):
    settings.MAX_ARCHIVE_ENTRIES = 2
    job = _import(make_project(), clip(), frame_every="1")
    assert job.status == JobStatus.FAILED and "is 3 images; the limit is 2. Take frames less often." in job.error
    settings.MAX_ARCHIVE_ENTRIES, settings.MAX_IMAGE_PIXELS = 100, 64 * 47
    job = _import(make_project(name="Other"), clip(), frame_every="1")
    assert job.status == JobStatus.FAILED and "frames are 64x48 pixels; the limit is 3,008 pixels" in job.error
    assert not Image.objects.exists()


@pytest.mark.parametrize("every", ["0", "-1", "x", "1e9", "nan"])
def test_a_bad_interval_is_refused_and_queues_nothing(client, every):
    project = make_project()
    response = api_client(project.memberships.get(role=Role.MANAGER).user).post(
        f"/api/v1/projects/{project.pk}/imports/", {"file": SimpleUploadedFile("a.mp4", b"x"), "frame_every": every},
        format="multipart")
    assert response.status_code == 400 and "frame_every" in str(response.data)
    client.force_login(project.memberships.get(role=Role.MANAGER).user)
    page = client.post(reverse("datasets:import_start", args=[project.pk]),
                       {"file": SimpleUploadedFile("a.mp4", b"x"), "frame_every": every}, follow=True)
    assert "Take a video&#x27;s frames every 0.01 to 86400 seconds." in page.content.decode()
    assert not DatasetImport.objects.exists()


def test_the_command_imports_a_video_file(tmp_path):
    from django.core.management import call_command

    project = make_project(name="Gate")
    (tmp_path / "gate.mov").write_bytes(clip(container="mov"))
    out = io.StringIO()
    call_command("import_dataset", "Gate", str(tmp_path / "gate.mov"), "--frame-every", "1.5", stdout=out)
    assert "2 images added" in out.getvalue()
    assert sorted(Image.objects.filter(project=project).values_list("original_name", flat=True)) == [
        "gate_0.00s.jpg", "gate_1.50s.jpg"]


def test_a_video_uploaded_to_a_bucket_is_read_from_there(s3_media):
    project = make_project()
    job = _import(project, clip(), frame_every="2")
    assert job.status == JobStatus.SUCCEEDED and job.report["images_added"] == 2
    assert not DatasetImport.objects.get(pk=job.pk).file


def test_a_video_dropped_on_the_upload_box_is_imported_for_managers_only(client, django_capture_on_commit_callbacks):
    from tests.factories import add_member

    project = make_project()
    client.force_login(add_member(project, Role.ANNOTATOR))
    page = client.post(reverse("review:image_upload", args=[project.pk]),
                       {"files": [SimpleUploadedFile("gate.mp4", clip())]}, follow=True).content.decode()
    assert "gate.mp4 is a video: a manager imports its frames on Import &amp; export." in page
    assert not DatasetImport.objects.exists()
    client.force_login(project.memberships.get(role=Role.MANAGER).user)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        page = client.post(reverse("review:image_upload", args=[project.pk]),
                           {"files": [SimpleUploadedFile("gate.mp4", clip()), SimpleUploadedFile("a.png", b"nope")]},
                           follow=True).content.decode()
    job = DatasetImport.objects.get()
    assert f"its frames, one a second, are being imported (import #{job.pk}" in page and len(queued) == 1
    assert "a.png:" in page  # the other files are uploaded (or refused) as before
    assert dataset_import_execute(job_id=job.pk, progress_interval=0).report["images_added"] == 3


def test_the_videos_in_a_zip_give_their_frames_beside_its_images_tagged_by_folder():
    project = make_project()
    upload = zip_of({"gate/morning.mp4": clip(), "yard/night.mkv": clip(seconds=2, size=(80, 48), container="matroska"),
                     "yard/still.png": scene_png(1), "notes.txt": b"hello"}, deflated={"yard/night.mkv"}).getvalue()
    job = _import(project, upload, name="cameras.zip", frame_every="1", tag_folders="true")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.report["rejected"] == [], job.report
    assert job.report["images_added"] == 6, (job.report["duplicates"], job.report["skipped"])
    assert job.report["skipped"] == [{"file": "notes.txt", "reason": "not an image or a label file of this format"}]
    tagged = {image.original_name: [tag.name for tag in image.tags.all()]
              for image in Image.objects.filter(project=project).prefetch_related("tags")}
    assert tagged == {"morning_0.00s.jpg": ["gate"], "morning_1.00s.jpg": ["gate"], "morning_2.00s.jpg": ["gate"],
                      "night_0.00s.jpg": ["yard"], "night_1.00s.jpg": ["yard"], "still.png": ["yard"]}
    for name, colour in zip(["morning_0.00s.jpg", "morning_1.00s.jpg", "morning_2.00s.jpg"], COLOURS):
        assert np.abs(frame_colour(Image.objects.get(original_name=name)) - colour).max() < 12


def test_a_video_in_a_zip_that_gives_no_frames_is_refused_alone_as_a_corrupt_image_is(settings):
    project = make_project()
    upload = zip_of({"broken.mp4": b"hello", "a.png": scene_png(1), "clip.mp4": clip(),
                     "clip_1.00s.jpg": scene_png(2)}).getvalue()  # named like one of clip.mp4's frames
    job = _import(project, upload, name="mixed.zip", frame_every="1")
    assert job.status == JobStatus.FAILED and "nothing was imported" in job.error and not Image.objects.exists()
    rejected = {row["file"]: row["error"] for row in job.report["rejected"]}
    assert set(rejected) == {"broken.mp4", "clip.mp4"}
    assert "not a video FFmpeg can read" in rejected["broken.mp4"]
    assert "named like clip_1.00s.jpg" in rejected["clip.mp4"] and "rename one of them" in rejected["clip.mp4"]
    job = _import(project, upload, name="mixed.zip", frame_every="1", partial="true")
    assert job.status == JobStatus.SUCCEEDED and job.report["images_added"] == 2  # a.png and clip_1.00s.jpg
    settings.MAX_ARCHIVE_ENTRIES = 4
    job = _import(make_project(name="Few"), zip_of({"gate/clip.mp4": clip(), "yard/clip.mp4": clip()}).getvalue(),
                  name="long.zip", frame_every="1")  # each video's 3 frames within the limit, not the 6 of both
    assert job.status == JobStatus.FAILED and "gives 6 images and label files" in job.error
    assert "Split it, or take frames less often." in job.error
