"""Tags: slices of a project's images (a camera, night), given by imports and the queue's bulk actions,
filtered on in the queue and the images API."""
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets.execution import dataset_import_execute
from datasets.models import DatasetImport
from review.models import Image, Role, Tag
from review.tags import MAX_TAGS, image_tags_add, tag_names_clean
from tests.datasets.helpers import scene_png, zip_of
from tests.factories import add_images, add_member, api_client, make_project

pytestmark = pytest.mark.django_db


def _tags(image_ids) -> list[list[str]]:
    return [sorted(Image.objects.get(pk=pk).tags.values_list("name", flat=True)) for pk in image_ids]


@pytest.mark.parametrize("value, names", [
    ("gate-cam, night", ["gate-cam", "night"]),
    (["gate-cam", "site a/north", "gate-cam", "  "], ["gate-cam", "site a/north"]),
    (["rain,  fog"], ["rain", "fog"]),
    ("", []),
    (None, []),
])
def test_tag_names_are_cleaned(value, names):
    assert tag_names_clean(value) == names


@pytest.mark.parametrize("value, message", [
    ("<script>", "is not a tag"),
    ("-leading", "is not a tag"),
    ("x" * 51, "is not a tag"),
    ([3], "A tag is a name"),
    (["ok", None], "A tag is a name, not None"),
    ([f"t{n}" for n in range(MAX_TAGS + 1)], f"At most {MAX_TAGS} tags"),
])
def test_bad_tag_names_are_refused(value, message):
    with pytest.raises(ValidationError, match=message):
        tag_names_clean(value)


def test_reviewers_tag_and_untag_images_in_bulk_and_the_queue_filters_by_tag():
    project = make_project()
    ids = [image.pk for image in add_images(project, 4, size=64)]
    reviewer, annotator = add_member(project, Role.REVIEWER), add_member(project, Role.ANNOTATOR)
    bulk = reverse("api:image_bulk", args=[project.pk])

    tagged = api_client(reviewer).post(bulk, {"action": "tag", "images": ids[:3], "tags": ["gate-cam", "night"]},
                                       format="json")
    assert tagged.status_code == 200, tagged.content
    assert (tagged.json()["changed"], tagged.json()["skipped"]) == (3, 0)
    assert _tags(ids) == [["gate-cam", "night"]] * 3 + [[]]
    again = api_client(reviewer).post(bulk, {"action": "tag", "images": ids[:2], "tags": ["night"]}, format="json")
    assert again.status_code == 200 and (again.json()["changed"], again.json()["skipped"]) == (0, 2)

    listed = api_client(annotator).get(reverse("api:image_list", args=[project.pk]), {"tag": "gate-cam",
                                                                                      "status": ""}).json()
    assert sorted(row["id"] for row in listed["results"]) == ids[:3]
    assert listed["results"][0]["tags"] == ["gate-cam", "night"]
    assert api_client(annotator).get(reverse("api:image_list", args=[project.pk]), {"tag": "yard"}).json()[
        "results"] == []

    untagged = api_client(reviewer).post(bulk, {"action": "untag", "filter": {"tag": "night"}, "tags": ["night"]},
                                         format="json")
    assert untagged.json()["changed"] == 3 and _tags(ids) == [["gate-cam"]] * 3 + [[]]
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["gate-cam"]  # a tag on no image goes

    for refused, status in [({"action": "tag", "images": ids, "tags": ["<b>"]}, 400),
                            ({"action": "tag", "images": ids, "tags": []}, 400)]:
        response = api_client(reviewer).post(bulk, refused, format="json")
        assert response.status_code == status and "tags" in str(response.json())
    assert api_client(annotator).post(bulk, {"action": "tag", "images": ids, "tags": ["x"]},
                                      format="json").status_code == 403
    assert _tags(ids) == [["gate-cam"]] * 3 + [[]]  # nothing changed by the refusals


def test_tags_stay_in_their_project():
    project, other = make_project(), make_project(name="Other")
    mine, theirs = add_images(project, 1, size=64)[0], add_images(other, 1, size=64, first_seed=5)[0]
    assert image_tags_add(project=project, images=Image.objects.filter(pk__in=[mine.pk, theirs.pk]),
                          names=["gate"]) == 1
    assert _tags([mine.pk, theirs.pk]) == [["gate"], []]
    outsider = add_member(other, Role.REVIEWER)
    response = api_client(outsider).post(reverse("api:image_bulk", args=[other.pk]),
                                         {"action": "tag", "images": [mine.pk], "tags": ["x"]}, format="json")
    assert response.status_code == 400 and _tags([mine.pk]) == [["gate"]]


def test_the_queue_page_tags_shows_and_filters(client):
    project = make_project()
    ids = [image.pk for image in add_images(project, 3, size=64)]
    client.force_login(add_member(project, Role.REVIEWER))
    url = reverse("review:queue_bulk", args=[project.pk])
    response = client.post(url, {"action": "tag", "scope": "selected", "image": ids[:2], "tags": "yard, dusk"},
                           follow=True)
    assert "Tagged yard, dusk: 2 images." in response.content.decode()
    queue = reverse("review:project_queue", args=[project.pk])
    page = client.get(queue, {"status": "", "tag": "yard"}).content.decode()
    assert page.count('class="thumb"') == 2 and " · dusk · yard" in page and '<option value="yard" selected>' in page
    editor = client.get(reverse("review:image_editor", args=[ids[0]])).content.decode()
    assert 'id="image-tags"' in editor and "tag=yard" in editor


def test_an_import_tags_the_images_it_adds_and_refuses_bad_tags_before_it_is_queued():
    project = make_project()
    manager = api_client(project.memberships.get(role=Role.MANAGER).user)
    url = f"/api/v1/projects/{project.pk}/imports/"
    upload = {"file": SimpleUploadedFile("night.zip", zip_of({"a.png": scene_png(1), "b.png": scene_png(2)}).getvalue())}
    refused = manager.post(url, {**upload, "tags": "not<ok>"}, format="multipart")
    assert refused.status_code == 400 and "tags" in refused.json()["fields"] and not DatasetImport.objects.exists()

    upload["file"].seek(0)
    response = manager.post(url, {**upload, "tags": ["gate-cam", "night"]}, format="multipart")
    assert response.status_code == 202 and response.json()["tags"] == ["gate-cam", "night"]
    job = dataset_import_execute(job_id=response.json()["id"])
    assert job.status == "succeeded" and job.report["images_added"] == 2
    assert _tags(Image.objects.filter(project=project).values_list("pk", flat=True)) == [["gate-cam", "night"]] * 2
    upload["file"].seek(0)
    again = dataset_import_execute(job_id=manager.post(url, {**upload, "tags": "dusk"}, format="multipart").json()["id"])
    assert again.report["images_added"] == 0 and not Tag.objects.filter(name="dusk").exists()  # no image, no tag


def test_managers_rename_merge_and_delete_tags_on_the_settings_page_and_through_the_api(client):
    project = make_project()
    ids = [image.pk for image in add_images(project, 3, size=64)]
    image_tags_add(project=project, images=Image.objects.filter(pk__in=ids[:2]), names=["nite"])
    image_tags_add(project=project, images=Image.objects.filter(pk__in=ids[1:]), names=["night"])
    manager = project.memberships.get(role=Role.MANAGER).user
    client.force_login(manager)
    settings_page = client.get(reverse("review:project_settings", args=[project.pk])).content.decode()
    nite = Tag.objects.get(name="nite")
    assert f'data-tag-id="{nite.pk}"' in settings_page and "tag=nite" in settings_page

    answer = client.post(reverse("review:tag_edit", args=[nite.pk]), {"name": "night"}, follow=True)
    assert "The images tagged nite are now tagged night" in answer.content.decode()
    assert _tags(ids) == [["night"]] * 3 and list(Tag.objects.values_list("name", flat=True)) == ["night"]

    night = Tag.objects.get()
    api = api_client(manager)
    refused = api.patch(reverse("api:tag_detail", args=[night.pk]), {"name": "a,b"}, format="json")
    assert refused.status_code == 400 and "one tag name" in str(refused.json())
    renamed = api.patch(reverse("api:tag_detail", args=[night.pk]), {"name": "night camera"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "night camera"
    listed = api_client(add_member(project, Role.ANNOTATOR)).get(reverse("api:tag_list", args=[project.pk])).json()
    assert [(row["name"], row["image_count"]) for row in listed] == [("night camera", 3)]
    assert api.delete(reverse("api:tag_detail", args=[night.pk])).status_code == 204
    assert _tags(ids) == [[]] * 3 and Image.objects.count() == 3


def test_an_import_can_tag_each_image_with_its_top_folder():
    project = make_project()
    manager = api_client(project.memberships.get(role=Role.MANAGER).user)
    archive = zip_of({"gate/2026-11-30/a.png": scene_png(1), "yard/b.png": scene_png(2), "c.png": scene_png(3),
                      "cam#7/d.png": scene_png(4)})
    response = manager.post(f"/api/v1/projects/{project.pk}/imports/",
                            {"file": SimpleUploadedFile("site.zip", archive.getvalue()), "tag_folders": "true",
                             "tags": "site-a"}, format="multipart")
    assert response.status_code == 202 and response.json()["tag_folders"] is True
    job = dataset_import_execute(job_id=response.json()["id"])
    assert job.status == "succeeded" and job.report["images_added"] == 4
    assert job.report["folders_not_tags"] == ["cam#7"]  # said, and its image came in with the other tags
    tags = {image.original_name: sorted(image.tags.values_list("name", flat=True))
            for image in Image.objects.filter(project=project)}
    assert tags == {"a.png": ["gate", "site-a"], "b.png": ["site-a", "yard"], "c.png": ["site-a"],
                    "d.png": ["site-a"]}
