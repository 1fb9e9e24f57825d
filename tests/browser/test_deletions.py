"""Deleting a project and a model version in a real browser: each is a job whose bar follows the worker."""
import pytest
from django.core.files.base import ContentFile

from inference.models import ModelVersion, ModelVersionDeletion, Prediction
from inference.version_deletion import model_version_deletion_execute
from review.models import Project, ProjectDeletion
from review.project_deletion import project_deletion_execute
from tests.browser.conftest import log_in
from tests.factories import add_images, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_deleted_project_leaves_the_list_and_its_bar_follows_the_worker(page):
    project = make_project(name="Old cameras")
    add_images(project, 3, size=32)
    log_in(page, project.memberships.get().user)
    page.goto(f"{page.base_url}/projects/{project.pk}/settings/")
    page.fill("input[name=confirm_name]", "Old cameras")
    page.click("text=Delete the project")
    page.wait_for_url(f"{page.base_url}/")
    row = f"#deletions tr[data-deletion-id='{ProjectDeletion.objects.get().pk}']"
    assert page.text_content(f"{row} .status") == "queued" and page.text_content(f"{row} .done") == "0/3"
    assert page.query_selector(f"a[href='/projects/{project.pk}/']") is None  # no longer listed as a project
    project_deletion_execute(run_id=ProjectDeletion.objects.get().pk)  # as the worker would
    page.wait_for_function(f"document.querySelector(\"{row}\").dataset.status === 'succeeded'")
    assert page.text_content(f"{row} .percent") == "100.0%" and page.text_content(f"{row} .done") == "3/3"
    assert page.query_selector(f"{row} button") is None  # nothing left to cancel
    assert not Project.objects.exists()


def test_a_model_version_deleted_from_the_models_page(page):
    project = make_project()
    image = add_images(project, 1, size=32)[0]
    version = ModelVersion.objects.create(project=project, number=1, architecture="ssdlite320_mobilenet_v3_large",
                                          class_names=["circle", "square", "triangle"])
    version.weights.save("v1.safetensors", ContentFile(b"weights"))
    Prediction.objects.bulk_create(Prediction(image=image, model_version=version, x=1, y=1, w=5, h=5, score=0.9,
                                              label_class=project.label_classes.first()) for _ in range(4))
    log_in(page, project.memberships.get().user)
    page.goto(f"{page.base_url}/projects/{project.pk}/models/")
    page.click(f"tr[data-version-id='{version.pk}'] summary")  # two clicks: open, then delete
    page.click("text=Delete v1 and its predictions")
    page.wait_for_selector("#version-deletions")
    assert "being deleted" in page.text_content(f"tr[data-version-id='{version.pk}']")
    deletion = ModelVersionDeletion.objects.get()
    row = f"#version-deletions tr[data-version-deletion-id='{deletion.pk}']"
    assert page.text_content(f"{row} .done") == "0/4"
    model_version_deletion_execute(run_id=deletion.pk)
    page.wait_for_function(f"document.querySelector(\"{row}\").dataset.status === 'succeeded'")
    assert page.text_content(f"{row} .done") == "4/4" and not ModelVersion.objects.exists()
    assert page.query_selector(f"{row} button") is None
    assert page.query_selector(f"tr[data-version-id='{version.pk}']") is None  # gone from the list of versions
