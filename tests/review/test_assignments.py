"""Assigning images to members: the assignee's next image is theirs first, nobody else's next image
offers it, the queue filters and shows it, and a member who leaves gives theirs back to everyone."""
import pytest
from django.urls import reverse

from review.activity import team_activity
from review.models import Image, ReviewStatus, Role
from review.services import image_boxes_save, image_next_for_review, image_status_set, membership_remove
from tests.factories import add_images, add_member, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    """Five unreviewed images, most urgent first; Lea (reviewer) leads, Ann and Bob annotate."""
    project = make_project()
    images = add_images(project, 5)
    for priority, image in zip([0.9, 0.8, 0.7, 0.6, 0.5], images):
        Image.objects.filter(pk=image.pk).update(priority=priority)
    lea = add_member(project, Role.REVIEWER)
    ann, bob = add_member(project, Role.ANNOTATOR), add_member(project, Role.ANNOTATOR)
    return {"project": project, "ids": [image.pk for image in images], "lea": lea, "ann": ann, "bob": bob}


def _assign(team, ids, assignee, user=None):
    return api_client(user or team["lea"]).post(
        reverse("api:image_bulk", args=[team["project"].pk]),
        {"action": "assign", "images": ids, "assignee": assignee.pk if assignee else None}, format="json")


def _next(team, who, **kwargs):
    image = image_next_for_review(project=team["project"], user=team[who], **kwargs)
    return image and image.pk


def test_the_assignee_gets_theirs_first_and_nobody_else_gets_them(team):
    ids = team["ids"]
    response = _assign(team, ids[2:4], team["ann"])
    assert response.status_code == 200 and response.json()["detail"] == f"Assigned to {team['ann'].username}: 2 images."
    assert _next(team, "ann") == ids[2]               # hers, though two unassigned images are more urgent
    assert _next(team, "ann", exclude=ids[2:4]) == ids[0]  # then everyone's (she holds it now)
    assert _next(team, "bob") == ids[1]
    assert _next(team, "bob", exclude=[ids[1], ids[4]]) is None  # Ann's two are not offered to Bob


def test_the_approval_pass_and_a_send_back_follow_the_assignment(team):
    ids, ann = team["ids"], team["ann"]
    _assign(team, ids[:1], ann)
    saved = image_boxes_save(image=Image.objects.get(pk=ids[0]), user=team["bob"], boxes=[], version=1)
    assert _next(team, "lea", status=ReviewStatus.REVIEWED) == ids[0]  # anyone's to approve
    image_status_set(image=saved, status=ReviewStatus.UNREVIEWED, user=team["lea"], comment="Redo")
    assert Image.objects.get(pk=ids[0]).assigned_to == ann            # sent back, it goes back to Ann
    assert _next(team, "ann") == ids[0] and _next(team, "bob", exclude=ids[1:]) is None


def test_only_unreviewed_images_are_assigned_and_none_gives_them_back(team):
    ids = team["ids"]
    image_boxes_save(image=Image.objects.get(pk=ids[0]), user=team["bob"], boxes=[], version=1)
    response = _assign(team, ids[:3], team["ann"])
    assert (response.json()["changed"], response.json()["skipped"]) == (2, 1)
    assert "only unreviewed images are assigned" in response.json()["detail"]
    assert list(Image.objects.filter(assigned_to=team["ann"]).order_by("pk").values_list("pk", flat=True)) == ids[1:3]
    response = _assign(team, ids, None)
    assert response.json()["detail"] == "Assigned to nobody: 5 images."
    assert not Image.objects.filter(assigned_to__isnull=False).exists()


@pytest.mark.parametrize("body, field", [
    ({"action": "assign", "images": [], "assignee": None}, "images"),
    ({"action": "assign", "images": [1]}, "assignee"),              # a forgotten assignee does not unassign
    ({"action": "assign", "images": [1], "assignee": 10**20}, "assignee"),
    ({"action": "assign", "images": [1], "assignee": "ann"}, "assignee"),
])
def test_bad_assignments_change_nothing(team, body, field):
    _assign(team, team["ids"][:1], team["ann"])
    body = {**body, "images": team["ids"][:2] if body["images"] else []}
    response = api_client(team["lea"]).post(reverse("api:image_bulk", args=[team["project"].pk]), body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"], response.json()
    assert list(Image.objects.filter(assigned_to__isnull=False).values_list("pk", "assigned_to")) == [
        (team["ids"][0], team["ann"].pk)]


def test_only_members_get_images_and_only_reviewers_give_them(team):
    outsider = make_project().memberships.get().user
    response = _assign(team, team["ids"][:1], outsider)
    assert response.status_code == 400 and "is not a member" in response.json()["detail"]
    assert _assign(team, team["ids"][:1], team["ann"], user=team["bob"]).status_code == 403
    assert not Image.objects.filter(assigned_to__isnull=False).exists()


def test_a_member_who_leaves_gives_their_images_back(team):
    _assign(team, team["ids"][:2], team["ann"])
    membership_remove(project=team["project"], user=team["ann"])
    assert not Image.objects.filter(assigned_to__isnull=False).exists()
    assert _next(team, "bob") == team["ids"][0]


def test_the_queue_filters_and_shows_assignments(client, team):
    ids, ann = team["ids"], team["ann"]
    _assign(team, ids[3:], ann)
    api = api_client(team["lea"])
    url = reverse("api:image_list", args=[team["project"].pk])
    listed = api.get(url, {"assigned_to": ann.pk}).json()["results"]
    assert [image["id"] for image in listed] == ids[3:] and {image["assigned_to"] for image in listed} == {
        ann.username}
    assert [image["id"] for image in api.get(url, {"assigned_to": "none"}).json()["results"]] == ids[:3]
    assert api.get(url, {"assigned_to": "me"}).status_code == 400

    client.force_login(ann)
    project_page = client.get(reverse("review:project_detail", args=[team["project"].pk])).content.decode()
    assert "Assigned to you (2)" in project_page
    queue = client.get(reverse("review:project_queue", args=[team["project"].pk]), {"assigned_to": ann.pk})
    assert queue.content.decode().count(f"assigned to {ann.username}") == 2
    rows = {row.username: row for row in team_activity(project=team["project"])}
    assert rows[ann.username].assigned_waiting == 2 and rows[team["bob"].username].assigned_waiting == 0


def test_start_reviewing_says_when_the_rest_is_assigned_to_others(client, team):
    _assign(team, team["ids"], team["ann"])
    client.force_login(team["bob"])
    response = client.get(reverse("review:queue_next", args=[team["project"].pk]), follow=True)
    assert "Nothing else to open now: 5 assigned to other members." in response.content.decode()
    editor = client.get(reverse("review:image_editor", args=[team["ids"][0]])).content.decode()
    assert f"Assigned to {team['ann'].username}" in editor  # Bob may still open it from the queue, and is told
    client.force_login(team["ann"])
    response = client.get(reverse("review:queue_next", args=[team["project"].pk]))
    assert response["Location"] == reverse("review:image_editor", args=[team["ids"][1]])  # Bob holds the first
    assert "assigned-notice" not in client.get(response["Location"]).content.decode()
