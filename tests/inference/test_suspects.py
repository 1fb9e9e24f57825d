"""Suspected label errors on constructed cases, their resolution by a second look, and the confirmation rates."""
import pytest
from django.urls import reverse

from inference.models import Prediction, SuspectedError
from inference.outcomes import box_outcomes_refresh
from inference.suspects import suspect_rates
from review.models import LabelClass, Role
from review.services import BoxIn, image_boxes_save
from tests.factories import add_images, add_member, add_model_version, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed():
    """A reviewed 96x96 image with a circle at (10, 10) and a square at (50, 50), and two model versions."""
    project = make_project()
    [image] = add_images(project, 1, size=96)
    circle, square, triangle = LabelClass.objects.filter(project=project).order_by("index")
    image = image_boxes_save(image=image, user=None, version=image.version,
                             boxes=[BoxIn(circle.pk, 10, 10, 20, 20), BoxIn(square.pk, 50, 50, 30, 30)])
    return project, image, (circle, square, triangle), add_model_version(project), add_model_version(project)


def _predict(image, version, boxes):
    Prediction.objects.bulk_create([Prediction(image=image, model_version=version, label_class=c, x=x, y=y, w=w, h=h,
                                                score=score) for c, x, y, w, h, score in boxes])
    box_outcomes_refresh(image_ids=[image.pk])


def _kinds(image):
    return sorted(SuspectedError.objects.filter(image=image, status="open").values_list("kind", flat=True))


def test_each_kind_from_the_newest_version(reviewed):
    project, image, (circle, square, triangle), old, new = reviewed
    _predict(image, old, [(circle, 10, 10, 20, 20, 0.9), (square, 50, 50, 30, 30, 0.9)])  # agrees with the humans
    assert _kinds(image) == []
    _predict(image, new, [
        (triangle, 70, 2, 20, 20, 0.95),   # where nobody drew: possibly missed
        (triangle, 10, 10, 20, 20, 0.9),   # on the circle: class swap
        (square, 62, 62, 30, 30, 0.85),    # half off the square: misplaced
        (circle, 40, 2, 10, 10, 0.6),      # not confident enough to doubt a human
    ])
    assert _kinds(image) == ["class_swap", "location", "possibly_missed"]


def test_a_box_is_spurious_only_when_every_version_missed_it(reviewed):
    project, image, (circle, square, triangle), old, new = reviewed
    _predict(image, old, [(circle, 10, 10, 20, 20, 0.9)])
    _predict(image, new, [(circle, 10, 10, 20, 20, 0.9)])
    assert _kinds(image) == ["possibly_spurious"]
    spurious = SuspectedError.objects.get()
    assert (spurious.label_class, spurious.x, spurious.score) == (square, 50, None)
    _predict(image, old, [(square, 50, 50, 30, 30, 0.7)])  # an older version did find it
    assert _kinds(image) == []


def test_a_second_look_resolves_suspects_and_rates_are_kept(reviewed):
    project, image, (circle, square, triangle), old, new = reviewed
    _predict(image, new, [(triangle, 70, 2, 20, 20, 0.95)])
    reviewer = add_member(project, Role.REVIEWER)
    client = api_client(reviewer)
    boxes = [{"label_class": circle.pk, "x": 10, "y": 10, "w": 20, "h": 20},
             {"label_class": square.pk, "x": 50, "y": 50, "w": 30, "h": 30}]
    image.refresh_from_db()
    client.put(f"/api/v1/images/{image.pk}/boxes/", {"version": image.version, "boxes": boxes}, format="json")
    assert SuspectedError.objects.get().status == "dismissed"  # saved unchanged: the labels were right
    assert _kinds(image) == []  # and it does not come back for the same box
    _predict(image, new, [(circle, 2, 60, 20, 20, 0.9)])  # a new suspicion, and this time the reviewer agrees
    image.refresh_from_db()
    client.put(f"/api/v1/images/{image.pk}/boxes/", {"version": image.version,
                                                      "boxes": boxes + [{"label_class": circle.pk, "x": 2, "y": 60,
                                                                         "w": 20, "h": 20}]}, format="json")
    rates = {row["kind"]: row for row in suspect_rates(project_id=project.pk)}
    assert rates["possibly_missed"]["confirmed"] == 1 and rates["possibly_missed"]["dismissed"] == 1
    assert rates["possibly_missed"]["confirmation_rate"] == 0.5 and rates["class_swap"]["confirmation_rate"] is None
    api_rates = client.get(f"/api/v1/projects/{project.pk}/suspected-errors/rates/").json()
    assert {r["kind"]: r["confirmation_rate"] for r in api_rates}["possibly_missed"] == 0.5


def test_second_look_page_and_dismiss(client, reviewed):
    project, image, (circle, square, triangle), old, new = reviewed
    _predict(image, new, [(triangle, 70, 2, 20, 20, 0.95)])
    client.force_login(add_member(project, Role.ANNOTATOR))
    assert client.get(reverse("inference:second_look", args=[project.pk])).status_code == 403
    client.force_login(add_member(project, Role.REVIEWER))
    page = client.get(reverse("inference:second_look", args=[project.pk])).content.decode()
    suspect = SuspectedError.objects.get()
    assert f'data-suspect-id="{suspect.pk}"' in page and "focus=70.0,2.0,20.0,20.0" in page
    client.post(reverse("inference:suspect_dismiss", args=[suspect.pk]))
    suspect.refresh_from_db()
    assert suspect.status == "dismissed" and suspect.resolved_by is not None
    listed = client.get(f"/api/v1/projects/{project.pk}/suspected-errors/").json()
    assert listed["count"] == 0
    assert client.get(f"/api/v1/projects/{project.pk}/suspected-errors/", {"status": "dismissed"}).json()["count"] == 1
    assert client.get(f"/api/v1/projects/{project.pk}/suspected-errors/", {"kind": "bogus"}).status_code == 400
