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
