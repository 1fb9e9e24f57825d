"""Setting a project up in the browser: a new project, its settings, classes, members, and deleting it.

Who may open each page is checked by tests/project/test_page_permissions.py; these check what the
pages do, and that a refused change is said plainly and changes nothing.
"""
import re

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from review.models import LabelClass, Membership, Project, Role
from review.project_deletion import project_deletion_execute
from review.services import BoxIn, image_boxes_save
from tests.factories import UserFactory, add_images, add_member, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return make_project(name="Parking lot", class_names=["car", "person"])


@pytest.fixture
def manager(project, client):
    user = project.memberships.get(role=Role.MANAGER).user
    client.force_login(user)
    return user


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_any_user_creates_a_project_with_classes_and_manages_it(client):
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("review:project_create"), {"name": "  Docks ", "class_names": "boat, crane,,"},
                           follow=True)
    project = Project.objects.get(name="Docks")
    assert response.redirect_chain[-1][0] == reverse("review:project_detail", args=[project.pk])
    assert list(project.label_classes.order_by("index").values_list("name", flat=True)) == ["boat", "crane"]
    assert project.memberships.get().user == user and project.memberships.get().role == Role.MANAGER
    assert b'href="%s"' % reverse("review:project_settings", args=[project.pk]).encode() in response.content


@pytest.mark.parametrize(("data", "said"), [
    ({"name": "", "class_names": "boat"}, "Name: This field is required."),
    ({"name": "Docks", "class_names": "boat, boat"}, "already exists"),
])
def test_a_project_refused_is_not_created_at_all(client, data, said):
    client.force_login(UserFactory())
    response = client.post(reverse("review:project_create"), data, follow=True)
    assert any(message.startswith("The project was not created") and said in message
               for message in _messages(response)), _messages(response)
    assert not Project.objects.exists() and not LabelClass.objects.exists()


def test_only_managers_see_the_settings_link(client, project):
    client.force_login(add_member(project, Role.REVIEWER))
    page = client.get(reverse("review:project_detail", args=[project.pk]))
    assert reverse("review:project_settings", args=[project.pk]).encode() not in page.content


def test_settings_are_saved(client, project, manager):
    response = client.post(reverse("review:project_settings", args=[project.pk]), {
        "name": "Parking lot west", "description": "Camera 4", "holdout_fraction": "0.3",
        "retrain_after_reviews": "50", "infer_on_upload": "", "tag_loss_limit": "0.02",
        "score_threshold": "0.5"}, follow=True)
    assert "Settings saved." in _messages(response)
    project.refresh_from_db()
    assert (project.name, project.description, project.holdout_fraction, project.retrain_after_reviews,
            project.infer_on_upload, project.tag_loss_limit) == ("Parking lot west", "Camera 4", 0.3, 50, False, 0.02)
    page = client.get(reverse("review:project_settings", args=[project.pk])).content.decode()
    assert 'value="Parking lot west"' in page and 'name="infer_on_upload"' in page and "checked" not in page
    assert re.search(r'name="tag_loss_limit"[^>]*value="0.02"', page)


@pytest.mark.parametrize(("field", "value", "said"), [
    ("holdout_fraction", "1.5", "less than or equal to 0.9"),
    ("retrain_after_reviews", "-1", "greater than or equal to 0"),
    ("name", "   ", "This field is required."),
    ("holdout_fraction", "lots", "Enter a number."),
    ("score_threshold", "0", "greater than or equal to 0.01"),
    ("score_threshold", "nan", "Enter a number."),
    ("tag_loss_limit", "-0.1", "greater than or equal to 0"),
    ("tag_loss_limit", "2", "less than or equal to 1"),
])
def test_bad_settings_are_shown_on_the_form_and_change_nothing(client, project, manager, field, value, said):
    data = {"name": "Renamed", "description": "", "holdout_fraction": "0.2", "retrain_after_reviews": "0",
            "infer_on_upload": "on", "score_threshold": "0.5", field: value}
    response = client.post(reverse("review:project_settings", args=[project.pk]), data)
    assert response.status_code == 400
    assert said in response.content.decode()
    assert "<h1>Settings</h1>" in response.content.decode()
    fresh = Project.objects.get(pk=project.pk)
    assert (fresh.name, fresh.holdout_fraction, fresh.retrain_after_reviews) == ("Parking lot", 0.2, 0)


def test_classes_are_added_renamed_recoloured_and_deleted(client, project, manager):
    add = client.post(reverse("review:label_class_add", args=[project.pk]), {"name": "bicycle", "colour": "#00ff00"},
                      follow=True)
    assert "Added the class bicycle." in _messages(add)
    bicycle = project.label_classes.get(name="bicycle")
    assert (bicycle.index, bicycle.colour) == (2, "#00ff00")
    edit = client.post(reverse("review:label_class_edit", args=[bicycle.pk]), {"name": "bike", "colour": "#123456"},
                       follow=True)
    assert "Saved the class bicycle, now bike." in _messages(edit)
    bicycle.refresh_from_db()
    assert (bicycle.name, bicycle.colour, bicycle.index) == ("bike", "#123456", 2)
    delete = client.post(reverse("review:label_class_remove", args=[bicycle.pk]), follow=True)
    assert "Deleted the class bike." in _messages(delete)
    assert list(project.label_classes.values_list("name", flat=True)) == ["car", "person"]


def test_class_changes_that_are_refused_change_nothing(client, project, manager):
    car, person = project.label_classes.order_by("index")
    image = add_images(project, 1, size=64)[0]
    image_boxes_save(image=image, user=manager, boxes=[BoxIn(car.pk, 1, 1, 10, 10)], version=image.version)
    cases = [
        (reverse("review:label_class_edit", args=[person.pk]), {"name": "car", "colour": "#123456"},
         "The class was not changed: A label class named 'car' already exists in this project."),
        (reverse("review:label_class_edit", args=[person.pk]), {"name": "walker", "colour": "red"},
         "The class was not changed: Colour: The colour must look like #1f77b4."),
        (reverse("review:label_class_add", args=[project.pk]), {"name": "person"},
         "The class was not added: A label class named 'person' already exists in this project."),
        (reverse("review:label_class_remove", args=[car.pk]), {},
         "The class was not deleted: 1 human box use 'car'; relabel or delete them first."),
    ]
    before = list(LabelClass.objects.order_by("pk").values_list("name", "colour", "index"))
    for url, data, said in cases:
        assert said in _messages(client.post(url, data, follow=True)), url
    assert list(LabelClass.objects.order_by("pk").values_list("name", "colour", "index")) == before
    page = client.get(reverse("review:project_settings", args=[project.pk])).content.decode()
    assert "disabled title=\"Human boxes use this class\"" in page  # car's delete button


def test_a_class_of_another_project_is_not_found(client, project, manager):
    other = make_project(name="Other", class_names=["tree"])
    tree = other.label_classes.get()
    assert client.post(reverse("review:label_class_edit", args=[tree.pk]), {"name": "x"}).status_code == 404
    assert client.post(reverse("review:label_class_remove", args=[tree.pk])).status_code == 404
    assert LabelClass.objects.filter(pk=tree.pk, name="tree").exists()


def test_members_are_added_promoted_and_removed(client, project, manager):
    colleague = UserFactory(username="dana")
    add = client.post(reverse("review:member_set", args=[project.pk]), {"username": "dana", "role": "annotator"},
                      follow=True)
    assert "dana is now annotator." in _messages(add)
    client.post(reverse("review:member_set", args=[project.pk]), {"username": "dana", "role": "reviewer"})
    assert Membership.objects.get(project=project, user=colleague).role == Role.REVIEWER
    page = client.get(reverse("review:project_settings", args=[project.pk])).content.decode()
    assert 'data-username="dana"' in page
    remove = client.post(reverse("review:member_remove", args=[project.pk, colleague.pk]), follow=True)
    assert "Removed dana from the project." in _messages(remove)
    assert not Membership.objects.filter(project=project, user=colleague).exists()


def test_member_changes_that_are_refused_change_nothing(client, project, manager):
    stranger = UserFactory()
    cases = [
        ({"username": "nobody", "role": "annotator"}, "The member was not saved: There is no user named 'nobody'."),
        ({"username": manager.username, "role": "annotator"},
         "The member was not saved: A project needs at least one manager; make someone else manager first."),
        ({"username": manager.username, "role": "owner"}, "Role: Select a valid choice."),
    ]
    for data, said in cases:
        response = client.post(reverse("review:member_set", args=[project.pk]), data, follow=True)
        assert any(said in message for message in _messages(response)), (said, _messages(response))
    leave = client.post(reverse("review:member_remove", args=[project.pk, manager.pk]), follow=True)
    assert "The member was not removed: A project needs at least one manager" in " ".join(_messages(leave))
    assert client.post(reverse("review:member_remove", args=[project.pk, stranger.pk])).status_code == 404
    assert list(project.memberships.values_list("user", "role")) == [(manager.pk, Role.MANAGER)]


def test_a_manager_who_steps_down_lands_on_the_project_page(client, project, manager):
    add_member(project, Role.MANAGER)
    response = client.post(reverse("review:member_set", args=[project.pk]),
                           {"username": manager.username, "role": "reviewer"})
    assert response["Location"] == reverse("review:project_detail", args=[project.pk])
    assert client.get(response["Location"]).status_code == 200


def test_deleting_needs_the_projects_name_then_takes_its_files(client, project, manager,
                                                                django_capture_on_commit_callbacks):
    image = add_images(project, 1, size=64)[0]
    stored = image.file.name
    wrong = client.post(reverse("review:project_remove", args=[project.pk]), {"confirm_name": "Parking"},
                        follow=True)
    assert "That is not this project's name; nothing was deleted." in " ".join(_messages(wrong))
    assert Project.objects.filter(pk=project.pk).exists() and default_storage.exists(stored)
    right = client.post(reverse("review:project_remove", args=[project.pk]), {"confirm_name": "Parking lot"},
                        follow=True)
    assert right.redirect_chain[-1][0] == reverse("review:project_list")
    assert "Deleting the project Parking lot with its images" in " ".join(_messages(right))
    deletion = right.context["deletions"][0]  # the list shows it, with its progress
    assert (deletion.project_name, deletion.status, deletion.progress_total) == ("Parking lot", "queued", 1)
    assert client.get(reverse("review:project_detail", args=[project.pk])).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        project_deletion_execute(run_id=deletion.pk)
    assert not Project.objects.filter(pk=project.pk).exists() and not default_storage.exists(stored)
