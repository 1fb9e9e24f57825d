"""The team page: what each member saved, how long it took, how much they corrected, and how their
reviews were judged, from the review record (saves and status changes)."""
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from review.activity import team_activity
from review.models import Image, ReviewEvent, Role, StatusChange
from review.services import BoxIn, image_boxes_save, image_status_set, membership_remove
from tests.factories import UserFactory, add_images, add_member, add_model_version, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    """Ann reviews three images (two with predictions shown), Rob approves one and sends one back,
    Max manages and does nothing; a fourth save of Ann's is 10 days old."""
    project = make_project()
    circle = project.label_classes.order_by("index").first().pk
    version = add_model_version(project)
    ann, rob, max_ = (add_member(project, role) for role in (Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER))
    images = add_images(project, 4)
    saved = []
    for image, seconds, shown in zip(images, (10, 30, 200, 40), (version.pk, version.pk, None, None)):
        saved.append(image_boxes_save(image=image, user=ann, version=1, boxes=[BoxIn(circle, 1, 1, 9, 9)] * 3,
                                      model_version_id=shown, seconds_spent=seconds))
    ReviewEvent.objects.filter(image=images[3]).update(created_at=timezone.now() - timedelta(days=10))
    image_status_set(image=saved[0], status="approved", user=rob)
    image_status_set(image=saved[1], status="unreviewed", user=rob, comment="The left one is a square.")
    return {"project": project, "ann": ann, "rob": rob, "max": max_, "images": images}


def _by_name(rows) -> dict:
    return {row.username: row for row in rows}


def test_each_members_saves_time_corrections_and_verdicts(team):
    rows = team_activity(project=team["project"], since=timezone.now() - timedelta(days=7))
    ann, rob, max_ = (_by_name(rows)[team[key].username] for key in ("ann", "rob", "max"))
    assert rows[0] is ann  # busiest first
    assert (ann.saves, ann.images, ann.median_seconds) == (3, 3, 30)  # the 10-day-old save is outside
    # Three boxes added per predicted image (nothing shown was kept); the unpredicted save is not counted.
    assert ann.corrections_per_image == 3
    assert (ann.theirs_approved, ann.theirs_sent_back, ann.theirs_sent_back_share) == (1, 1, 0.5)
    assert (rob.saves, rob.approved, rob.sent_back, rob.median_seconds) == (0, 1, 1, None)
    assert rob.last_active is not None and max_.last_active is None and max_.role == Role.MANAGER

    everything = _by_name(team_activity(project=team["project"]))
    assert everything[team["ann"].username].saves == 4


def test_a_self_approval_is_no_verdict_and_former_members_stay_listed(team):
    rob = team["rob"]
    image = image_boxes_save(image=team["images"][2], user=rob, version=2, boxes=[])
    image_status_set(image=image, status="approved", user=rob)
    membership_remove(project=team["project"], user=team["ann"])
    rows = _by_name(team_activity(project=team["project"]))
    assert (rows[rob.username].approved, rows[rob.username].theirs_approved) == (2, 0)
    assert rows[team["ann"].username].role is None and rows[team["ann"].username].saves == 4
    assert StatusChange.objects.filter(user=rob).count() == 3


def test_the_page_and_the_api_show_the_window_asked_for(client, team):
    client.force_login(team["rob"])
    url = reverse("review:project_team", args=[team["project"].pk])
    page = client.get(url)
    assert page.status_code == 200
    row = next(line for line in page.content.decode().split("<tr>") if f">{team['ann'].username}</a></td>" in line)
    assert "<td>3</td>" in row and "30 s" in row and "(50% sent back)" in row
    assert b"<td>4</td>" in client.get(url, {"days": "all"}).content

    listed = api_client(team["rob"]).get(reverse("api:team_activity", args=[team["project"].pk]), {"days": "all"})
    assert listed.status_code == 200
    ann = next(row for row in listed.json() if row["username"] == team["ann"].username)
    assert (ann["saves"], ann["median_seconds"], ann["theirs_sent_back_share"]) == (4, 35.0, 0.5)


@pytest.mark.parametrize("days", ["3", "-1", "all; drop", ""])
def test_an_unknown_window_is_refused(client, team, days):
    response = api_client(team["rob"]).get(reverse("api:team_activity", args=[team["project"].pk]), {"days": days})
    assert response.status_code == 400 and "days: Choose one of 1, 7, 30, 90, 365, all" in response.json()["detail"]
    client.force_login(team["rob"])
    page = client.get(reverse("review:project_team", args=[team["project"].pk]), {"days": days}, follow=True)
    assert page.status_code == 200 and b"Choose one of" in page.content  # and the default window is shown


def test_annotators_and_outsiders_do_not_see_the_team(client, team):
    url = reverse("review:project_team", args=[team["project"].pk])
    client.force_login(team["ann"])
    assert client.get(url).status_code == 403
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    project_page = reverse("review:project_detail", args=[team["project"].pk])
    client.force_login(team["ann"])
    assert url.encode() not in client.get(project_page).content
    client.force_login(team["rob"])
    assert url.encode() in client.get(project_page).content


def _listed(client, url, query) -> list[int]:
    return sorted(int(i) for i in re.findall(r'data-image-id="(\d+)"', client.get(url, query).content.decode()))


def test_a_member_on_the_team_page_links_to_the_images_they_saved(client, team):
    images = team["images"]
    image_boxes_save(image=images[3], user=team["rob"], version=2, boxes=[])  # Rob saves over one of Ann's
    client.force_login(team["rob"])
    page = client.get(reverse("review:project_team", args=[team["project"].pk]), {"days": "all"}).content.decode()
    queue = reverse("review:project_queue", args=[team["project"].pk])
    assert f'href="{queue}?saved_by={team["ann"].pk}"' in page
    assert _listed(client, queue, {"saved_by": team["ann"].pk}) == [i.pk for i in images]  # every image she saved
    assert _listed(client, queue, {"reviewed_by": team["ann"].pk}) == [i.pk for i in images[:3]]  # saved last
    assert _listed(client, queue, {"saved_by": team["rob"].pk}) == [images[3].pk]
    assert _listed(client, queue, {"saved_by": team["max"].pk}) == []
    images_api = reverse("api:image_list", args=[team["project"].pk])
    for bad in ({"reviewed_by": "ann"}, {"saved_by": "1.5"}, {"reviewed_by": "9" * 20}, {"label_class": "9" * 20}):
        refused = api_client(team["rob"]).get(images_api, bad)  # 20 digits overflowed the driver: a 500
        assert refused.status_code == 400 and set(bad) == set(refused.json()["fields"]), bad


def test_the_project_page_points_an_annotator_to_what_was_sent_back_to_them(client, team):
    client.force_login(team["ann"])
    page = client.get(reverse("review:project_detail", args=[team["project"].pk])).content.decode()
    assert "Sent back to you (1)" in page
    link = re.search(r'id="sent-back-to-me" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    listed = client.get(link).content.decode()
    assert [int(i) for i in re.findall(r'data-image-id="(\d+)"', listed)] == [team["images"][1].pk]
    client.force_login(team["rob"])
    assert "Sent back to you" not in client.get(reverse("review:project_detail", args=[team["project"].pk])).content.decode()

    # Max saves over Ann's image and it is sent back again: the verdict was on his boxes, so it is his to fix.
    image = image_boxes_save(image=Image.objects.get(pk=team["images"][1].pk), user=team["max"], version=3,
                             boxes=[])
    image_status_set(image=image, status="unreviewed", user=team["rob"])
    queue = reverse("review:project_queue", args=[team["project"].pk])
    assert _listed(client, queue, {"sent_back_to": team["ann"].pk}) == []
    assert _listed(client, queue, {"sent_back_to": team["max"].pk}) == [image.pk]
    image_boxes_save(image=Image.objects.get(pk=image.pk), user=team["max"], version=5, boxes=[])  # fixed
    assert _listed(client, queue, {"sent_back_to": team["max"].pk}) == []
    assert api_client(team["rob"]).get(reverse("api:image_list", args=[team["project"].pk]),
                                       {"sent_back_to": "ann"}).status_code == 400
