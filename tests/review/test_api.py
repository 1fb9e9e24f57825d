"""REST endpoints of the review app: happy paths, bad input and what it leaves unchanged."""
import hashlib
import io
import re
import zipfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from inference.models import InferenceRun, Prediction
from review.api_tokens import api_token_create
from review.demo_images import generate_scene
from review.models import Annotation, ApiToken, Image, Membership, Project, ReviewEvent, ReviewStatus, Role
from review.project_deletion import project_deletion_execute
from tests.factories import UserFactory, add_images, add_member, add_model_version, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return make_project()


@pytest.fixture
def manager(project):
    return project.memberships.get(role=Role.MANAGER).user


def png(seed: int = 0, size: int = 64) -> bytes:
    return generate_scene(seed, width=size, height=size).png_bytes()


def upload(name: str, data: bytes):
    file = io.BytesIO(data)
    file.name = name
    return file


# --- Projects, members, classes -----------------------------------------------------------------

def test_project_create_list_update_delete(media_root, django_capture_on_commit_callbacks):
    user = UserFactory()
    client = api_client(user)
    created = client.post(reverse("api:project_list"), {"name": " Cars ", "class_names": ["car", "bus"]},
                          format="json")
    assert created.status_code == 201, created.data
    assert created.data["name"] == "Cars" and created.data["role"] == "manager" and created.data["image_count"] == 0
    project_id = created.data["id"]
    listing = client.get(reverse("api:project_list")).data
    assert [p["id"] for p in listing] == [project_id]
    assert api_client(UserFactory()).get(reverse("api:project_list")).data == []

    changed = client.patch(reverse("api:project_detail", args=[project_id]),
                           {"retrain_after_reviews": 10, "infer_on_upload": False, "tag_loss_limit": 0.03},
                           format="json")
    assert changed.status_code == 200 and changed.data["retrain_after_reviews"] == 10
    assert changed.data["tag_loss_limit"] == 0.03 and Project.objects.get(pk=project_id).tag_loss_limit == 0.03
    off = client.patch(reverse("api:project_detail", args=[project_id]), {"tag_loss_limit": None}, format="json")
    assert off.status_code == 200 and off.data["tag_loss_limit"] is None
    bad = client.patch(reverse("api:project_detail", args=[project_id]), {"holdout_fraction": 2}, format="json")
    assert bad.status_code == 400 and bad.data["fields"]["holdout_fraction"]
    assert Project.objects.get(pk=project_id).holdout_fraction == 0.2

    project = Project.objects.get(pk=project_id)
    image = add_images(project, 1)[0]
    car = project.label_classes.get(name="car").pk
    saved = client.put(reverse("api:image_boxes", args=[image.pk]),  # a human box, which PROTECTs its class
                       {"version": image.version, "boxes": [{"label_class": car, "x": 1, "y": 1, "w": 8, "h": 8}]},
                       format="json")
    assert saved.status_code == 200
    folder = media_root / "projects" / str(project_id)
    assert any(folder.rglob("*.png"))
    with django_capture_on_commit_callbacks(execute=False):
        deleting = client.delete(reverse("api:project_detail", args=[project_id]))
    assert deleting.status_code == 202 and deleting.data["status"] == "queued"
    with django_capture_on_commit_callbacks(execute=True):
        project_deletion_execute(run_id=deleting.data["id"])  # as the worker does
    assert not Project.objects.filter(pk=project_id).exists()
    assert not folder.exists()  # its files went with it, and the folders they were in


def test_project_create_refuses_bad_input():
    client = api_client(UserFactory())
    response = client.post(reverse("api:project_list"), {"name": "", "class_names": "car"}, format="json")
    assert response.status_code == 400
    assert set(response.data["fields"]) == {"name", "class_names"}
    assert response.data["detail"].startswith("name:")
    assert not Project.objects.exists()


def test_members_add_change_remove_and_keep_a_manager(project, manager):
    client = api_client(manager)
    newcomer = UserFactory()
    url = reverse("api:member_list", args=[project.pk])
    added = client.post(url, {"username": newcomer.username, "role": "reviewer"}, format="json")
    assert added.status_code == 201 and added.data["role"] == "reviewer"
    assert client.post(url, {"username": "nobody-here", "role": "reviewer"}, format="json").status_code == 400
    assert client.post(url, {"username": newcomer.username, "role": "owner"}, format="json").status_code == 400

    detail = reverse("api:member_detail", args=[project.pk, newcomer.pk])
    assert client.patch(detail, {"role": "manager"}, format="json").data["role"] == "manager"
    assert client.delete(detail).status_code == 204
    assert not Membership.objects.filter(project=project, user=newcomer).exists()

    # The last manager can neither step down nor leave.
    own = reverse("api:member_detail", args=[project.pk, manager.pk])
    refused = client.patch(own, {"role": "annotator"}, format="json")
    assert refused.status_code == 400 and "at least one manager" in refused.data["detail"]
    assert client.delete(own).status_code == 400
    assert Membership.objects.get(project=project, user=manager).role == Role.MANAGER


def test_annotator_cannot_raise_their_own_role(project):
    annotator = add_member(project, Role.ANNOTATOR)
    client = api_client(annotator)
    url = reverse("api:member_detail", args=[project.pk, annotator.pk])
    assert client.patch(url, {"role": "manager"}, format="json").status_code == 403
    assert client.post(reverse("api:member_list", args=[project.pk]),
                       {"username": annotator.username, "role": "manager"}, format="json").status_code == 403
    assert Membership.objects.get(project=project, user=annotator).role == Role.ANNOTATOR


def test_label_classes(project, manager):
    client = api_client(manager)
    url = reverse("api:label_class_list", args=[project.pk])
    created = client.post(url, {"name": "bus", "colour": "#112233"}, format="json")
    assert created.status_code == 201 and created.data["index"] == 3 and created.data["colour"] == "#112233"
    duplicate = client.post(url, {"name": "bus"}, format="json")
    assert duplicate.status_code == 400 and "already exists" in duplicate.data["detail"]
    bad_colour = client.patch(reverse("api:label_class_detail", args=[created.data["id"]]), {"colour": "red"},
                              format="json")
    assert bad_colour.status_code == 400 and bad_colour.data["fields"]["colour"]
    renamed = client.patch(reverse("api:label_class_detail", args=[created.data["id"]]), {"name": "coach"},
                           format="json")
    assert renamed.data["name"] == "coach" and renamed.data["index"] == 3
    assert [c["name"] for c in client.get(url).data] == ["circle", "square", "triangle", "coach"]

    # A class with human boxes stays; an unused one goes.
    image = add_images(project, 1)[0]
    circle = project.label_classes.get(name="circle")
    Annotation.objects.create(image=image, label_class=circle, x=1, y=1, w=5, h=5)
    in_use = client.delete(reverse("api:label_class_detail", args=[circle.pk]))
    assert in_use.status_code == 400 and "1 human box use" in in_use.data["detail"]
    assert client.delete(reverse("api:label_class_detail", args=[created.data["id"]])).status_code == 204


# --- Uploads ------------------------------------------------------------------------------------

def test_upload_images_and_predict_them_when_a_model_is_active(project):
    add_model_version(project)
    client = api_client(add_member(project, Role.ANNOTATOR))
    url = reverse("api:image_list", args=[project.pk])
    response = client.post(url, {"files": [upload("a.png", png(1)), upload("b.png", png(2))]}, format="multipart")
    assert response.status_code == 201, response.data
    assert [i["name"] for i in response.data["added"]] == ["a.png", "b.png"]
    run = InferenceRun.objects.get(pk=response.data["inference_run"])
    assert sorted(run.image_ids) == sorted(i["id"] for i in response.data["added"])

    again = client.post(url, {"files": [upload("copy.png", png(1))]}, format="multipart")
    assert again.status_code == 200 and again.data["duplicates"][0]["name"] == "copy.png"
    assert Image.objects.filter(project=project).count() == 2


def test_upload_is_all_or_nothing_unless_partial(project, media_root):
    client = api_client(add_member(project, Role.ANNOTATOR))
    url = reverse("api:image_list", args=[project.pk])
    files = lambda: [upload("good.png", png(1)), upload("evil.svg", b"<svg onload=alert(1)>"),  # noqa: E731
                     upload("cut.png", png(3)[:200])]
    refused = client.post(url, {"files": files()}, format="multipart")
    assert refused.status_code == 400 and refused.data["committed"] is False
    assert {r["name"] for r in refused.data["rejected"]} == {"evil.svg", "cut.png"}
    assert [r["error"] for r in refused.data["rejected"]][0] == (  # named once, by "name"
        "The file is not an image in an accepted format (JPEG, PNG, WebP, BMP, TIFF).")
    assert "nothing was stored" in refused.data["detail"]
    assert not Image.objects.exists() and not any(media_root.rglob("*.png"))

    kept = client.post(url, {"files": files(), "partial": "true"}, format="multipart")
    assert kept.status_code == 201 and [i["name"] for i in kept.data["added"]] == ["good.png"]
    assert Image.objects.count() == 1


def test_upload_needs_files(project):
    response = api_client(add_member(project)).post(reverse("api:image_list", args=[project.pk]), {},
                                                    format="multipart")
    assert response.status_code == 400 and "files" in response.data["fields"]


def _zip_bytes(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    buffer.seek(0)
    buffer.name = "images.zip"
    return buffer


def test_zip_upload(project):
    client = api_client(add_member(project))
    archive = _zip_bytes({"day/a.png": png(1), "day/b.png": png(2), "README.txt": b"hello", "gate.mp4": b"..."})
    response = client.post(reverse("api:image_zip_upload", args=[project.pk]), {"archive": archive},
                           format="multipart")
    assert response.status_code == 201, response.data
    assert sorted(i["name"] for i in response.data["added"]) == ["a.png", "b.png"]
    assert response.data["ignored"] == [  # a video's frames come through an import, which a worker runs
        {"name": "README.txt", "reason": "not an image file"},
        {"name": "gate.mp4", "reason": "a video: import the zip (POST .../imports/) to take its frames"}]


def test_zip_with_an_escaping_entry_stores_nothing(project, media_root, tmp_path):
    client = api_client(add_member(project))
    archive = _zip_bytes({"a.png": png(1), "../../escaped.png": png(2)})
    response = client.post(reverse("api:image_zip_upload", args=[project.pk]), {"archive": archive},
                           format="multipart")
    assert response.status_code == 400 and "outside the archive" in response.data["detail"]
    assert not Image.objects.exists()
    assert not list(tmp_path.rglob("escaped.png")) and not any(media_root.rglob("*.png"))


def test_zip_upload_refuses_non_zip_and_too_many_entries(project, settings):
    client = api_client(add_member(project))
    url = reverse("api:image_zip_upload", args=[project.pk])
    not_zip = upload("x.zip", b"PK\x03\x04 but not really")
    assert client.post(url, {"archive": not_zip}, format="multipart").status_code == 400
    settings.MAX_ARCHIVE_ENTRIES = 2
    many = _zip_bytes({f"{n}.png": png(n) for n in range(3)})
    response = client.post(url, {"archive": many}, format="multipart")
    assert response.status_code == 400 and "limit is 2" in response.data["detail"]
    assert not Image.objects.exists()


# --- The queue ----------------------------------------------------------------------------------

def test_image_list_is_cursor_paginated_in_queue_order(project):
    images = add_images(project, 5)
    for priority, image in zip([0.1, 0.9, 0.5, 0.7, 0.3], images):
        Image.objects.filter(pk=image.pk).update(priority=priority)
    client = api_client(add_member(project))
    url = reverse("api:image_list", args=[project.pk])
    first = client.get(url, {"page_size": 2}).data
    second = client.get(first["next"]).data
    third = client.get(second["next"]).data
    seen = [i["id"] for page in (first, second, third) for i in page["results"]]
    assert seen == [images[k].pk for k in (1, 3, 2, 4, 0)]
    assert third["next"] is None
    newest = client.get(url, {"ordering": "newest"}).data["results"]
    assert [i["id"] for i in newest] == [i.pk for i in reversed(images)]


def test_image_list_filters_and_refuses_unknown_orderings(project):
    images = add_images(project, 3)
    circle = project.label_classes.get(name="circle")
    Annotation.objects.create(image=images[0], label_class=circle, x=1, y=1, w=5, h=5)
    Image.objects.filter(pk=images[0].pk).update(status=ReviewStatus.REVIEWED)
    client = api_client(add_member(project))
    url = reverse("api:image_list", args=[project.pk])
    assert [i["id"] for i in client.get(url, {"status": "reviewed"}).data["results"]] == [images[0].pk]
    by_class = client.get(url, {"label_class": circle.pk}).data["results"]
    assert [(i["id"], i["box_count"]) for i in by_class] == [(images[0].pk, 1)]
    for bad in ({"ordering": "file__name"}, {"ordering": "-password"}, {"status": "gone"}):
        response = client.get(url, bad)
        assert response.status_code == 400, bad
        assert response.data["fields"]


def test_image_list_query_count_does_not_grow_with_page_size(project):
    add_model_version(project)
    add_images(project, 12)
    client = api_client(add_member(project))
    url = reverse("api:image_list", args=[project.pk])
    counts = []
    for size in (2, 12):
        with CaptureQueriesContext(connection) as queries:
            assert len(client.get(url, {"page_size": size}).data["results"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_project_list_query_count_does_not_grow_with_projects(django_assert_max_num_queries):
    user = UserFactory()
    make_project(owner=user, name="one")
    with CaptureQueriesContext(connection) as one:
        api_client(user).get(reverse("api:project_list"))
    for n in range(5):
        make_project(owner=user, name=f"more {n}")
    with django_assert_max_num_queries(len(one)):
        assert len(api_client(user).get(reverse("api:project_list")).data) == 6


# --- One image and its boxes --------------------------------------------------------------------

@pytest.fixture
def predicted_image(project):
    """An image with two predictions of the active model."""
    version = add_model_version(project)
    image = add_images(project, 1)[0]
    circle, square = project.label_classes.order_by("index")[:2]
    first = Prediction.objects.create(image=image, model_version=version, label_class=circle, x=10, y=10, w=20,
                                      h=20, score=0.9)
    second = Prediction.objects.create(image=image, model_version=version, label_class=square, x=60, y=60, w=30,
                                       h=30, score=0.6)
    Prediction.objects.create(image=image, model_version=version, label_class=square, x=5, y=80, w=10, h=10,
                              score=0.1)
    return image, version, first, second


def test_image_detail_shows_predictions_and_boxes(project, predicted_image):
    image, version, first, _ = predicted_image
    client = api_client(add_member(project))
    data = client.get(reverse("api:image_detail", args=[image.pk])).data
    assert data["model_version"] == version.pk and data["version"] == 1
    assert [p["id"] for p in data["predictions"]][0] == first.pk and len(data["predictions"]) == 3
    assert data["boxes"] == [] and data["file_url"] == reverse("api:image_file", args=[image.pk])
    other = make_project(name="Other")
    foreign = add_model_version(other)
    response = client.get(reverse("api:image_detail", args=[image.pk]), {"model_version": foreign.pk})
    assert response.status_code == 400 and "not a version of this project" in response.data["detail"]


def test_a_script_fetches_the_pixels_at_file_url_with_its_token(project):
    """The pages' image stream needs a browser session; file_url is the API's, which a token opens too."""
    image = add_images(project, 1, size=48)[0]
    member, stranger = add_member(project), UserFactory()
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=member)}")
    file_url = script.get(reverse("api:image_detail", args=[image.pk])).data["file_url"]
    response = script.get(file_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == image.file.open("rb").read()
    script.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=stranger)}")
    assert script.get(file_url).status_code == 404


def test_image_detail_matches_the_serializer_with_the_queue_counts(project, predicted_image):
    """image_detail_data takes shortcuts (one long-lived serializer, counts from fetched rows, boxes as
    plain rows written out without DRF's fields, no second read after a save): the answer must stay
    what ImageDetailSerializer gives field by field with the queue's own count subqueries."""
    from rest_framework import serializers

    from review.api import image_detail_data
    from review.queue import images_with_counts
    from review.serializers import BoxSerializer, ImageDetailSerializer, PredictedBoxSerializer

    image, version, first, second = predicted_image
    annotator = add_member(project)
    body = {"version": 1, "boxes": [
        {"label_class": first.label_class_id, "x": 12, "y": 10.5, "w": 20, "h": 20, "source_prediction": first.pk},
        {"label_class": second.label_class_id, "x": 1, "y": 1, "w": 8, "h": 8}]}
    saved = api_client(annotator).put(reverse("api:image_boxes", args=[image.pk]), body, format="json")
    assert saved.status_code == 200
    assert saved.json() == image_detail_data(image, model_version_id=version.pk)  # the answer to a save is no shortcut
    Image.objects.filter(pk=image.pk).update(uncertainty=0.25, disagreement=0.5)
    for shown in (version, None):
        expected = images_with_counts(Image.objects.filter(pk=image.pk), shown).select_related("reviewed_by").get()
        expected.shown_model_version_id = shown.pk if shown else None
        expected.shown_predictions = list(Prediction.objects.filter(image=image, model_version=shown)
                                          .order_by("-score", "id")) if shown else []
        expected.prediction_count = len(expected.shown_predictions)
        expected.shown_boxes = list(expected.annotations.all())
        data = image_detail_data(image, model_version_id=shown and shown.pk)
        assert data == ImageDetailSerializer(expected).data
        assert data["boxes"] == [serializers.ModelSerializer.to_representation(BoxSerializer(), box)
                                 for box in expected.shown_boxes]
        assert data["predictions"] == [serializers.Serializer.to_representation(PredictedBoxSerializer(), box)
                                       for box in expected.shown_predictions]
        assert data["box_count"] == 2 and data["correction_count"] >= 1 and data["reviewed_by"] == annotator.username
    assert len(image_detail_data(image, model_version_id=version.pk)["predictions"]) == 3  # the comparison saw some


def test_box_input_shortcut_gives_what_the_fields_give():
    """BoxInSerializer takes plain JSON numbers without its fields: for every other input the fields
    decide, and where both could, they agree."""
    from rest_framework import serializers

    from review.serializers import BoxInSerializer

    box = {"label_class": 3, "x": 1, "y": 2.5, "w": 10, "h": 0.25}
    inputs = [box, {**box, "source_prediction": 7}, {**box, "source_prediction": None}, {**box, "extra": "ignored"},
              {**box, "x": "4"}, {**box, "label_class": "3"}, {**box, "label_class": 3.0}, {**box, "x": True},
              {**box, "label_class": True}, {**box, "x": float("nan")}, {**box, "w": float("inf")},
              {**box, "x": None}, {**box, "y": [1]}, {**box, "h": 10**400}, {**box, "x": 2**53 + 1},
              {**box, "source_prediction": "x"}, {**box, "source_prediction": 1.5}, {"x": 1}, [1, 2], "box"]

    def outcome(convert, data):
        try:
            return dict(convert(data))
        except serializers.ValidationError as exc:
            return ("invalid", exc.detail)

    for data in inputs:
        field_by_field = outcome(lambda d: serializers.Serializer.to_internal_value(BoxInSerializer(), d), data)
        assert outcome(BoxInSerializer().to_internal_value, data) == field_by_field, data
    assert outcome(BoxInSerializer().to_internal_value, box) == {**box, "x": 1.0, "w": 10.0,
                                                                  "source_prediction": None}


def test_save_boxes_counts_the_review(project, predicted_image):
    image, version, first, second = predicted_image
    annotator = add_member(project)
    client = api_client(annotator)
    triangle = project.label_classes.get(name="triangle")
    body = {
        "version": 1, "score_threshold": 0.5, "seconds_spent": 12.5,
        "boxes": [
            {"label_class": first.label_class_id, "x": 10, "y": 10, "w": 20, "h": 20, "source_prediction": first.pk},
            {"label_class": triangle.pk, "x": 60, "y": 60, "w": 30, "h": 30, "source_prediction": second.pk},
            {"label_class": triangle.pk, "x": 1, "y": 1, "w": 8, "h": 8},
        ],
    }
    response = client.put(reverse("api:image_boxes", args=[image.pk]), body, format="json")
    assert response.status_code == 200, response.data
    assert response.data["version"] == 2 and response.data["status"] == "reviewed"
    assert [b["source"] for b in response.data["boxes"]] == ["accepted_prediction", "edited_prediction", "drawn"]
    event = ReviewEvent.objects.get(image=image)
    # The 0.1-score prediction was hidden by the threshold, so not deleting it is not a correction.
    assert (event.accepted, event.relabeled, event.added, event.deleted, event.moved) == (1, 1, 1, 0, 0)
    assert event.model_version_id == version.pk and event.seconds_spent == 12.5 and event.user == annotator


def test_a_save_names_a_version_of_this_project_or_changes_nothing(project, predicted_image):
    image, version, first, _ = predicted_image
    client = api_client(add_member(project))
    url = reverse("api:image_boxes", args=[image.pk])
    box = {"label_class": first.label_class_id, "x": 1, "y": 1, "w": 8, "h": 8}
    foreign = add_model_version(make_project(name="Other"))
    refused = client.put(url, {"version": 1, "model_version": foreign.pk, "boxes": [box]}, format="json")
    assert refused.status_code == 400 and "not a version of this project" in refused.data["detail"]
    assert Image.objects.get(pk=image.pk).version == 1 and not Annotation.objects.filter(image=image).exists()
    unused = add_model_version(project)  # this project's, with no predictions on the image: nothing was shown
    saved = client.put(url, {"version": 1, "model_version": unused.pk, "boxes": [box]}, format="json")
    assert saved.status_code == 200 and saved.data["model_version"] == unused.pk and saved.data["predictions"] == []
    assert ReviewEvent.objects.get(image=image).model_version_id == unused.pk


def test_correction_count_is_the_sum_of_the_review_events_and_the_queue_sorts_by_it(project, predicted_image):
    """Each image keeps its corrections so the queue can sort 100k images by them: after every save,
    the stored count, the save's answer and a fresh read agree with the events' sum."""
    image, version, first, second = predicted_image
    others = add_images(project, 2, first_seed=1)
    client = api_client(add_member(project))
    url = reverse("api:image_boxes", args=[image.pk])
    moved = {"label_class": first.label_class_id, "x": 30, "y": 10, "w": 20, "h": 20, "source_prediction": first.pk}
    drawn = {"label_class": first.label_class_id, "x": 1, "y": 1, "w": 8, "h": 8}
    answers = [client.put(url, {"version": 1, "score_threshold": 0.5, "boxes": [moved, drawn]}, format="json"),
               client.put(url, {"version": 2, "score_threshold": 0.5, "boxes": [drawn]}, format="json"),
               client.put(reverse("api:image_boxes", args=[others[1].pk]), {"version": 1, "boxes": [drawn]},
                          format="json")]
    assert [a.status_code for a in answers] == [200, 200, 200]
    events = sum(event.corrections for event in ReviewEvent.objects.filter(image=image))
    image.refresh_from_db()
    assert image.correction_count == events == answers[1].data["correction_count"]
    # Save 1: the 0.9 prediction moved, the 0.6 one deleted, one drawn; save 2: both deleted, one drawn.
    assert events == 6 and answers[0].data["correction_count"] == 3
    assert client.get(reverse("api:image_detail", args=[image.pk])).data["correction_count"] == 6
    listed = client.get(reverse("api:image_list", args=[project.pk]), {"ordering": "corrections"}).data["results"]
    assert [row["id"] for row in listed] == [image.pk, others[1].pk, others[0].pk]
    assert [row["correction_count"] for row in listed] == [6, 1, 0]


def test_a_save_through_an_image_read_before_another_save_keeps_the_count_right(project):
    from review.services import BoxIn, image_boxes_save

    [image] = add_images(project, 1)
    circle = project.label_classes.get(name="circle")
    early = Image.objects.get(pk=image.pk)  # read at version 1
    image_boxes_save(image=image, user=None, boxes=[BoxIn(circle.pk, 1, 1, 5, 5)], version=1)
    saved = image_boxes_save(image=early, user=None, boxes=[BoxIn(circle.pk, 1, 1, 5, 5)] * 2, version=2)
    assert saved.correction_count == 3 == Image.objects.get(pk=image.pk).correction_count


def test_correction_counts_are_filled_from_earlier_review_events(project):
    """The migration that added the count fills it from the events saved before it."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("review.migrations.0007_image_correction_count")
    images = add_images(project, 2)
    ReviewEvent.objects.create(image=images[0], moved=1, added=2, accepted=5)
    ReviewEvent.objects.create(image=images[0], deleted=1, relabeled=1)
    Image.objects.update(correction_count=0)
    migration.correction_counts_from_events(apps, None)
    assert list(Image.objects.order_by("pk").values_list("correction_count", flat=True)) == [5, 0]


def test_stale_save_answers_409_with_the_other_reviewers_boxes(project, predicted_image):
    image, *_ = predicted_image
    circle = project.label_classes.get(name="circle")
    box = {"label_class": circle.pk, "x": 1, "y": 2, "w": 3, "h": 4}
    url = reverse("api:image_boxes", args=[image.pk])
    assert api_client(add_member(project)).put(url, {"version": 1, "boxes": [box]}, format="json").status_code == 200
    late = api_client(add_member(project)).put(url, {"version": 1, "boxes": []}, format="json")
    assert late.status_code == 409
    assert "saved by someone else" in late.data["detail"]
    assert late.data["current"]["version"] == 2 and len(late.data["current"]["boxes"]) == 1
    assert Annotation.objects.filter(image=image).count() == 1  # the first save is intact


@pytest.mark.parametrize(("box", "field_text"), [
    ({"label_class": "CLS", "x": 1, "y": 1, "w": 5}, "h"),                     # missing field
    ({"label_class": "CLS", "x": "left", "y": 1, "w": 5, "h": 5}, "x"),        # wrong type
    ({"label_class": "CLS", "x": 100, "y": 100, "w": 50, "h": 50}, "outside"),  # outside the 128 px image
    ({"label_class": "CLS", "x": 1, "y": 1, "w": 0, "h": 5}, "positive"),       # zero width
    ({"label_class": "CLS", "x": 1, "y": 1, "w": -3, "h": 5}, "positive"),      # negative width
    ({"label_class": "CLS", "x": "NaN", "y": 1, "w": 5, "h": 5}, "finite"),     # NaN
    ({"label_class": "CLS", "x": 1, "y": 1, "w": "Infinity", "h": 5}, "finite"),
    ({"label_class": 999999, "x": 1, "y": 1, "w": 5, "h": 5}, "not a class of this project"),
    ({"label_class": "OTHER", "x": 1, "y": 1, "w": 5, "h": 5}, "not a class of this project"),
    ({"label_class": "CLS", "x": 1, "y": 1, "w": 5, "h": 5, "source_prediction": 999999}, "not a prediction"),
])
def test_save_refuses_bad_boxes_and_changes_nothing(project, box, field_text):
    image = add_images(project, 1)[0]
    other = make_project(name="Other")
    box = {**box, "label_class": {"CLS": project.label_classes.first().pk,
                                  "OTHER": other.label_classes.first().pk}.get(box["label_class"], box["label_class"])}
    response = api_client(add_member(project)).put(
        reverse("api:image_boxes", args=[image.pk]), {"version": 1, "boxes": [box]}, format="json")
    assert response.status_code == 400, response.data
    assert field_text in str(response.data), response.data
    assert response.data["detail"] and "fields" in response.data
    image.refresh_from_db()
    assert image.version == 1 and image.status == ReviewStatus.UNREVIEWED
    assert not Annotation.objects.exists() and not ReviewEvent.objects.exists()


def test_save_refuses_a_nan_literal_and_a_missing_version(project):
    image = add_images(project, 1)[0]
    client = APIClient()
    client.force_authenticate(add_member(project))
    url = reverse("api:image_boxes", args=[image.pk])
    raw = '{"version": 1, "boxes": [{"label_class": 1, "x": NaN, "y": 1, "w": 5, "h": 5}]}'
    assert client.put(url, raw, content_type="application/json").status_code == 400
    missing = client.put(url, {"boxes": []}, format="json")
    assert missing.status_code == 400 and "version" in missing.data["fields"]
    assert Image.objects.get(pk=image.pk).version == 1


def test_approve_needs_a_reviewed_image(project, predicted_image):
    image, *_ = predicted_image
    client = api_client(add_member(project, Role.REVIEWER))
    url = reverse("api:image_status", args=[image.pk])
    refused = client.post(url, {"status": "approved"}, format="json")
    assert refused.status_code == 400 and "save its boxes first" in refused.data["detail"]
    client.put(reverse("api:image_boxes", args=[image.pk]), {"version": 1, "boxes": []}, format="json")
    approved = client.post(url, {"status": "approved"}, format="json")
    assert approved.status_code == 200 and approved.data["status"] == "approved"


def test_approving_a_version_someone_saved_over_is_refused_with_their_boxes(project, predicted_image):
    image, *_ = predicted_image
    reviewer = api_client(add_member(project, Role.REVIEWER))
    annotator = api_client(add_member(project))
    circle = project.label_classes.get(name="circle")
    annotator.put(reverse("api:image_boxes", args=[image.pk]), {"version": 1, "boxes": []}, format="json")
    # The reviewer looks at version 2 (no boxes); the annotator then draws a circle (version 3).
    annotator.put(reverse("api:image_boxes", args=[image.pk]),
                  {"version": 2, "boxes": [{"label_class": circle.pk, "x": 1, "y": 1, "w": 9, "h": 9}]}, format="json")
    url = reverse("api:image_status", args=[image.pk])
    stale = reviewer.post(url, {"status": "approved", "version": 2}, format="json")
    assert stale.status_code == 409 and stale.data["current"]["version"] == 3
    assert [box["label_class"] for box in stale.data["current"]["boxes"]] == [circle.pk]
    assert Image.objects.get(pk=image.pk).status == "reviewed"
    approved = reviewer.post(url, {"status": "approved", "version": 3}, format="json")
    assert approved.status_code == 200 and approved.data["status"] == "approved" and approved.data["version"] == 4
    back = reviewer.post(url, {"status": "unreviewed", "version": 4}, format="json")
    assert back.status_code == 200 and back.data["status"] == "unreviewed"
    refused = reviewer.post(url, {"status": "approved", "version": 5}, format="json")
    assert refused.status_code == 400 and "save its boxes first" in refused.data["detail"]
    assert Image.objects.get(pk=image.pk).version == 5


def test_saving_reviews_starts_the_auto_retrain(project):
    from training.models import TrainingRun

    project.retrain_after_reviews = 2
    project.holdout_fraction = 0.5
    project.save()
    images = add_images(project, 10)
    client = api_client(add_member(project))
    circle = project.label_classes.get(name="circle")
    for image in images:
        client.put(reverse("api:image_boxes", args=[image.pk]),
                   {"version": 1, "boxes": [{"label_class": circle.pk, "x": 1, "y": 1, "w": 9, "h": 9}]},
                   format="json")
    run = TrainingRun.objects.get(project=project)
    assert run.snapshot is None  # the worker freezes the labels: the save that fired the rule did not wait for it


def test_image_delete_removes_its_file(project, media_root, django_capture_on_commit_callbacks):
    image = add_images(project, 1)[0]
    path = media_root / image.file.name
    assert path.exists()
    manager = project.memberships.get(role=Role.MANAGER).user
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client(manager).delete(reverse("api:image_detail", args=[image.pk])).status_code == 204
    assert not Image.objects.exists() and not path.exists()


# --- Tokens -------------------------------------------------------------------------------------

def test_token_page_makes_and_revokes_tokens(client, project):
    user = add_member(project)
    client.force_login(user)
    page = client.post(reverse("review:api_token"), {"action": "create"})
    key = re.search(r'id="token-key">([^<]+)<', page.content.decode()).group(1)
    stored = ApiToken.objects.get(user=user)
    # Only the digest is kept: the database alone does not give the key away.
    assert key not in {stored.digest, stored.prefix} and stored.digest == hashlib.sha256(key.encode()).hexdigest()

    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert [p["id"] for p in script.get(reverse("api:project_list")).data] == [project.pk]
    stored.refresh_from_db()
    assert stored.last_used_at is not None
    assert f"{stored.prefix}…".encode() in client.get(reverse("review:api_token")).content  # the key never again
    assert key.encode() not in client.get(reverse("review:api_token")).content

    replaced = client.post(reverse("review:api_token"), {"action": "create"})
    assert script.get(reverse("api:project_list")).status_code == 401  # the old key stops at once
    new_key = re.search(r'id="token-key">([^<]+)<', replaced.content.decode()).group(1)
    script.credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    assert script.get(reverse("api:project_list")).status_code == 200

    client.post(reverse("review:api_token"), {"action": "revoke"})
    assert not ApiToken.objects.filter(user=user).exists()
    refused = script.get(reverse("api:project_list"))
    assert refused.status_code == 401 and refused.data == {"detail": "Invalid token."}


def test_an_inactive_users_token_is_refused(project):
    user = add_member(project)
    key = api_token_create(user=user)
    user.is_active = False
    user.save()
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert script.get(reverse("api:project_list")).status_code == 401


def test_the_command_prints_a_working_key(project):
    user = add_member(project)
    out = io.StringIO()
    call_command("api_token_create", user.username, stdout=out)
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")
    assert script.get(reverse("api:project_list")).status_code == 200
    with pytest.raises(CommandError, match="No user"):
        call_command("api_token_create", "nobody-by-this-name")


def test_session_writes_need_csrf(project):
    user = add_member(project)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    response = browser.put(reverse("api:image_boxes", args=[add_images(project, 1)[0].pk]),
                           {"version": 1, "boxes": []}, format="json")
    assert response.status_code == 403 and "CSRF" in response.data["detail"]


def test_schema_validates_and_docs_are_served_offline(client):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    for name in ("api:docs", "api:redoc"):  # Redoc's page used to fetch its fonts from Google
        docs = client.get(reverse(name))
        assert docs.status_code == 200
        # Every script, style and image comes from this server: no address names another host. (Not a search
        # for "cdn": the page's random CSRF token holds those three letters about once in 300 loads.)
        addresses = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', docs.content.decode())
        assert addresses and not [a for a in addresses if a.startswith(("http:", "https:", "//"))], addresses
        assert b"/static/drf_spectacular_sidecar/" in docs.content
    root = client.get("/api/v1/")  # not a 404: where the contract and its viewers are, and how to get a token
    assert root.status_code == 200 and root.json()["docs"].endswith(reverse("api:docs"))
    assert reverse("review:api_token") in root.json()["token"]


def test_an_api_key_never_starts_with_a_dash(project, monkeypatch):
    """A command line would take it for an option (deploy_receiver.py --token -x... fails), one key in 64."""
    from review import api_tokens

    drawn = iter(["-" + "a" * 39, "_" + "b" * 39])
    monkeypatch.setattr(api_tokens.secrets, "token_urlsafe", lambda n: next(drawn))
    user = project.memberships.get().user
    assert api_tokens.api_token_create(user=user) == "_" + "b" * 39
