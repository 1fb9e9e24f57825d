"""The Import & export page: managers only, forms through the services, hostile names escaped."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets.execution import dataset_export_execute, dataset_import_execute
from datasets.models import DatasetExport, DatasetImport
from review.models import Role
from tests.datasets.helpers import scene_png, zip_of
from tests.factories import UserFactory, add_member, make_project

pytestmark = pytest.mark.django_db
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def project():
    return make_project()


def _manager(client, project):
    client.force_login(project.memberships.get(role=Role.MANAGER).user)
    return client


def test_only_managers_see_the_page(client, project):
    url = reverse("datasets:project_data", args=[project.pk])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    client.force_login(add_member(project, Role.REVIEWER))
    assert client.get(url).status_code == 403
    assert client.post(reverse("datasets:export_start", args=[project.pk]), {"format": "coco"}).status_code == 403
    assert not DatasetExport.objects.exists()


def test_import_form_queues_a_job_and_the_report_is_shown_escaped(client, project):
    client = _manager(client, project)
    upload = SimpleUploadedFile(f"{XSS}.zip", zip_of({"a.png": scene_png(1), f"{XSS}.png": b"junk"}).getvalue())
    response = client.post(reverse("datasets:import_start", args=[project.pk]), {"file": upload, "format": "auto"},
                           follow=True)
    assert b"queued" in response.content
    job = dataset_import_execute(job_id=DatasetImport.objects.get().pk, progress_interval=0)
    assert job.status == "failed"
    page = client.get(reverse("datasets:project_data", args=[project.pk])).content.decode()
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "1 refused" in page


def test_export_form_errors_are_messages(client, project):
    client = _manager(client, project)
    response = client.post(reverse("datasets:export_start", args=[project.pk]),
                           {"format": "coco", "source": "predictions"}, follow=True)
    assert b"Name a model version" in response.content and not DatasetExport.objects.exists()


def test_finished_export_has_a_download_link(client, project):
    client = _manager(client, project)
    client.post(reverse("datasets:export_start", args=[project.pk]),
                {"format": "voc", "source": "reviewed", "include_images": "on"})
    job = dataset_export_execute(job_id=DatasetExport.objects.get().pk, progress_interval=0)
    page = client.get(reverse("datasets:project_data", args=[project.pk])).content.decode()
    assert reverse("api:export_download", args=[job.pk]) in page
    assert client.get(reverse("api:export_download", args=[job.pk])).status_code == 200


def test_cancel_button_and_unknown_kind(client, project):
    client = _manager(client, project)
    upload = SimpleUploadedFile("a.zip", zip_of({"a.png": scene_png(1)}).getvalue())
    client.post(reverse("datasets:import_start", args=[project.pk]), {"file": upload})
    job = DatasetImport.objects.get()
    client.post(reverse("datasets:job_cancel", args=["import", job.pk]))
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert client.post(reverse("datasets:job_cancel", args=["other", job.pk])).status_code == 404
