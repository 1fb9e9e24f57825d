"""Comments on an image: why it was sent back, a question, an answer; through the API and the editor."""
import pytest
from django.urls import reverse

from review.models import Comment, Image, ReviewStatus, Role
from review.services import image_boxes_save
from tests.factories import UserFactory, add_images, add_member, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def image():
    project = make_project()
    return add_images(project, 1)[0]


def _comments_url(image) -> str:
    return reverse("api:image_comments", args=[image.pk])


def _post(client, url, body):
    return client.post(url, body, content_type="application/json")


def test_a_reviewer_sends_an_image_back_with_the_reason_and_the_annotator_sees_it(client, image):
    annotator = add_member(image.project, Role.ANNOTATOR)
    image = image_boxes_save(image=image, user=annotator, boxes=[], version=1)
    client.force_login(reviewer := add_member(image.project, Role.REVIEWER))
    response = _post(client, reverse("api:image_status", args=[image.pk]),
                     {"status": "unreviewed", "version": image.version, "comment": "  The van is a <b>truck</b>.  "})
    assert response.status_code == 200 and response.json()["status"] == ReviewStatus.UNREVIEWED
    [comment] = Comment.objects.filter(image=image)
    assert (comment.author, comment.text) == (reviewer, "The van is a <b>truck</b>.")
    assert response.json()["comment_count"] == 1

    client.force_login(annotator)
    listed = client.get(_comments_url(image)).json()
    assert [(c["author"], c["text"]) for c in listed] == [(reviewer.username, "The van is a <b>truck</b>.")]
    page = client.get(reverse("review:image_editor", args=[image.pk]))
    assert b"The van is a &lt;b&gt;truck&lt;/b&gt;." in page.content  # shown as text, never as markup


def test_a_stale_send_back_adds_no_comment(client, image):
    image = image_boxes_save(image=image, user=None, boxes=[], version=1)
    client.force_login(add_member(image.project, Role.REVIEWER))
    response = _post(client, reverse("api:image_status", args=[image.pk]),
                     {"status": "unreviewed", "version": 1, "comment": "Wrong class."})
    assert response.status_code == 409
    assert not Comment.objects.exists() and Image.objects.get(pk=image.pk).status == ReviewStatus.REVIEWED
    assert Image.objects.get(pk=image.pk).comment_count == 0


def test_members_comment_and_answer(client, image):
    annotator, reviewer = add_member(image.project, Role.ANNOTATOR), add_member(image.project, Role.REVIEWER)
    client.force_login(annotator)
    first = _post(client, _comments_url(image), {"text": "Is the thing on the left a bike?"})
    assert first.status_code == 201 and first.json()["author"] == annotator.username
    client.force_login(reviewer)
    assert _post(client, _comments_url(image), {"text": "Yes: a bike."}).status_code == 201
    assert [c["text"] for c in client.get(_comments_url(image)).json()] == [
        "Is the thing on the left a bike?", "Yes: a bike."]
    assert Image.objects.get(pk=image.pk).comment_count == 2
    queue = client.get(reverse("review:project_queue", args=[image.project_id]))
    assert b"2 comments" in queue.content


@pytest.mark.parametrize("body, message", [
    ({"text": "   "}, "may not be blank"),
    ({"text": "x" * 2001}, "no more than 2000 characters"),
    ({}, "required"),
])
def test_bad_comments_are_refused_and_nothing_is_added(client, image, body, message):
    client.force_login(add_member(image.project))
    response = _post(client, _comments_url(image), body)
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not Comment.objects.exists()


def test_a_send_back_with_a_too_long_reason_changes_nothing(client, image):
    image = image_boxes_save(image=image, user=None, boxes=[], version=1)
    client.force_login(add_member(image.project, Role.REVIEWER))
    response = _post(client, reverse("api:image_status", args=[image.pk]), {"status": "unreviewed", "comment": "x" * 2001})
    assert response.status_code == 400 and "comment" in response.json()["fields"]
    assert not Comment.objects.exists() and Image.objects.get(pk=image.pk).status == ReviewStatus.REVIEWED


def test_only_the_author_or_a_manager_deletes_a_comment(client, image):
    author, other = add_member(image.project), add_member(image.project, Role.REVIEWER)
    client.force_login(author)
    comment_id = _post(client, _comments_url(image), {"text": "A typo"}).json()["id"]
    url = reverse("api:comment_detail", args=[comment_id])
    client.force_login(other)
    assert client.delete(url).status_code == 403
    client.force_login(UserFactory())
    assert client.delete(url).status_code == 404
    assert Comment.objects.filter(pk=comment_id).exists()
    client.force_login(author)
    assert client.delete(url).status_code == 204
    client.force_login(author)
    comment_id = _post(client, _comments_url(image), {"text": "Another"}).json()["id"]
    client.force_login(add_member(image.project, Role.MANAGER))
    assert client.delete(reverse("api:comment_detail", args=[comment_id])).status_code == 204
    assert not Comment.objects.exists() and Image.objects.get(pk=image.pk).comment_count == 0


def test_outsiders_neither_read_nor_write_comments(client, image):
    client.force_login(UserFactory())
    assert client.get(_comments_url(image)).status_code == 404
    assert _post(client, _comments_url(image), {"text": "hello"}).status_code == 404
    assert not Comment.objects.exists()


def test_comments_go_with_their_image(client, image):
    client.force_login(add_member(image.project, Role.MANAGER))
    _post(client, _comments_url(image), {"text": "Blurry"})
    assert client.delete(reverse("api:image_detail", args=[image.pk])).status_code == 204
    assert not Comment.objects.exists()


def test_the_admin_deletes_comments_through_the_service(admin_client, image):
    from review.services import comment_add

    comment = comment_add(image=image, author=None, text="Spam")
    response = admin_client.post(reverse("admin:review_comment_delete", args=[comment.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Comment.objects.exists() and Image.objects.get(pk=image.pk).comment_count == 0
    assert admin_client.get(reverse("admin:review_comment_add")).status_code == 403


def test_the_editor_says_when_each_comment_was_written(client, image):
    from datetime import timedelta

    from django.utils import timezone

    from review.services import comment_add

    older = comment_add(image=image, author=None, text="Older")
    Comment.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(minutes=5, seconds=3))
    comment_add(image=image, author=None, text="Newer")
    client.force_login(add_member(image.project))
    page = client.get(reverse("review:image_editor", args=[image.pk])).content.decode()
    assert "a former member, 5\xa0minutes ago" in page and "a former member, just now" in page


def test_the_queue_and_the_api_filter_images_by_comments(client):
    from review.services import comment_add

    project = make_project()
    commented, quiet = add_images(project, 2)
    comment_add(image=commented, author=None, text="Is this a kite?")
    client.force_login(add_member(project))
    queue = reverse("review:project_queue", args=[project.pk])
    assert _queue_ids(client.get(queue, {"has_comments": "true"})) == [commented.pk]
    assert _queue_ids(client.get(queue, {"has_comments": "false"})) == [quiet.pk]
    assert sorted(_queue_ids(client.get(queue, {"has_comments": ""}))) == sorted([commented.pk, quiet.pk])
    listed = client.get(reverse("api:image_list", args=[project.pk]), {"has_comments": "true"}).json()["results"]
    assert [i["id"] for i in listed] == [commented.pk]
    assert client.get(reverse("api:image_list", args=[project.pk]), {"has_comments": "maybe"}).status_code == 400


def _queue_ids(response) -> list[int]:
    import re

    return [int(i) for i in re.findall(rb'data-image-id="(\d+)"', response.content)]


def test_the_editor_offers_delete_on_ones_own_comments_and_to_managers(client, image):
    from review.services import comment_add

    author, other = add_member(image.project), add_member(image.project, Role.REVIEWER)
    comment_add(image=image, author=author, text="Mine")
    comment_add(image=image, author=other, text="Theirs")
    editor = reverse("review:image_editor", args=[image.pk])
    for user, deletable in ((author, 1), (other, 1), (add_member(image.project, Role.MANAGER), 2)):
        client.force_login(user)
        assert client.get(editor).content.count(b'class="link comment-delete"') == deletable


def test_only_its_author_changes_a_comment(client, image):
    author, manager = add_member(image.project, Role.ANNOTATOR), image.project.memberships.get(role=Role.MANAGER).user
    client.force_login(author)
    comment = _post(client, _comments_url(image), {"text": "Is that a bike?"}).json()
    url = reverse("api:comment_detail", args=[comment["id"]])
    changed = client.patch(url, {"text": "Is that a bike, left of the car?"}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["text"] == "Is that a bike, left of the car?"
    assert changed.json()["edited_at"] is not None and comment["edited_at"] is None
    for bad in ({"text": "  "}, {"text": "x" * 2001}, {}):
        assert client.patch(url, bad, content_type="application/json").status_code == 400
    client.force_login(manager)  # may delete it, may not put words in its author's mouth
    assert client.patch(url, {"text": "Yes."}, content_type="application/json").status_code == 403
    assert Comment.objects.get(pk=comment["id"]).text == "Is that a bike, left of the car?"
    editor = client.get(reverse("review:image_editor", args=[image.pk])).content.decode()
    assert "(edited)" in editor and "comment-edit" not in editor  # the manager is offered delete, not edit
