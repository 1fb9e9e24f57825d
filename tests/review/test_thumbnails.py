"""Pages that show many images load small JPEGs of them (review/thumbnails.py), made once, deleted with the image."""
import io

import numpy as np
import PIL.Image
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from project.storage_orphans import names_in_use
from review.models import Image, Role
from review.services import image_create, image_delete
from review.thumbnails import THUMBNAIL_SIDE, image_thumbnail_name, image_thumbnail_open
from tests.factories import add_images, add_member, api_client, make_project

pytestmark = pytest.mark.django_db


def camera_frame(width: int = 1600, height: int = 900, seed: int = 0) -> bytes:
    """A noisy JPEG, as a real camera's frame compresses (poorly)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    PIL.Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def project():
    return make_project()


def test_a_large_image_is_shown_by_a_small_jpeg_made_once(client, project):
    image = image_create(project=project, data=camera_frame(), filename="gate-cam.jpg")
    client.force_login(add_member(project, Role.ANNOTATOR))
    url = reverse("review:image_thumbnail", args=[image.pk])
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    data = b"".join(response.streaming_content)
    with PIL.Image.open(io.BytesIO(data)) as thumbnail:
        assert thumbnail.size == (THUMBNAIL_SIDE, 216)  # proportions kept
    assert len(data) * 10 < image.file.size  # the point of it
    image.refresh_from_db()
    made = image.thumbnail.name
    assert made and default_storage.exists(made) and made in names_in_use()
    assert b"".join(client.get(url).streaming_content) == data
    image.refresh_from_db()
    assert image.thumbnail.name == made  # made once


def test_a_small_image_is_its_own_thumbnail(client, project):
    [image] = add_images(project, 1, size=128)
    client.force_login(add_member(project, Role.ANNOTATOR))
    response = client.get(reverse("review:image_thumbnail", args=[image.pk]))
    assert b"".join(response.streaming_content) == image.file.open("rb").read()
    image.refresh_from_db()
    assert not image.thumbnail


def test_two_requests_at_once_keep_one_thumbnail(project):
    image = image_create(project=project, data=camera_frame(), filename="gate-cam.jpg")
    stale = Image.objects.get(pk=image.pk)  # read by a second request before the first stored its thumbnail
    first = image_thumbnail_name(image)
    assert image_thumbnail_name(stale) == first
    folder, files = default_storage.listdir(first.rsplit("/", 1)[0])
    assert files == [first.rsplit("/", 1)[1]]  # the second one's copy was deleted again


def test_an_unreadable_stored_image_falls_back_to_itself(project, caplog):
    image = image_create(project=project, data=camera_frame(), filename="gate-cam.jpg")
    with default_storage.open(image.file.name, "wb") as handle:
        handle.write(b"not an image any more")
    assert image_thumbnail_name(image) is None and "no thumbnail for image" in caplog.text
    image.refresh_from_db()
    assert not image.thumbnail


def test_deleting_the_image_deletes_its_thumbnail(project, django_capture_on_commit_callbacks):
    image = image_create(project=project, data=camera_frame(), filename="gate-cam.jpg")
    name = image_thumbnail_name(image)
    with django_capture_on_commit_callbacks(execute=True):
        image_delete(image=image)
    assert not default_storage.exists(name) and not default_storage.exists(image.file.name)


def test_the_queue_and_project_pages_show_thumbnails(client, project):
    [image] = add_images(project, 1)
    client.force_login(add_member(project, Role.ANNOTATOR))
    thumbnail = reverse("review:image_thumbnail", args=[image.pk])
    for page in ["review:project_queue", "review:project_detail"]:
        content = client.get(reverse(page, args=[project.pk])).content.decode()
        assert f'src="{thumbnail}"' in content and reverse("review:image_file", args=[image.pk]) not in content


def test_the_api_gives_each_image_a_thumbnail_url(project):
    image_create(project=project, data=camera_frame(), filename="gate-cam.jpg")
    client = api_client(add_member(project, Role.ANNOTATOR))
    listed = client.get(f"/api/v1/projects/{project.pk}/images/").data["results"][0]
    response = client.get(listed["thumbnail_url"])
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with PIL.Image.open(io.BytesIO(b"".join(response.streaming_content))) as thumbnail:
        assert max(thumbnail.size) == THUMBNAIL_SIDE
    assert api_client(add_member(make_project(), Role.MANAGER)).get(listed["thumbnail_url"]).status_code == 404


def test_a_thumbnail_deleted_from_the_storage_is_made_again(project):
    image = image_create(project=project, data=camera_frame(), filename="gate-cam.jpg")
    name = image_thumbnail_name(image)
    default_storage.delete(name)  # an operator cleared the cache
    image.refresh_from_db()
    image_thumbnail_open(image).close()
    again = image.thumbnail.name
    assert again and default_storage.exists(again)
    image.refresh_from_db()
    assert image.thumbnail.name == again


def test_a_region_is_cut_out_small_and_matches_the_image_there(client, project):
    """Error review's patches: the box's surroundings, not the whole frame."""
    pixels = np.random.default_rng(1).integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    pixels[600:700, 900:1100] = (250, 20, 20)  # a red car in a noisy frame
    out = io.BytesIO()
    PIL.Image.fromarray(pixels).save(out, "JPEG", quality=90)
    image = image_create(project=project, data=out.getvalue(), filename="gate-cam.jpg")
    client.force_login(add_member(project, Role.ANNOTATOR))
    url = reverse("review:image_region", args=[image.pk])

    response = client.get(url, {"region": "850,550,1150,750"})  # the car and 50 pixels around it
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert len(response.content) * 10 < image.file.size
    with PIL.Image.open(io.BytesIO(response.content)) as region:
        assert region.size == (300, 200)  # smaller than 320: as it is
        car = np.asarray(region.convert("RGB"))[60:140, 60:240].astype(int)
    assert np.abs(car - (250, 20, 20)).mean() < 12

    with PIL.Image.open(io.BytesIO(client.get(url).content)) as whole:  # no region: all of it
        assert whole.size == (320, 240)  # shrunk to fit, proportions kept (decoded at a smaller scale)
        car = np.asarray(whole.convert("RGB"))[98:110, 147:173].astype(int)  # the car at 0.16 scale
    assert np.abs(car - (250, 20, 20)).mean() < 30


@pytest.mark.parametrize("region", ["", "1,2,3", "0,0,10,x", "0,0,-5,10", "0,0,2001,10", "10,10,10,20",
                                    "0,0,١٠,10", "0,0,10,10,10", "0,0,0000001,1"])
def test_a_region_outside_the_image_or_not_whole_pixels_is_refused(client, project, region):
    [image] = add_images(project, 1, size=128)
    client.force_login(add_member(project, Role.ANNOTATOR))
    response = client.get(reverse("review:image_region", args=[image.pk]), {"region": region})
    assert response.status_code == 400 and b"region" in response.content


def test_a_region_is_for_members_only(client, project):
    [image] = add_images(project, 1, size=128)
    client.force_login(add_member(make_project(name="Other"), Role.MANAGER))
    assert client.get(reverse("review:image_region", args=[image.pk]), {"region": "0,0,10,10"}).status_code == 404


def test_a_region_of_an_unreadable_stored_image_says_so(client, project, caplog):
    image = image_create(project=project, data=camera_frame(), filename="gate-cam.jpg")
    with default_storage.open(image.file.name, "wb") as handle:
        handle.write(b"not an image any more")
    client.force_login(add_member(project, Role.ANNOTATOR))
    response = client.get(reverse("review:image_region", args=[image.pk]), {"region": "0,0,10,10"})
    assert response.status_code == 404 and b"cannot be read" in response.content and "no region of image" in caplog.text
