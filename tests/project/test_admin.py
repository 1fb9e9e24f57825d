"""The Django admin: every model listed for staff, fast change lists, and actions that call the services."""
import json
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inference.models import InferenceRun, ModelVersion, Prediction, RerankRun
from review.models import Project, ProjectDeletion, Role, StatusChange
from review.project_deletion import project_deletion_execute
from tests.factories import UserFactory, add_images, add_member, add_model_version, make_project, review_with_truth
from training.models import TrainingRun

pytestmark = pytest.mark.django_db
OUR_APPS = {"review", "inference", "training"}


@pytest.fixture
def staff(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def project():
    project = make_project(holdout_fraction=0.4)
    for seed, image in enumerate(add_images(project, 8)):
        review_with_truth(image, seed=seed)
    return project


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def test_every_model_is_listed_and_its_pages_load(staff, project):
    version = add_model_version(project)
    Prediction.objects.create(image=project.images.first(), model_version=version,
                              label_class=project.label_classes.first(), x=1, y=1, w=4, h=4, score=0.5)
    ours = [m for m in apps.get_models() if m._meta.app_label in OUR_APPS]
    assert ours and all(m in admin.site._registry for m in ours)
    for model in ours:
        assert staff.get(_changelist(model)).status_code == 200, model
        obj = model.objects.first()
        if obj is not None:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
            assert staff.get(url).status_code == 200, url


def test_rows_the_services_keep_are_neither_added_nor_edited_by_hand(staff, project):
    """A superuser may not add or edit predictions, review events, outcomes, tokens, mentions, dataset jobs or
    webhook deliveries: the services keep them consistent with other rows (project/admin_base.py)."""
    from datasets.models import DatasetImport
    from inference.models import BoxOutcome
    from review.models import ApiToken, Mention, ReviewEvent
    from webhooks.models import WebhookDelivery

    for model in (Prediction, BoxOutcome, ReviewEvent, ApiToken, Mention, DatasetImport, WebhookDelivery):
        add = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
        assert staff.get(add).status_code == 403, model
    event = ReviewEvent.objects.first()
    change = reverse("admin:review_reviewevent_change", args=[event.pk])
    assert staff.post(change, {"accepted": 99}).status_code == 403
    assert ReviewEvent.objects.get(pk=event.pk).accepted != 99
    assert staff.get(reverse("admin:review_project_add")).status_code == 200  # the others stay editable


def test_change_list_queries_do_not_grow_with_rows(staff, project):
    url = _changelist(apps.get_model("review", "Annotation"))
    with CaptureQueriesContext(connection) as few:
        staff.get(url)
    more = make_project(name="More")
    for seed, image in enumerate(add_images(more, 6, first_seed=100)):
        review_with_truth(image, seed=100 + seed)
    with CaptureQueriesContext(connection) as many:
        staff.get(url)
    assert len(many) == len(few)


def test_admin_is_for_staff_only(client, project):
    client.force_login(add_member(project, Role.MANAGER))
    response = client.get(reverse("admin:review_image_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def _act(client, model, action: str, ids: list[int]):
    return client.post(_changelist(model), {"action": action, "_selected_action": ids}, follow=True)


def test_run_inference_on_selected_images(staff, project):
    add_model_version(project)
    images = list(project.images.order_by("id")[:3])
    response = _act(staff, apps.get_model("review", "Image"), "run_inference", [i.pk for i in images])
    run = InferenceRun.objects.get()
    assert sorted(run.image_ids) == [i.pk for i in images]
    assert f"Queued for prediction: 3 images (run #{run.pk})" in response.content.decode()


def test_approve_and_send_back_selected_images(staff, project):
    images = list(project.images.order_by("id")[:3])  # reviewed, all of them
    response = _act(staff, apps.get_model("review", "Image"), "send_back", [images[0].pk])
    assert "Sent back: 1 image." in response.content.decode()
    response = _act(staff, apps.get_model("review", "Image"), "approve_reviewed", [i.pk for i in images])
    assert "Approved: 2 images; 1 image left as they were" in response.content.decode()
    assert [image.status for image in project.images.order_by("id")[:3]] == ["unreviewed", "approved", "approved"]
    assert list(StatusChange.objects.order_by("id").values_list("status", flat=True)) == [
        "unreviewed", "approved", "approved"]


def test_run_inference_without_a_model_says_why(staff, project):
    response = _act(staff, apps.get_model("review", "Image"), "run_inference", [project.images.first().pk])
    assert "no active model" in response.content.decode() and not InferenceRun.objects.exists()


def test_start_fine_tuning_and_cancel(staff, project):
    response = _act(staff, apps.get_model("review", "Project"), "start_fine_tuning", [project.pk])
    run = TrainingRun.objects.get()
    assert f"training run #{run.pk} queued" in response.content.decode()
    _act(staff, TrainingRun, "cancel", [run.pk])
    run.refresh_from_db()
    assert run.cancel_requested or run.status == "cancelled"


def test_promote_a_model_version(staff, project):
    first, second = add_model_version(project), add_model_version(project, activate=False)
    _act(staff, ModelVersion, "promote", [second.pk])
    assert ModelVersion.objects.get(is_active=True) == second
    refused = _act(staff, ModelVersion, "promote", [first.pk, second.pk])
    assert "exactly one" in refused.content.decode()
    assert ModelVersion.objects.get(is_active=True) == second


def test_export_reviewed_labels(staff, project):
    response = _act(staff, apps.get_model("review", "Project"), "export_reviewed_labels", [project.pk])
    assert response["Content-Disposition"].startswith("attachment")
    coco = json.loads(response.content)
    assert len(coco["images"]) == 8 and [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]


def test_deleting_images_and_projects_goes_through_the_services(staff, project, django_capture_on_commit_callbacks):
    """Reviewed images and a project with human boxes can be deleted, and their stored files go too."""
    Image = apps.get_model("review", "Image")
    images = list(project.images.order_by("id")[:2])
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(_changelist(Image), {"action": "delete_selected", "_selected_action": [i.pk for i in images],
                                        "post": "yes"})
    assert project.images.count() == 6
    assert not any(default_storage.exists(image.file.name) for image in images)
    names = list(project.images.values_list("file", flat=True))
    confirm = staff.get(reverse("admin:review_project_delete", args=[project.pk]))
    assert confirm.status_code == 200 and b"a worker deletes them" in confirm.content
    staff.post(reverse("admin:review_project_delete", args=[project.pk]), {"post": "yes"})
    deletion = ProjectDeletion.objects.get(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        project_deletion_execute(run_id=deletion.pk)
    assert not Project.objects.exists()
    assert not any(default_storage.exists(name) for name in names)


class _ChangeForm(HTMLParser):
    """The values an admin change page would post back as they are (inline formsets included)."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and (attrs.get("type") not in ("checkbox", "submit") or "checked" in attrs):
            self.data[name] = attrs.get("value") or ("on" if attrs.get("type") == "checkbox" else "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select] = attrs.get("value", "")
        elif tag == "textarea" and name:
            self.data[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def test_a_review_threshold_changed_in_the_admin_ranks_the_project_again(staff, project,
                                                                          django_capture_on_commit_callbacks):
    url = reverse("admin:review_project_change", args=[project.pk])
    form = _ChangeForm()
    form.feed(staff.get(url).content.decode())
    with django_capture_on_commit_callbacks(execute=False) as unchanged:
        assert staff.post(url, form.data).status_code == 302
    with django_capture_on_commit_callbacks(execute=False) as changed:
        assert staff.post(url, {**form.data, "score_threshold": "0.35"}).status_code == 302
    assert (len(unchanged), len(changed)) == (0, 1)
    assert Project.objects.get(pk=project.pk).score_threshold == 0.35
    assert list(RerankRun.objects.filter(project=project).values_list("score_threshold", "status")) == [
        (0.35, "queued")]
