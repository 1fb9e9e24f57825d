"""The Django admin: every model listed for staff, fast change lists, and actions that call the services."""
import json
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inference.models import InferenceRun, ModelVersion, Prediction, RerankRun
from review.models import Project, ProjectDeletion, ReviewEvent, Role, StatusChange
from review.project_deletion import project_deletion_execute
from tests.factories import UserFactory, add_images, add_member, add_model_version, make_project, review_with_truth
from training.models import TrainingRun
from workers.models import Worker

pytestmark = pytest.mark.django_db
OUR_APPS = {"review", "inference", "training", "datasets", "webhooks", "workers"}


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


def _one_of_every_row(project) -> None:
    """At least one row of each model our admin shows, so that every change page is loaded."""
    from datasets.models import BucketObject, BucketWatch, DatasetExport, DatasetImport
    from inference.models import BoxOutcome, InferenceChunk, ModelExport, ModelVersionDeletion, SuspectedError
    from review.models import ApiToken, Comment, Mention, NotificationSettings, PasswordResetRequest, Tag
    from training.models import DatasetSnapshot
    from webhooks.models import Webhook, WebhookDelivery

    image, circle = project.images.first(), project.label_classes.first()
    user = project.memberships.get().user
    version, old = add_model_version(project), add_model_version(project, activate=False)
    prediction = Prediction.objects.create(image=image, model_version=version, label_class=circle, x=1, y=1, w=4, h=4,
                                           score=0.5)
    BoxOutcome.objects.create(image=image, model_version=version, kind="false_positive", prediction=prediction,
                              label_class=circle, x=1, y=1, w=4, h=4, score=0.5)
    SuspectedError.objects.create(image=image, model_version=version, kind="class_swap", label_class=circle,
                                  x=1, y=1, w=4, h=4)
    run = InferenceRun.objects.create(project=project, model_version=version, image_ids=[image.pk])
    InferenceChunk.objects.create(run=run, number=0, image_ids=[image.pk])
    RerankRun.objects.create(project=project, score_threshold=0.4)
    ModelVersionDeletion.objects.create(project=project, model_version=old, version_number=old.number)
    ModelExport.objects.create(project=project, model_version=version, version_number=version.number)
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64, file="snapshots/s.json")
    TrainingRun.objects.create(project=project, snapshot=snapshot)
    DatasetImport.objects.create(project=project, original_name="a.zip")
    DatasetExport.objects.create(project=project)
    BucketObject.objects.create(project=project, url="s3://bucket/a.jpg", etag="e")
    BucketWatch.objects.create(project=project, source_url="s3://bucket/")
    image.tags.add(Tag.objects.create(project=project, name="gate-cam"))
    StatusChange.objects.create(image=image, user=user, status="approved", reviewed_by=user)
    comment = Comment.objects.create(image=image, author=user, text=f"@{user.username} look")
    Mention.objects.create(comment=comment, image=image, user=user)
    ApiToken.objects.create(user=user, prefix="abcd", digest="0" * 64)
    PasswordResetRequest.objects.create(client="127.0.0.1", address_digest="0" * 64)
    NotificationSettings.objects.create(user=user)
    webhook = Webhook.objects.create(project=project, url="https://example.com/hook", events=["model_version.activated"])
    WebhookDelivery.objects.create(webhook=webhook, event="model_version.activated", payload={})
    ProjectDeletion.objects.create(project=None, project_name="Gone", status="succeeded")
    Worker.objects.create(name="gpu-train@host-3", queues=["training"],
                          tasks=[{"id": "t", "name": "training.tasks.training_run_execute", "args": [run.pk],
                                  "since": "2026-12-08T00:00:00+00:00"}])


# What a superuser may do by hand, per model: (add, the fields a change page edits). Everything else goes
# through the services (the pages, the API, the admin's actions), which keep related rows consistent;
# a model missing here fails the test until someone decides.
BY_HAND = {
    "review.Project": (False, {"name", "description", "holdout_fraction", "retrain_after_reviews", "infer_on_upload",
                               "promote_only_clear_gains", "tag_loss_limit", "score_threshold"}),
    "review.Membership": (True, {"role"}),
    "review.LabelClass": (True, {"name", "colour"}),
    "review.Image": (False, {"original_name", "held_by", "held_until"}),
    "review.NotificationSettings": (True, {"user", "email_mentions", "email_send_backs", "email_assignments",
                                           "email_jobs", "pending_email"}),
    "inference.ModelVersion": (False, {"note"}),
    "webhooks.Webhook": (False, {"is_active"}),
    **{label: (False, set()) for label in (
        "review.Annotation", "review.Comment", "review.ReviewEvent", "review.StatusChange", "review.ApiToken",
        "review.PasswordResetRequest", "review.Mention", "review.ProjectDeletion", "inference.Prediction",
        "inference.BoxOutcome", "inference.SuspectedError", "inference.InferenceRun", "inference.InferenceChunk",
        "inference.RerankRun", "inference.ModelVersionDeletion", "inference.ModelExport", "training.DatasetSnapshot",
        "training.TrainingRun",
        "datasets.DatasetImport", "datasets.DatasetExport", "datasets.BucketObject", "datasets.BucketWatch",
        "webhooks.WebhookDelivery", "review.Tag", "review.ImageLook", "workers.Worker")},
}


def test_every_model_is_listed_and_its_pages_load(staff, project):
    _one_of_every_row(project)
    ours = [m for m in apps.get_models() if m._meta.app_label in OUR_APPS]
    assert {m._meta.label for m in ours} == set(BY_HAND)
    assert all(m in admin.site._registry for m in ours)
    for model in ours:
        assert staff.get(_changelist(model)).status_code == 200, model
        add_allowed = BY_HAND[model._meta.label][0]
        add = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
        assert staff.get(add).status_code == (200 if add_allowed else 403), add
        obj = model.objects.first()
        assert obj is not None, model
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
        assert staff.get(url).status_code == 200, url


def test_a_superuser_adds_and_edits_by_hand_only_what_the_services_need_not_keep(rf, project):
    _one_of_every_row(project)
    request = rf.get("/admin/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    for label, (add_allowed, editable) in BY_HAND.items():
        model = apps.get_model(label)
        model_admin = admin.site._registry[model]
        obj = model.objects.first()
        assert model_admin.has_add_permission(request) == add_allowed, label
        fields = set(flatten_fieldsets(model_admin.get_fieldsets(request, obj)))
        can_change = model_admin.has_change_permission(request, obj)
        assert (fields - set(model_admin.get_readonly_fields(request, obj)) if can_change else set()) == editable, label


def test_a_change_page_posted_with_other_values_changes_only_the_editable_fields(staff, project):
    image = project.images.first()
    url = reverse("admin:review_image_change", args=[image.pk])
    form = _ChangeForm()
    form.feed(staff.get(url).content.decode())
    response = staff.post(url, {**form.data, "original_name": "renamed.png", "status": "approved", "project": 999,
                                "priority": 9})
    assert response.status_code == 302
    image.refresh_from_db()
    assert (image.original_name, image.status, image.project_id, image.priority) != ("renamed.png", "approved", 999, 9)
    assert image.original_name == "renamed.png" and image.status == "reviewed" and image.project_id == project.pk
    event = ReviewEvent.objects.first()
    change = reverse("admin:review_reviewevent_change", args=[event.pk])
    assert staff.post(change, {"accepted": 99}).status_code == 403
    assert ReviewEvent.objects.get(pk=event.pk).accepted != 99


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


def test_a_job_queued_a_minute_says_there_which_queue_it_waits_for(staff, project, settings):
    settings.JOB_WAIT_NOTICE_SECONDS = 60
    _act(staff, apps.get_model("review", "Project"), "start_fine_tuning", [project.pk])
    run = TrainingRun.objects.get()
    TrainingRun.objects.filter(pk=run.pk).update(created_at=run.created_at - timedelta(minutes=5))
    page = staff.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
    assert "waiting 5 min for a worker of the training queue" in page


def test_a_project_being_deleted_is_shown_as_it_is_and_starts_no_job(staff, project):
    ProjectDeletion.objects.create(project=project, project_name=project.name)
    url = reverse("admin:review_project_change", args=[project.pk])
    assert staff.get(url).status_code == 200
    assert staff.post(url, {"name": "Renamed"}).status_code == 403
    response = _act(staff, apps.get_model("review", "Project"), "start_fine_tuning", [project.pk])
    assert "Shapes is being deleted" in response.content.decode() and not TrainingRun.objects.exists()
    assert Project.objects.get(pk=project.pk).name == "Shapes"


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


def _posted_back(client, url: str, **changes):
    """Post an admin change page back as it is, with `changes`."""
    form = _ChangeForm()
    form.feed(client.get(url).content.decode())
    return client.post(url, {**form.data, **changes})


def test_members_change_through_the_services(staff, project):
    """The last manager stays (demoting or removing them is refused, nothing changes); a member who leaves
    gives back the images assigned to them."""
    from review.models import Membership

    manager = project.memberships.get()
    url = reverse("admin:review_membership_change", args=[manager.pk])
    response = _posted_back(staff, url, role=Role.REVIEWER)
    assert response.status_code == 200 and b"at least one manager" in response.content
    delete = reverse("admin:review_membership_delete", args=[manager.pk])
    assert b"its last manager would leave" in staff.get(delete).content
    staff.post(delete, {"post": "yes"})
    assert Membership.objects.get(pk=manager.pk).role == Role.MANAGER

    reviewer = UserFactory()
    add = reverse("admin:review_membership_add")
    assert staff.post(add, {"project": project.pk, "user": reviewer.pk, "role": Role.REVIEWER}).status_code == 302
    membership = Membership.objects.get(user=reviewer)
    image = project.images.first()
    image.assigned_to = reviewer
    image.save()
    staff.post(reverse("admin:review_membership_delete", args=[membership.pk]), {"post": "yes"})
    assert not Membership.objects.filter(user=reviewer).exists()
    image.refresh_from_db()
    assert image.assigned_to is None


def test_label_classes_change_through_the_services(staff, project):
    """A new class gets the next index and a colour; the index never changes; a class with human boxes stays."""
    from review.models import LabelClass

    add = reverse("admin:review_labelclass_add")
    assert staff.post(add, {"project": project.pk, "name": "star", "colour": ""}).status_code == 302
    star = LabelClass.objects.get(name="star")
    assert star.index == 3 and star.colour
    version = add_model_version(project)
    assert _posted_back(staff, reverse("admin:review_labelclass_change", args=[star.pk]), name="pentagon",
                        index=0).status_code == 302
    star.refresh_from_db()
    assert (star.name, star.index) == ("pentagon", 3)
    version.refresh_from_db()
    assert version.class_names[-1] == "pentagon"  # the model follows the rename (it knows classes by name)
    circle = project.label_classes.get(name="circle")  # the reviewed images hold circles
    delete = reverse("admin:review_labelclass_delete", args=[circle.pk])
    assert b"relabel or delete them first" in staff.get(delete).content
    staff.post(delete, {"post": "yes"})
    assert LabelClass.objects.filter(pk=circle.pk).exists()

    # The same on the project's page, where classes are edited inline.
    url = reverse("admin:review_project_change", args=[project.pk])
    form = _ChangeForm()
    form.feed(staff.get(url).content.decode())
    rows = sorted(key for key in form.data if key.startswith("label_classes-") and key.endswith("-id"))
    circle_row = next(key[:-3] for key in rows if form.data[key] == str(circle.pk))
    response = staff.post(url, {**form.data, f"{circle_row}-DELETE": "on"})
    assert response.status_code == 200 and b"protected related objects" in response.content
    assert LabelClass.objects.filter(pk=circle.pk).exists()
    new = form.data["label_classes-TOTAL_FORMS"]
    response = staff.post(url, {**form.data, "label_classes-TOTAL_FORMS": str(int(new) + 1),
                                f"label_classes-{new}-name": "hexagon", f"label_classes-{new}-colour": "#112233"})
    assert response.status_code == 302
    assert LabelClass.objects.get(project=project, name="hexagon").index == 4


def test_a_job_still_going_is_not_deleted(staff, project):
    from training.models import DatasetSnapshot

    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64, file="snapshots/s.json")
    running = TrainingRun.objects.create(project=project, snapshot=snapshot, status="running")
    done = TrainingRun.objects.create(project=project, snapshot=snapshot, status="succeeded")
    response = staff.post(_changelist(TrainingRun), {"action": "delete_selected",
                                                     "_selected_action": [running.pk, done.pk], "post": "yes"})
    assert b"is running: cancel it first" in response.content
    assert TrainingRun.objects.count() == 2
    staff.post(reverse("admin:training_trainingrun_delete", args=[done.pk]), {"post": "yes"})
    assert list(TrainingRun.objects.all()) == [running]


def test_a_snapshot_deleted_here_takes_its_file(staff, project, django_capture_on_commit_callbacks):
    from django.core.files.base import ContentFile

    from training.models import DatasetSnapshot

    snapshot = DatasetSnapshot(project=project, content_hash="1" * 64)
    snapshot.file.save("s.json", ContentFile(b"{}"))
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(reverse("admin:training_datasetsnapshot_delete", args=[snapshot.pk]), {"post": "yes"})
    assert not DatasetSnapshot.objects.exists() and not default_storage.exists(snapshot.file.name)


def test_pages_without_an_icon_of_their_own_get_ours(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("/review/favicon.svg")


def test_ids_that_are_no_ids_get_a_form_error_not_a_server_error(staff, project):
    """Found by posting garbage to every admin form: Django's many-to-many choices asked the database for
    a number past 64 bits, and the autocomplete widget for a user id that was not a number."""
    user = project.memberships.get().user
    huge = "9" * 23
    for url, data in [
        (reverse("admin:auth_group_add"), {"name": "g", "permissions": [huge]}),
        (reverse("admin:auth_user_change", args=[user.pk]), {"username": user.username, "groups": [huge]}),
        (reverse("admin:review_notificationsettings_add"), {"user": "zz"}),
        (reverse("admin:review_notificationsettings_add"), {"user": huge}),
        (reverse("admin:review_membership_add"), {"project": huge, "user": "x", "role": "manager"}),
    ]:
        response = staff.post(url, data)
        assert response.status_code == 200 and b"errornote" in response.content, url
