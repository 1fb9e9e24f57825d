"""Earlier versions of an image's boxes: every save keeps what it replaced, so a reviewer who saved
over someone else (or over their own better work) can bring it back."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inference.models import Prediction
from review.models import Annotation, LabelClass, ReviewEvent, Role
from review.services import BoxIn, image_boxes_save, label_class_create
from tests.factories import add_images, add_member, add_model_version, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return make_project()


@pytest.fixture
def image(project):
    return add_images(project, 1)[0]


def _classes(project) -> list[int]:  # circle, square
    return list(LabelClass.objects.filter(project=project).order_by("index").values_list("pk", flat=True))[:2]


def _history(client, image) -> list[dict]:
    response = client.get(reverse("api:image_box_history", args=[image.pk]))
    assert response.status_code == 200, response.content
    return response.json()


def _boxes_now(image) -> list[tuple]:
    return list(Annotation.objects.filter(image=image).order_by("id").values_list("label_class_id", "x", "y", "w", "h"))


def test_a_box_saved_over_by_another_reviewer_comes_back(project, image):
    circle, square = _classes(project)
    ann, bea = add_member(project, Role.ANNOTATOR), add_member(project, Role.REVIEWER)
    # Ann's two careful boxes; Bea, who opened the image before Ann saved, keeps hers over them (the
    # 409's "Save mine over theirs").
    image = image_boxes_save(image=image, user=ann, version=1,
                             boxes=[BoxIn(circle, 10, 10, 20, 20), BoxIn(square, 50, 40, 30, 25.5)])
    bea_client = api_client(bea)
    mine = {"boxes": [{"label_class": square, "x": 0, "y": 0, "w": 5, "h": 5}], "version": 1}
    assert bea_client.put(reverse("api:image_boxes", args=[image.pk]), mine, format="json").status_code == 409
    mine["version"] = image.version
    assert bea_client.put(reverse("api:image_boxes", args=[image.pk]), mine, format="json").status_code == 200
    assert _boxes_now(image) == [(square, 0, 0, 5, 5)]

    [version] = _history(api_client(ann), image)
    assert (version["saved_by"], version["replaced_by"], version["left_out"]) == (ann.username, bea.username, 0)
    assert version["saved_at"] < version["replaced_at"]
    assert [(b["label_class"], b["x"], b["y"], b["w"], b["h"]) for b in version["boxes"]] == [
        (circle, 10, 10, 20, 20), (square, 50, 40, 30, 25.5)]

    # Brought back as the editor does it: its boxes, saved like any other save, at the current version.
    current = api_client(ann).get(reverse("api:image_detail", args=[image.pk])).json()["version"]
    response = api_client(ann).put(reverse("api:image_boxes", args=[image.pk]),
                                   {"boxes": version["boxes"], "version": current}, format="json")
    assert response.status_code == 200, response.content
    assert _boxes_now(image) == [(circle, 10, 10, 20, 20), (square, 50, 40, 30, 25.5)]
    # ...and Bea's box is now an earlier version in its turn.
    newest, oldest = _history(api_client(ann), image)
    assert newest["saved_by"] == bea.username and [b["w"] for b in newest["boxes"]] == [5]
    assert oldest["saved_by"] == ann.username


def test_saves_that_changed_nothing_add_no_version(project, image):
    circle, _ = _classes(project)
    user = add_member(project, Role.ANNOTATOR)
    image = image_boxes_save(image=image, user=user, version=1, boxes=[BoxIn(circle, 1, 2, 3, 4)])
    image = image_boxes_save(image=image, user=user, version=2, boxes=[BoxIn(circle, 1, 2, 3, 4)])
    image = image_boxes_save(image=image, user=user, version=3, boxes=[BoxIn(circle, 1, 2, 3, 4.004)])  # < 0.01 px
    assert _history(api_client(user), image) == []
    image = image_boxes_save(image=image, user=user, version=4, boxes=[])
    [version] = _history(api_client(user), image)
    assert version["saved_by"] == user.username and [b["h"] for b in version["boxes"]] == [4.004]


def test_imported_boxes_a_first_save_replaced_come_back(project, image):
    circle, _ = _classes(project)
    user = add_member(project, Role.ANNOTATOR)
    Annotation.objects.create(image=image, label_class_id=circle, x=1, y=2, w=3, h=4, source="imported")
    image = image_boxes_save(image=image, user=user, version=1, boxes=[BoxIn(circle, 9, 9, 9, 9)])
    [version] = _history(api_client(user), image)
    assert (version["saved_by"], version["saved_at"], version["replaced_by"]) == (None, None, user.username)
    assert [(b["x"], b["y"], b["w"], b["h"]) for b in version["boxes"]] == [(1, 2, 3, 4)]


def test_saves_from_before_history_was_kept_are_not_listed(project, image):
    circle, _ = _classes(project)
    user = add_member(project)
    image = image_boxes_save(image=image, user=user, version=1, boxes=[BoxIn(circle, 1, 1, 5, 5)])
    image = image_boxes_save(image=image, user=user, version=2, boxes=[BoxIn(circle, 2, 2, 5, 5)])
    ReviewEvent.objects.filter(image=image).update(replaced=None)  # as the migration leaves older saves
    assert _history(api_client(user), image) == []


def test_boxes_of_a_deleted_class_are_left_out_and_gone_predictions_are_forgotten(project, image):
    circle, _ = _classes(project)
    temporary = label_class_create(project=project, name="kite").pk
    version = add_model_version(project)
    prediction = Prediction.objects.create(image=image, model_version=version, label_class_id=circle,
                                           x=10, y=10, w=20, h=20, score=0.9)
    gone = Prediction.objects.create(image=image, model_version=version, label_class_id=circle,
                                     x=40, y=40, w=20, h=20, score=0.8)
    user = add_member(project)
    image = image_boxes_save(image=image, user=user, version=1, boxes=[
        BoxIn(circle, 10, 10, 20, 20, source_prediction_id=prediction.pk),
        BoxIn(circle, 40, 40, 20, 20, source_prediction_id=gone.pk),
        BoxIn(temporary, 0, 0, 8, 8)])
    image = image_boxes_save(image=image, user=user, version=2, boxes=[])
    LabelClass.objects.filter(pk=temporary).delete()
    gone.delete()
    [earlier] = _history(api_client(user), image)
    assert earlier["left_out"] == 1
    assert [b["source_prediction"] for b in earlier["boxes"]] == [prediction.pk, None]
    # What the history answers, the save takes: nothing in it refers to what no longer exists.
    response = api_client(user).put(reverse("api:image_boxes", args=[image.pk]),
                                    {"boxes": earlier["boxes"], "version": image.version}, format="json")
    assert response.status_code == 200, response.content


def test_keeping_the_replaced_boxes_costs_a_save_no_query(project):
    circle, _ = _classes(project)
    user = add_member(project)
    first, second = add_images(project, 2)
    counts = []
    for image, boxes in ((first, []), (second, [BoxIn(circle, 1, 1, 5, 5)] * 20)):
        image = image_boxes_save(image=image, user=user, version=1, boxes=boxes)
        with CaptureQueriesContext(connection) as queries:
            image_boxes_save(image=image, user=user, version=2, boxes=[BoxIn(circle, 2, 2, 5, 5)])
        counts.append(len(queries))
    assert counts[0] == counts[1]
    # The DELETE answers the boxes it removed: no SELECT of the image's boxes first.
    assert not [q for q in queries if q["sql"].startswith("SELECT") and "review_annotation" in q["sql"].split("WHERE")[0]]
    assert len(ReviewEvent.objects.filter(image=second).order_by("created_at", "id").last().replaced) == 20


def test_only_members_read_an_images_history(project, image):
    outsider = add_member(make_project(name="Other"))
    response = api_client(outsider).get(reverse("api:image_box_history", args=[image.pk]))
    assert response.status_code == 404
