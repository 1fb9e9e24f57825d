import io
import math

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from review.models import Annotation, Image, ReviewEvent, ReviewStatus, Split
from review.services import (
    BoxIn, BoxShown, StaleImage, image_boxes_save, image_create, review_counts, split_for_hash,
)
from tests.factories import UserFactory, add_images, make_project

pytestmark = pytest.mark.django_db


def jpeg_with_orientation(width: int, height: int, orientation: int) -> bytes:
    image = PILImage.new("RGB", (width, height), "red")
    exif = image.getexif()
    exif[0x0112] = orientation  # Orientation
    exif[0x8825] = {1: "N"}  # GPSInfo: must not survive storage
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_exif_orientation_applied_to_size_and_stored_pixels():
    project = make_project()
    image = image_create(project=project, data=jpeg_with_orientation(40, 20, 6), filename="rotated.jpg")
    assert (image.width, image.height) == (20, 40)  # orientation 6: rotated 90 degrees
    with default_storage.open(image.file.name) as handle:
        stored = PILImage.open(handle)
        assert stored.size == (20, 40)
        assert 0x0112 not in stored.getexif() and 0x8825 not in stored.getexif()


@pytest.mark.parametrize("file_format", ["PNG", "TIFF"])
def test_a_16_bit_grey_image_is_stored_scaled_not_clipped_white(file_format):
    """A thermal camera's 16-bit frame: a left-to-right ramp over the whole range stays a ramp in 8 bits."""
    import numpy as np

    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    out = io.BytesIO()
    PILImage.fromarray(ramp).save(out, format=file_format)
    image = image_create(project=make_project(), data=out.getvalue(), filename=f"thermal.{file_format.lower()}")
    with default_storage.open(image.file.name) as handle:
        stored = np.asarray(PILImage.open(handle).convert("L")).astype(int)
    assert stored[:, 0].max() == 0 and stored[:, -1].min() == 255
    assert abs(stored.mean() - ramp.mean() / 257) < 1  # clipped at 255, it was 251
    assert (np.diff(stored[0]) >= 0).all()


def test_image_stored_through_storage_api_under_project_folder():
    project = make_project()
    image = add_images(project, 1)[0]
    assert image.file.name.startswith(f"projects/{project.pk}/images/")
    assert default_storage.exists(image.file.name)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
    (b"<html><script>alert(1)</script></html>", "not an image"),
])
def test_bad_files_refused_and_nothing_stored(data, message, media_root):
    project = make_project()
    with pytest.raises(ValidationError, match=message):
        image_create(project=project, data=data, filename="evil.png")
    assert not Image.objects.exists()
    assert not (media_root / "projects").exists()


def test_truncated_image_refused():
    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), "blue").save(out, format="PNG")
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        image_create(project=make_project(), data=out.getvalue()[:-40], filename="cut.png")
    assert not Image.objects.exists()


def test_decompression_bomb_refused_before_decoding(settings):
    settings.MAX_IMAGE_PIXELS = 10_000
    out = io.BytesIO()
    PILImage.new("L", (1000, 1000)).save(out, format="PNG")  # 1 megapixel, a few KB compressed
    with pytest.raises(ValidationError, match="pixels"):
        image_create(project=make_project(), data=out.getvalue(), filename="bomb.png")
    assert not Image.objects.exists()


def test_split_is_deterministic_and_follows_the_fraction():
    hashes = [f"{i * 2654435761 % 2**32:08x}" + "0" * 56 for i in range(2000)]
    splits = [split_for_hash(h, 0.25) for h in hashes]
    assert splits == [split_for_hash(h, 0.25) for h in hashes]
    assert 0.2 < splits.count(Split.HOLDOUT) / len(splits) < 0.3
    assert all(split_for_hash(h, 0.0) == Split.TRAIN for h in hashes)


def test_image_split_assigned_at_upload_from_project_fraction():
    project = make_project(holdout_fraction=0.5)
    images = add_images(project, 20)
    assert {i.split for i in images} == {Split.TRAIN, Split.HOLDOUT}
    assert all(i.split == split_for_hash(i.content_hash, 0.5) for i in images)


def test_boxes_save_replaces_boxes_and_bumps_version():
    project = make_project()
    image = add_images(project, 1)[0]
    user = UserFactory()
    cls = project.label_classes.first()
    image = image_boxes_save(image=image, user=user, boxes=[BoxIn(cls.pk, 1, 2, 30, 40)], version=1)
    assert image.version == 2 and image.status == ReviewStatus.REVIEWED
    image = image_boxes_save(image=image, user=user, boxes=[BoxIn(cls.pk, 5, 5, 10, 10), BoxIn(cls.pk, 0, 0, 5, 5)],
                             version=2)
    assert list(Annotation.objects.filter(image=image).values_list("x", flat=True).order_by("x")) == [0, 5]
    assert ReviewEvent.objects.filter(image=image).count() == 2


def test_saving_again_deletes_the_old_boxes_and_only_what_refers_to_them():
    from django.db import connection

    from inference.models import BoxOutcome
    from tests.factories import add_model_version

    project = make_project()
    images = add_images(project, 2)
    version = add_model_version(project)
    cls = project.label_classes.first()
    for image in images:
        saved = image_boxes_save(image=image, user=None, boxes=[BoxIn(cls.pk, 1, 1, 10, 10), BoxIn(cls.pk, 20, 20, 5, 5)],
                                 version=1)
        BoxOutcome.objects.bulk_create([BoxOutcome(image=image, model_version=version, kind="missed", label_class=cls,
                                                   annotation_id=box.id, x=box.x, y=box.y, w=box.w, h=box.h)
                                        for box in saved.saved_boxes])
    image_boxes_save(image=images[0], user=None, boxes=[BoxIn(cls.pk, 3, 3, 8, 8)], version=2)
    assert list(Annotation.objects.filter(image=images[0]).values_list("x", flat=True)) == [3]
    assert not BoxOutcome.objects.filter(image=images[0]).exists()  # they named boxes that are gone
    assert Annotation.objects.filter(image=images[1]).count() == 2
    assert BoxOutcome.objects.filter(image=images[1]).count() == 2
    connection.check_constraints()  # no row names a deleted box (the FKs are checked only at commit otherwise)


def test_stale_version_refused_and_nothing_changed():
    project = make_project()
    image = add_images(project, 1)[0]
    cls = project.label_classes.first()
    image_boxes_save(image=image, user=None, boxes=[BoxIn(cls.pk, 1, 1, 10, 10)], version=1)
    with pytest.raises(StaleImage):
        image_boxes_save(image=image, user=None, boxes=[], version=1)
    assert Annotation.objects.filter(image=image).count() == 1
    assert ReviewEvent.objects.filter(image=image).count() == 1


@pytest.mark.parametrize("box, message", [
    (dict(x=math.nan, y=0, w=5, h=5), "finite"),
    (dict(x=0, y=0, w=0, h=5), "positive"),
    (dict(x=0, y=0, w=-3, h=5), "positive"),
    (dict(x=120, y=0, w=20, h=5), "outside"),
    (dict(x=-1, y=0, w=5, h=5), "outside"),
])
def test_bad_boxes_refused_and_nothing_changed(box, message):
    project = make_project()
    image = add_images(project, 1, size=128)[0]
    cls = project.label_classes.first()
    with pytest.raises(ValidationError, match=message):
        image_boxes_save(image=image, user=None, boxes=[BoxIn(cls.pk, **box)], version=1)
    image.refresh_from_db()
    assert image.version == 1 and image.status == ReviewStatus.UNREVIEWED
    assert not ReviewEvent.objects.exists()


def test_class_of_another_project_refused():
    project, other = make_project(), make_project()
    image = add_images(project, 1)[0]
    foreign = other.label_classes.first()
    with pytest.raises(ValidationError, match="not a class of this project"):
        image_boxes_save(image=image, user=None, boxes=[BoxIn(foreign.pk, 1, 1, 5, 5)], version=1)


def test_review_counts_tell_corrections_apart():
    shown = [BoxShown(1, 10, 0, 0, 10, 10), BoxShown(2, 10, 20, 20, 10, 10), BoxShown(3, 10, 40, 40, 10, 10),
             BoxShown(4, 10, 60, 60, 10, 10)]
    boxes = [
        BoxIn(10, 0, 0, 10, 10, source_prediction_id=1),      # accepted
        BoxIn(10, 25, 20, 10, 10, source_prediction_id=2),    # moved
        BoxIn(11, 40, 40, 10, 10, source_prediction_id=3),    # relabeled
        BoxIn(10, 80, 80, 5, 5),                              # added; prediction 4 deleted
    ]
    assert review_counts(boxes=boxes, shown=shown) == {
        "accepted": 1, "moved": 1, "relabeled": 1, "deleted": 1, "added": 1}
