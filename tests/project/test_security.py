"""Login throttling and the production settings' deploy checks."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import UserFactory

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_login_is_throttled_per_username_and_address(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory(username="alice")
    other = UserFactory(username="bob")
    url = reverse("login")
    for _ in range(2):
        assert client.post(url, {"username": "alice", "password": "wrong"}).status_code == 200  # the form again
    assert client.post(url, {"username": "alice", "password": "wrong"}).status_code == 429  # the third: locked
    # Locked: even the right password is refused now, with 429 and nothing logged in.
    locked = client.post(url, {"username": "alice", "password": "pw-for-tests-1"})
    assert locked.status_code == 429 and "_auth_user_id" not in client.session
    # Another account from the same address is not punished for alice's attempts.
    assert client.post(url, {"username": "bob", "password": "pw-for-tests-1"}).status_code == 302
    assert str(other.pk) == client.session["_auth_user_id"] and user.pk != other.pk


def test_production_settings_pass_the_deploy_checks(tmp_path):
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(60), "ALLOWED_HOSTS": "review.example.com",
           "VAR_DIR": str(tmp_path)}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests for their own process only
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {**os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "review.example.com", "VAR_DIR": str(tmp_path)}
    env.pop("SECRET_KEY", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_request_bodies_over_the_limit_are_refused_before_anything_is_read(client, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from review.models import Image
    from tests.datasets.helpers import scene_png
    from tests.factories import add_member, make_project

    settings.MAX_REQUEST_BYTES = 1000
    project = make_project()
    client.force_login(add_member(project))
    upload = SimpleUploadedFile("a.png", scene_png(1), content_type="image/png")
    response = client.post(f"/api/v1/projects/{project.pk}/images/", {"files": upload})
    assert response.status_code == 413 and "the limit is" in response.json()["detail"]
    assert not Image.objects.exists()
    again = SimpleUploadedFile("a.png", scene_png(1), content_type="image/png")
    page = client.post(reverse("review:image_upload", args=[project.pk]), {"files": again})
    assert page.status_code == 413


@pytest.mark.django_db
def test_nobody_raises_their_own_role_or_staff_flag():
    from review.models import Membership, Role
    from tests.factories import add_member, api_client, make_project

    project = make_project()
    annotator = add_member(project, Role.ANNOTATOR)
    client = api_client(annotator)
    url = f"/api/v1/projects/{project.pk}/members/{annotator.pk}/"
    assert client.patch(url, {"role": "manager"}, format="json").status_code == 403
    assert client.post(f"/api/v1/projects/{project.pk}/members/", {"username": annotator.username,
                                                                  "role": "manager"}, format="json").status_code == 403
    # Unknown fields (is_staff, is_superuser) are ignored by the project API, never applied.
    client.patch(f"/api/v1/projects/{project.pk}/", {"is_staff": True}, format="json")
    annotator.refresh_from_db()
    assert Membership.objects.get(project=project, user=annotator).role == Role.ANNOTATOR
    assert not annotator.is_staff and not annotator.is_superuser


@pytest.mark.django_db
def test_a_database_error_in_the_middle_of_a_box_save_writes_nothing(monkeypatch):
    from django.db import DatabaseError

    from review.models import Annotation, Image, LabelClass, ReviewEvent
    from review.services import BoxIn, image_boxes_save
    from tests.factories import add_images, make_project

    project = make_project()
    [image] = add_images(project, 1, size=64)
    circle = LabelClass.objects.get(project=project, name="circle")
    image = image_boxes_save(image=image, user=None, version=image.version, boxes=[BoxIn(circle.pk, 1, 1, 10, 10)])
    before = (image.version, list(Annotation.objects.values_list("x", "y", "w", "h")), ReviewEvent.objects.count())

    def fail(*args, **kwargs):  # the database going away after the old boxes were replaced by the new ones
        raise DatabaseError("connection lost")
    monkeypatch.setattr(ReviewEvent.objects, "create", fail)
    with pytest.raises(DatabaseError):
        image_boxes_save(image=image, user=None, version=image.version,
                         boxes=[BoxIn(circle.pk, 5, 5, 20, 20), BoxIn(circle.pk, 30, 30, 5, 5)])
    image = Image.objects.get(pk=image.pk)
    assert (image.version, list(Annotation.objects.values_list("x", "y", "w", "h")),
            ReviewEvent.objects.count()) == before


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["image_list", "prediction_list", "image_detail", "box_outcome_list",
                                  "model_version_compare"])
def test_an_id_in_the_query_string_too_long_for_the_database_is_a_400(name):
    """20 digits do not fit a 64-bit integer: the database driver overflowed (a 500) before."""
    from tests.factories import add_images, add_model_version, api_client, make_project

    project = make_project()
    image = add_images(project, 1, size=32)[0]
    version = add_model_version(project)
    client = api_client(project.memberships.get().user)
    huge = "9" * 20
    url, parameters = {
        "image_list": (reverse("api:image_list", args=[project.pk]), ["label_class", "model_version", "reviewed_by"]),
        "prediction_list": (reverse("api:prediction_list", args=[project.pk]), ["model_version", "image", "label_class"]),
        "image_detail": (reverse("api:image_detail", args=[image.pk]), ["model_version"]),
        "box_outcome_list": (reverse("api:box_outcome_list", args=[version.pk]), ["label_class"]),
        "model_version_compare": (reverse("api:model_version_compare", args=[project.pk]), ["first", "second"]),
    }[name]
    for parameter in parameters:
        query = {"first": version.pk, "second": version.pk, parameter: huge}
        response = client.get(url, query)
        assert response.status_code == 400, (parameter, response.content)
        assert parameter in response.json()["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["box_label_class", "box_source_prediction", "box_model_version",
                                  "inference_image_ids", "inference_model_version", "bulk_images"])
def test_an_id_in_a_request_body_too_long_for_the_database_is_a_400(case):
    """On SQLite a 21-digit id overflowed the driver (a 500) where PostgreSQL answered 400: now both say 400."""
    from review.models import Image
    from tests.factories import add_images, add_model_version, api_client, make_project

    project = make_project()
    image = add_images(project, 1, size=32)[0]
    add_model_version(project)
    client = api_client(project.memberships.get().user)
    huge, circle = 10**20, project.label_classes.first().pk
    box = {"label_class": circle, "x": 1, "y": 1, "w": 2, "h": 2}
    boxes_url, runs_url = reverse("api:image_boxes", args=[image.pk]), reverse("api:inference_run_list", args=[project.pk])
    method, url, body, field = {
        "box_label_class": ("put", boxes_url, {"version": 1, "boxes": [box | {"label_class": huge}]}, "boxes"),
        "box_source_prediction": ("put", boxes_url, {"version": 1, "boxes": [box | {"source_prediction": huge}]},
                                  "boxes"),
        "box_model_version": ("put", boxes_url, {"version": 1, "boxes": [box], "model_version": huge}, "model_version"),
        "inference_image_ids": ("post", runs_url, {"scope": "ids", "image_ids": [huge]}, "image_ids"),
        "inference_model_version": ("post", runs_url, {"model_version": huge}, "model_version"),
        "bulk_images": ("post", reverse("api:image_bulk", args=[project.pk]), {"action": "approve", "images": [huge]},
                        "images"),
    }[case]
    response = getattr(client, method)(url, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert Image.objects.get(pk=image.pk).version == 1


@pytest.mark.django_db
def test_an_export_naming_ids_too_long_for_the_database_is_refused():
    """The export form and API took any digits for a model version or a snapshot: 20 overflowed SQLite's driver."""
    from datasets.models import DatasetExport
    from tests.factories import api_client, make_project

    project = make_project()
    manager = project.memberships.get().user
    for field in ("model_version", "snapshot", "images"):
        value = [10**20] if field == "images" else 10**20
        response = api_client(manager).post(reverse("api:export_list", args=[project.pk]),
                                            {"format": "coco", "source": "predictions", field: value}, format="json")
        assert response.status_code == 400 and field in response.json()["fields"], response.content
    from django.test import Client

    client = Client()
    client.force_login(manager)
    response = client.post(reverse("datasets:export_start", args=[project.pk]),
                           {"format": "coco", "source": "predictions", "model_version": "9" * 20}, follow=True)
    assert response.status_code == 200 and "Name a model version" in response.content.decode()
    assert not DatasetExport.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["9" * 20, "²"])  # too large for the database; a digit int() refuses
def test_ids_in_page_queries_that_are_no_ids_are_ignored(client, value):
    """Start reviewing's skip and after, the editor's model_version and the error patches' class read
    digits by hand: 20 of them overflowed SQLite's driver, and "²" passed isdigit() but not int() (500s)."""
    from tests.factories import add_images, add_model_version, api_client, make_project

    project = make_project()
    image = add_images(project, 1, size=32)[0]
    version = add_model_version(project)
    client.force_login(project.memberships.get().user)
    pages = [reverse("review:queue_next", args=[project.pk]) + f"?skip={value}&after={value}",
             reverse("review:image_editor", args=[image.pk]) + f"?model_version={value}",
             reverse("inference:model_version_errors", args=[version.pk]) + f"?class={value}"]
    for url in pages:
        assert client.get(url).status_code in (200, 302), url
    compare = reverse("api:model_version_compare", args=[project.pk])
    response = api_client(project.memberships.get().user).get(compare, {"first": value, "second": version.pk})
    assert response.status_code == 400 and "first" in response.json()["fields"]
