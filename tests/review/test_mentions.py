"""@username in a comment tells that member: "Mentions of you (N)" on the project page and the queue's
`mentioned` filter list the image until they open it; the name is marked where the comment is shown."""
import pytest
from django.urls import reverse

from review.models import Image, Mention, Role
from review.services import comment_add, comment_edit, image_boxes_save, images_status_set, membership_remove
from tests.factories import UserFactory, add_images, add_member, api_client, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    project = make_project()
    ann = add_member(project, Role.ANNOTATOR, user=UserFactory(username="ann"))
    bea = add_member(project, Role.REVIEWER, user=UserFactory(username="Bea.Lee"))
    return project, ann, bea


def _mentioned(image) -> set[str]:
    return set(Mention.objects.filter(image=image).values_list("user__username", flat=True))


def test_members_named_are_mentioned_and_nobody_else(team):
    project, ann, bea = team
    image = add_images(project, 1)[0]
    outsider = UserFactory(username="olga")
    comment_add(image=image, author=ann, text="@bea.lee, is this a van? cc @olga @ann @nobody, mail x@ann.example")
    assert _mentioned(image) == {"Bea.Lee"}  # any case; not outsiders, not the author, not inside an address
    assert outsider  # a user, but not a member


def test_an_edit_adds_and_drops_mentions(team):
    project, ann, bea = team
    image = add_images(project, 1)[0]
    cal = add_member(project, Role.ANNOTATOR, user=UserFactory(username="cal"))
    comment = comment_add(image=image, author=bea, text="@ann please redraw the truck.")
    assert _mentioned(image) == {"ann"}
    comment_edit(comment=comment, text="@cal please redraw the truck.")
    assert _mentioned(image) == {"cal"} and cal


def test_the_project_page_and_the_queue_list_mentions_until_the_image_is_opened(client, team):
    project, ann, bea = team
    first, second, quiet = add_images(project, 3)
    comment_add(image=first, author=bea, text="@ann see the left car")
    comment_add(image=second, author=bea, text="@ann and this one")
    comment_add(image=quiet, author=bea, text="fine as is")
    client.force_login(ann)
    page = client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
    assert f'?mentioned={ann.pk}"' in page and "Mentions of you (2)" in page
    listed = api_client(ann).get(f"/api/v1/projects/{project.pk}/images/?mentioned={ann.pk}").data["results"]
    assert {row["id"] for row in listed} == {first.pk, second.pk}

    editor = client.get(reverse("review:image_editor", args=[first.pk])).content.decode()
    assert '<strong class="mention">@ann</strong> see the left car' in editor
    assert "Mentions of you (1)" in client.get(reverse("review:project_detail", args=[project.pk])).content.decode()
    listed = api_client(ann).get(f"/api/v1/projects/{project.pk}/images/?mentioned={ann.pk}").data["results"]
    assert [row["id"] for row in listed] == [second.pk]


def test_the_api_lists_each_comments_mentions_and_marks_nothing_unsafe(team):
    project, ann, bea = team
    image = add_images(project, 1)[0]
    response = api_client(bea).post(f"/api/v1/images/{image.pk}/comments/",
                                    {"text": "<b>@ann</b> look"}, format="json")
    assert response.status_code == 201 and response.data["mentions"] == ["ann"]
    assert api_client(ann).get(f"/api/v1/images/{image.pk}/comments/").data[0]["mentions"] == ["ann"]


def test_the_editor_escapes_the_text_around_a_mention(client, team):
    project, ann, bea = team
    image = add_images(project, 1)[0]
    comment_add(image=image, author=bea, text="<script>x()</script>@ann\nsecond line")
    client.force_login(bea)
    editor = client.get(reverse("review:image_editor", args=[image.pk])).content.decode()
    assert '&lt;script&gt;x()&lt;/script&gt;<strong class="mention">@ann</strong><br>second line' in editor


def test_a_send_back_to_many_images_mentions_on_each(team):
    project, ann, bea = team
    images = add_images(project, 3)
    for image in images:
        image_boxes_save(image=image, user=ann, boxes=[], version=1)
    images_status_set(images=Image.objects.filter(project=project), status="unreviewed", user=bea,
                      comment="@ann the trucks are vans")
    assert Mention.objects.filter(user=ann).count() == 3


def test_leaving_the_project_drops_its_mentions(team):
    project, ann, bea = team
    comment_add(image=add_images(project, 1)[0], author=bea, text="@ann?")
    membership_remove(project=project, user=ann)
    assert not Mention.objects.exists()
