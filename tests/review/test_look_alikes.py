"""A fixed camera's unchanged frames: *Start reviewing* passes over the images that look like one saved
lately or open in another reviewer's editor, until nothing else is left; a frame joins the split of the
look-alike added just before it; an import may leave them out (review/look_alikes.py)."""
import io
import json

import numpy as np
import PIL.Image
import pytest

from review.image_files import normalise_image
from review.look_alikes import LOOK_TOLERANCE, Look, alike_to_any, look_cells
from review.models import Image, ImageLook
from review.services import image_boxes_save, image_create, image_next_for_review
from tests.factories import add_member, api_client, make_project

pytestmark = pytest.mark.django_db


def frame(seed: int, *, noise: int, brighter: int = 0, box_at: int | None = None, size=(320, 240)) -> bytes:
    """A camera's view (its background drawn from `seed`), a frame of it with sensor noise, optionally
    brighter (auto-exposure) and with a 24-pixel object at (box_at, 100)."""
    rng = np.random.default_rng(seed)
    view = rng.integers(40, 200, (6, 8, 3)).astype(np.float32)
    pixels = np.asarray(PIL.Image.fromarray(view.astype(np.uint8)).resize(size, PIL.Image.Resampling.BILINEAR),
                        np.float32)
    pixels = pixels + np.random.default_rng(noise).normal(0, 6, pixels.shape) + brighter
    if box_at is not None:
        pixels[100:124, box_at:box_at + 24] = 250
    out = io.BytesIO()
    PIL.Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def look(data: bytes, image_id=None) -> Look:
    picture = PIL.Image.open(io.BytesIO(data))
    return Look(picture.width, picture.height, look_cells(picture), image_id)


def test_noise_and_exposure_look_alike_and_an_object_or_another_view_does_not():
    first = look(frame(1, noise=1))
    assert alike_to_any([look(frame(1, noise=2)), look(frame(1, noise=3, brighter=12))], [first]) == [True, True]
    assert alike_to_any([look(frame(1, noise=3, brighter=-60))], [first]) == [False]  # dusk: another light
    moved = [look(frame(1, noise=2, box_at=40)), look(frame(1, noise=2, box_at=200))]
    assert alike_to_any(moved, [first]) == [False, False]  # an object appears: no longer the same scene
    assert alike_to_any([moved[1]], [moved[0]]) == [False]  # the object moved
    assert alike_to_any([look(frame(2, noise=2)), look(frame(1, noise=2, size=(240, 320)))], [first]) == [False, False]
    assert alike_to_any([look(frame(1, noise=1), image_id=7)], [look(frame(1, noise=1), image_id=7)]) == [False]
    # the tolerance is in grey levels of the 32 x 32 cells: the noise is far below it, the object far above
    cells = [np.frombuffer(x.cells, np.uint8).astype(int) for x in (first, look(frame(1, noise=2)), moved[0])]
    assert np.abs(cells[1] - cells[0]).max() < LOOK_TOLERANCE / 2 < 2 * LOOK_TOLERANCE < np.abs(cells[2] - cells[0]).max()


def test_an_image_keeps_its_look_from_the_upright_picture():
    image = image_create(project=make_project(), data=frame(1, noise=1), filename="gate-0001.png")
    stored = bytes(ImageLook.objects.get(image=image).cells)
    assert stored == normalise_image(frame(1, noise=1), max_bytes=10**8, max_pixels=10**8).look
    assert len(stored) == 32 * 32


@pytest.fixture
def cameras():
    """The gate camera's three unchanged frames, most urgent, then the yard's two, then a gate frame
    with a car in it: the model is as unsure of each as of the others of its camera."""
    project = make_project()
    gate = [image_create(project=project, data=frame(1, noise=n), filename=f"gate-{n}.png") for n in range(3)]
    yard = [image_create(project=project, data=frame(2, noise=n), filename=f"yard-{n}.png") for n in range(2)]
    car = image_create(project=project, data=frame(1, noise=9, box_at=120), filename="gate-car.png")
    for priority, image in zip([0.9, 0.89, 0.88, 0.5, 0.49, 0.3], gate + yard + [car]):
        Image.objects.filter(pk=image.pk).update(priority=priority)
    return {"project": project, "gate": gate, "yard": yard, "car": car,
            "ann": add_member(project), "bob": add_member(project)}


def _save(image, user):
    image_boxes_save(image=Image.objects.get(pk=image.pk), user=user, boxes=[], version=1)


def _next(cameras, who):
    found = image_next_for_review(project=cameras["project"], user=cameras[who])
    return found and found.pk


def test_the_next_image_passes_over_unchanged_frames_of_one_just_saved_until_none_else_is_left(cameras):
    gate, yard, car = cameras["gate"], cameras["yard"], cameras["car"]
    assert _next(cameras, "ann") == gate[0].pk
    _save(gate[0], cameras["ann"])
    assert _next(cameras, "ann") == yard[0].pk  # gate's next frames are the scene just corrected
    _save(yard[0], cameras["ann"])
    assert _next(cameras, "ann") == car.pk  # the gate with a car in it is a new scene
    _save(car, cameras["ann"])
    assert _next(cameras, "ann") == gate[1].pk  # only look-alikes are left: in queue order again


def test_a_frame_open_in_another_editor_counts_as_seen(cameras, settings):
    assert _next(cameras, "ann") == cameras["gate"][0].pk  # held for Ann
    assert _next(cameras, "bob") == cameras["yard"][0].pk  # not gate's second frame: Ann corrects that scene
    settings.REVIEW_PASS_LOOK_ALIKES = False
    assert _next(cameras, "bob") == cameras["gate"][1].pk  # switched off: the queue's order alone


def test_the_command_gives_older_images_their_look_and_an_unreadable_one_an_empty_one(cameras):
    from django.core.management import call_command

    gate, yard = cameras["gate"], cameras["yard"]
    kept = {image.pk: bytes(image.look.cells) for image in gate + yard}
    ImageLook.objects.filter(image_id__in=kept).delete()  # as if added before looks were kept
    Image.objects.get(pk=yard[1].pk).file.delete(save=False)
    out, err = io.StringIO(), io.StringIO()
    call_command("image_looks", stdout=out, stderr=err)
    assert "5 images given a look, 1 of them unreadable" in out.getvalue() and f"image {yard[1].pk}" in err.getvalue()
    assert {look.image_id: bytes(look.cells) for look in ImageLook.objects.filter(image_id__in=kept)} == {
        **kept, yard[1].pk: b""}
    assert _next(cameras, "ann") == gate[0].pk
    _save(gate[0], cameras["ann"])
    assert _next(cameras, "ann") == yard[0].pk  # the looks made by the command count
    _save(yard[0], cameras["ann"])
    assert _next(cameras, "ann") == yard[1].pk  # an empty look is like no other: not passed over
    call_command("image_looks", stdout=out)
    assert "0 images given a look" in out.getvalue()


def test_a_fixed_camera_s_frames_share_one_split_and_a_new_scene_draws_its_own():
    """Frames of one scene on both sides would score a model on what it learned: each frame joins the
    split of the latest image it looks like; one that looks like none takes its hash's."""
    from review.services import split_for_hash

    project = make_project(holdout_fraction=0.5)
    frames = [image_create(project=project, data=frame(1, noise=n), filename=f"gate-{n}.png") for n in range(12)]
    assert len({image.split for image in frames}) == 1  # by their hashes alone, about half would be held out
    assert len({split_for_hash(image.content_hash, 0.5) for image in frames}) == 2
    views = [image_create(project=project, data=frame(seed, noise=0), filename=f"view-{seed}.png")
             for seed in range(3, 15)]
    assert all(image.split == split_for_hash(image.content_hash, 0.5) for image in views)
    assert {image.split for image in views} == {"train", "holdout"}


def test_an_import_s_frames_and_a_zip_upload_s_join_the_split_of_the_frame_before():
    from datasets.imports import dataset_import
    from review.services import UploadFile, images_create_many
    from tests.datasets.helpers import source_of

    project = make_project(holdout_fraction=0.5)
    report = dataset_import(project=project, user=None, source=source_of(
        {f"gate/{n:03d}.png": frame(1, noise=n) for n in range(10)} |
        {f"yard/{n:03d}.png": frame(2, noise=n) for n in range(10)}))
    assert report.images_added == 20
    splits = list(Image.objects.filter(project=project).order_by("pk").values_list("split", flat=True))
    assert len(set(splits[:10])) == 1 and len(set(splits[10:])) == 1  # one split a camera, whatever the hashes say
    uploaded = images_create_many(project=project, files=[
        UploadFile(name=f"gate-late-{n}.png", read=lambda n=n: frame(1, noise=100 + n)) for n in range(6)])
    assert {image.split for image in uploaded.added} == {Image.objects.filter(project=project).order_by("pk")
                                                          .first().split}  # later frames of the gate join it too


def test_dark_flat_frames_never_look_alike():
    """The demo's night scenes differ by a few grey levels in their looks, no more than noise would: judged
    by grey levels alone, 15 of 60 looked like another scene. Measured against their own contrast, none does."""
    from review.demo_images import generate_scene

    looks = []
    for seed in range(10_000, 10_060):
        picture = generate_scene(seed, domain="night").image
        looks.append(Look(picture.width, picture.height, look_cells(picture), seed))
    assert not any(alike_to_any(looks, looks))
    dark = look(frame(1, noise=1, brighter=-150))  # nearly black: what little it shows is noise
    assert alike_to_any([look(frame(1, noise=2, brighter=-150))], [dark]) == [False]


def test_an_import_can_leave_out_a_camera_s_unchanged_frames_but_never_a_labelled_one(client):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from datasets.execution import dataset_import_execute
    from datasets.models import DatasetImport
    from review.models import Role
    from tests.datasets.helpers import coco_doc, zip_of

    project = make_project()
    files = {f"gate/{n:02d}.png": frame(1, noise=n) for n in range(8)}
    files["gate/car.png"] = frame(1, noise=50, box_at=150)
    files["yard/00.png"] = frame(2, noise=0)
    files["yard/01.png"] = frame(2, noise=1)
    client.force_login(project.memberships.get(role=Role.MANAGER).user)
    client.post(reverse("datasets:import_start", args=[project.pk]),
                {"file": SimpleUploadedFile("cams.zip", zip_of(files).getvalue()), "skip_look_alikes": "on",
                 "tag_folders": "on"})
    job = dataset_import_execute(job_id=DatasetImport.objects.get().pk, progress_interval=0)
    assert job.skip_look_alikes and job.status == "succeeded", job.error
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["00.png", "00.png", "car.png"]
    assert job.report["look_alikes"] == 8  # gate's 01-07, yard's 01
    skipped = {row["file"]: row["reason"] for row in job.report["skipped"]}
    assert skipped["gate/05.png"] == "looks like 00.png, added just before (a fixed camera's unchanged view)"
    page = client.get(reverse("datasets:project_data", args=[project.pk])).content.decode()
    assert "8 unchanged frames left out" in page
    # labelled frames are someone's work: kept, look-alike or not
    labelled = {f"{n:02d}.png": frame(3, noise=n) for n in range(3)}
    doc = coco_doc([(name, 320, 240) for name in labelled], [(n, "circle", [10, 10, 20, 20]) for n in range(3)])
    response = api_client(project.memberships.get(role=Role.MANAGER).user).post(
        f"/api/v1/projects/{project.pk}/imports/", {"skip_look_alikes": "true", "file": SimpleUploadedFile(
            "labelled.zip", zip_of({**labelled, "annotations.json": json.dumps(doc).encode()}).getvalue())},
        format="multipart")
    assert response.status_code == 202 and response.data["skip_look_alikes"], response.data
    job = dataset_import_execute(job_id=response.data["id"], progress_interval=0)
    assert (job.report["images_added"], job.report["look_alikes"]) == (3, 0)


def test_the_queue_page_says_which_cards_look_like_an_image_seen_lately(cameras, client):
    from django.urls import reverse

    gate, yard = cameras["gate"], cameras["yard"]
    _save(gate[0], cameras["ann"])
    client.force_login(cameras["ann"])
    page = client.get(reverse("review:project_queue", args=[cameras["project"].pk])).content.decode()
    card = {image.pk: page.split(f'data-image-id="{image.pk}"')[1].split("</li>")[0] for image in gate[1:] + yard}
    assert all("looks like gate-0.png, seen lately" in card[image.pk] for image in gate[1:])
    assert not any("looks like" in card[image.pk] for image in yard)
