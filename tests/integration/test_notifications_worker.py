"""A mention made through the API reaches the member's inbox by way of a real `celery worker`."""
import pytest

from review.models import Role
from tests.factories import UserFactory, add_images, add_member, api_client, make_project
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_mention_is_e_mailed_by_a_worker(start_worker, broker, tmp_path, settings):
    if broker["url"].startswith("redis"):
        pytest.skip("e-mail is independent of the broker; the filesystem broker's case is enough")
    settings.EMAIL_NOTIFICATIONS = True
    inbox = tmp_path / "inbox"
    project = make_project(name="Night cameras")
    add_member(project, Role.ANNOTATOR, UserFactory(username="bea", email="bea@example.com"))
    [image] = add_images(project, 1, size=64)
    start_worker(queues="default", EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
                 EMAIL_FILE_PATH=str(inbox), SITE_URL="https://labels.example")
    author = project.memberships.get(role=Role.MANAGER).user
    response = api_client(author).post(f"/api/v1/images/{image.pk}/comments/", {"text": "@bea is this a van?"},
                                       format="json")
    assert response.status_code == 201, response.content
    [letter] = wait_for(lambda: list(inbox.glob("*.log")), message="the worker to write the e-mail")
    text = letter.read_text()
    assert "To: bea@example.com" in text and f"Subject: {author.username} mentioned you in Night cameras" in text
    assert f"https://labels.example/images/{image.pk}/edit" in text and "> @bea is this a van?" in text
