"""Several reviewers on one queue: "next" holds the image it opens, so nobody else is sent to it;
a reviewer can skip an image; holds lapse, and saving or approving releases them."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from review.models import Image, Role
from review.services import image_boxes_save, image_hold, image_next_for_review, image_status_set
from tests.factories import UserFactory, add_images, add_member, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    project = make_project()
    images = add_images(project, 3)
    for priority, image in zip([0.9, 0.5, 0.1], images):  # urgency: the first, then the second, then the third
        Image.objects.filter(pk=image.pk).update(priority=priority)
    return project


def _images(project) -> list[Image]:
    return list(project.images.order_by("-priority"))


def _editor(image: Image) -> str:
    return reverse("review:image_editor", args=[image.pk])


def _next(client, project, **params) -> str:
    response = client.get(reverse("review:queue_next", args=[project.pk]), params)
    assert response.status_code == 302
    return response["Location"]


def _messages(client, project) -> list[str]:
    return [str(m) for m in client.get(reverse("review:project_queue", args=[project.pk])).context["messages"]]


def test_two_reviewers_pressing_next_are_sent_to_different_images(client, project):
    first, second, _ = _images(project)
    ann, bea = add_member(project), add_member(project)
    client.force_login(ann)
    assert _next(client, project) == _editor(first)
    assert _next(client, project) == _editor(first)  # pressing again: still hers
    client.force_login(bea)
    assert _next(client, project) == _editor(second)
    first.refresh_from_db()
    assert first.held_by == ann and first.held_until > timezone.now()


def test_the_editor_opened_by_next_does_not_write_the_hold_again(client, project):
    client.force_login(add_member(project))
    with CaptureQueriesContext(connection) as queries:
        client.get(_next(client, project))
    assert len([q for q in queries if q["sql"].startswith('UPDATE "review_image" SET "held_by_id"')]) == 1
    with CaptureQueriesContext(connection) as queries:
        client.get(_editor(_images(project)[0]))
    assert not [q for q in queries if q["sql"].startswith("UPDATE")]


def test_a_hold_lapses_and_saving_releases_it(client, project):
    first, second, _ = _images(project)
    ann, bea = add_member(project), add_member(project)
    assert image_next_for_review(project=project, user=ann) == first
    Image.objects.filter(pk=first.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    assert image_next_for_review(project=project, user=bea) == first  # Ann went for lunch
    image_boxes_save(image=Image.objects.get(pk=first.pk), user=bea, boxes=[], version=1)
    first.refresh_from_db()
    assert (first.held_by, first.held_until, first.status) == (None, None, "reviewed")


def test_a_reviewer_holds_one_image_per_project(client, project):
    first, second, third = _images(project)
    ann = add_member(project)
    client.force_login(ann)
    client.get(_editor(third))
    client.get(_editor(second))
    assert list(Image.objects.filter(held_by=ann)) == [second]


def test_approving_releases_the_hold(project):
    first = _images(project)[0]
    reviewer = add_member(project, Role.REVIEWER)
    image_boxes_save(image=first, user=reviewer, boxes=[], version=1)
    assert image_next_for_review(project=project, user=reviewer, status="reviewed") == first
    image_status_set(image=first, status="approved", user=reviewer)
    first.refresh_from_db()
    assert first.held_by is None and first.status == "approved"


def test_skipped_images_are_passed_over_until_nothing_else_is_left(client, project):
    first, second, third = _images(project)
    client.force_login(ann := add_member(project))
    assert _next(client, project, skip=_images(project)[0].pk) == _editor(second)
    first.refresh_from_db()
    assert first.held_by is None  # a skipped image is free for others at once
    assert _next(client, project, skip=second.pk) == _editor(third)
    assert _next(client, project) == _editor(third)  # the skips are remembered between requests
    assert _next(client, project, skip=third.pk) == reverse("review:project_queue", args=[project.pk])
    assert _messages(client, project) == [
        "Nothing else to open now: 3 you skipped (they come round again from now on)."]
    assert _next(client, project) == _editor(first)  # round again, most urgent first
    assert Image.objects.get(held_by=ann) == first


def test_when_the_rest_is_open_elsewhere_the_reviewer_is_told(client, project):
    first, second, third = _images(project)
    others = [add_member(project) for _ in range(2)]
    for other in others:
        image_next_for_review(project=project, user=other)
    client.force_login(add_member(project))
    assert _next(client, project, skip=third.pk) == reverse("review:project_queue", args=[project.pk])
    assert _messages(client, project) == ["Nothing else to open now: 1 you skipped (they come round again from "
                                          "now on) and 2 open in other reviewers' editors."]


def test_an_empty_queue_says_so(client, project):
    Image.objects.filter(project=project).update(status="reviewed")
    client.force_login(add_member(project))
    _next(client, project)
    assert _messages(client, project) == ["The queue is empty: every image is reviewed."]


def test_opening_an_image_someone_holds_warns_and_leaves_their_hold(client, project):
    first = _images(project)[0]
    ann, bea = add_member(project), add_member(project)
    image_next_for_review(project=project, user=ann)
    client.force_login(bea)
    page = client.get(_editor(first))
    assert b'id="held-notice"' in page.content and ann.username.encode() in page.content
    first.refresh_from_db()
    assert first.held_by == ann
    client.force_login(ann)
    assert b'id="held-notice"' not in client.get(_editor(first)).content


def test_an_image_taken_between_reading_and_holding_stays_with_who_took_it(project):
    first, second, _ = _images(project)
    ann, bea = add_member(project), add_member(project)
    image_hold(image=Image.objects.get(pk=second.pk), user=bea)  # Bea's previous image
    read_by_bea = Image.objects.get(pk=first.pk)  # free when Bea's editor read it ...
    image_next_for_review(project=project, user=ann)  # ... and Ann's "next" took it just then
    assert not image_hold(image=read_by_bea, user=bea)
    assert read_by_bea.held_by == ann
    assert Image.objects.get(pk=second.pk).held_by is None  # Bea moved on from her previous one all the same


def test_the_queue_page_shows_who_has_an_image_open(client, project):
    ann = add_member(project)
    image_next_for_review(project=project, user=ann)
    client.force_login(add_member(project))
    page = client.get(reverse("review:project_queue", args=[project.pk]))
    assert page.content.count(f"open by {ann.username}".encode()) == 1


def test_the_approval_pass_needs_the_reviewer_role(client, project):
    client.force_login(add_member(project, Role.ANNOTATOR))
    assert client.get(reverse("review:queue_next", args=[project.pk]), {"status": "reviewed"}).status_code == 403
    client.force_login(UserFactory())
    assert client.get(reverse("review:queue_next", args=[project.pk])).status_code == 404


def test_bad_skip_and_after_values_are_ignored(client, project):
    client.force_login(add_member(project))
    assert _next(client, project, skip="1; drop", after="x") == _editor(_images(project)[0])


# --- The API --------------------------------------------------------------------------------------

def _api_next(client, project, **body):
    return client.post(reverse("api:next_image", args=[project.pk]), body, content_type="application/json")


def test_api_hands_each_caller_its_own_image_then_204(client, project):
    first, second, third = _images(project)
    users = [add_member(project) for _ in range(3)]
    taken = []
    for user in users:
        client.force_login(user)
        response = _api_next(client, project)
        assert response.status_code == 200
        taken.append(response.json()["id"])
        assert response.json()["open_by"] == user.username
    assert taken == [first.pk, second.pk, third.pk]
    client.force_login(add_member(project))
    assert _api_next(client, project).status_code == 204
    client.force_login(users[0])
    assert _api_next(client, project, skip=[first.pk]).status_code == 204  # the others are held
    assert Image.objects.get(pk=first.pk).held_by == users[0]  # an API skip only passes over; the hold stays


def test_api_refuses_bad_requests_and_changes_nothing(client, project):
    client.force_login(add_member(project, Role.ANNOTATOR))
    for body, field in [({"status": "approved"}, "status"), ({"skip": ["x"]}, "skip"), ({"skip": 3}, "skip")]:
        response = _api_next(client, project, **body)
        assert response.status_code == 400 and field in response.json()["fields"], body
    assert _api_next(client, project, status="reviewed").status_code == 403
    assert not Image.objects.filter(held_by__isnull=False).exists()
    client.force_login(UserFactory())
    assert _api_next(client, project).status_code == 404


def test_a_reviewer_who_loses_the_race_for_an_image_is_sent_to_the_next_one(project):
    first, second, _ = _images(project)
    ann, bea = add_member(project), add_member(project)
    raced = []

    def bea_gets_in_first(execute, sql, params, many, context):
        # Bea's request lands between Ann's read of the queue and her claim of its top image.
        if sql.startswith("UPDATE") and "held_by_id" in sql and not raced:
            raced.append(bea)
            image_next_for_review(project=project, user=bea)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(bea_gets_in_first):
        taken = image_next_for_review(project=project, user=ann)
    assert (taken, Image.objects.get(pk=first.pk).held_by) == (second, bea)
