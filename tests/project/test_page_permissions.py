"""Every browser page and every admin URL, as anonymous, a non-member, each role and staff.

Like the API's matrix (test_api_permissions.py), the list of pages is read from the URL
configuration: a page without a rule in PAGE_RULES fails `test_every_page_has_a_rule`.
"""
import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from datasets.models import BucketWatch, DatasetExport, DatasetImport
from inference.models import ModelVersionDeletion, RerankRun, SuspectedError
from project.jobs import JobStatus
from review.models import ProjectDeletion, Role
from tests.factories import UserFactory, add_images, add_member, add_model_version, make_project
from training.models import DatasetSnapshot, TrainingRun
from webhooks.services import webhook_create, webhook_ping

pytestmark = pytest.mark.django_db

ANYONE = "any logged-in user"
XSS = "<img src=x onerror=alert(1)>"
PUBLIC = "public"
MANAGER_OR_404 = "its requester or the project's managers; others: 404"
A, R, M = Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER
CALLERS = ["anonymous", "non-member", A, R, M]

PAGE_RULES = {
    ("login", "GET"): PUBLIC,
    ("logout", "POST"): PUBLIC,
    ("password_change", "GET"): ANYONE,
    ("password_change", "POST"): ANYONE,
    ("password_change_done", "GET"): ANYONE,
    ("password_reset", "GET"): PUBLIC,
    ("password_reset", "POST"): PUBLIC,
    ("password_reset_done", "GET"): PUBLIC,
    ("password_reset_confirm", "GET"): PUBLIC,
    ("password_reset_complete", "GET"): PUBLIC,
    ("review:project_list", "GET"): ANYONE,
    ("review:project_detail", "GET"): A,
    ("review:project_queue", "GET"): A,
    ("review:queue_next", "GET"): A,
    ("review:queue_bulk", "POST"): R,  # delete: M (tests/review/test_bulk_actions.py)
    ("review:project_team", "GET"): R,
    ("review:image_editor", "GET"): A,
    ("review:image_upload", "POST"): A,
    ("review:inference_start", "POST"): R,
    ("review:image_file", "GET"): A,
    ("review:image_remove", "POST"): M,
    ("review:account", "GET"): ANYONE,
    ("review:account", "POST"): ANYONE,
    ("review:email_confirm", "GET"): ANYONE,
    ("review:api_token", "GET"): ANYONE,
    ("review:api_token", "POST"): ANYONE,
    ("review:project_create", "POST"): ANYONE,
    ("review:project_settings", "GET"): M,
    ("review:project_settings", "POST"): M,
    ("review:label_class_add", "POST"): M,
    ("review:label_class_edit", "POST"): M,
    ("review:label_class_remove", "POST"): M,
    ("review:member_set", "POST"): M,
    ("review:member_remove", "POST"): M,
    ("review:project_remove", "POST"): M,
    ("review:project_deletion_cancel", "POST"): MANAGER_OR_404,
    ("inference:model_version_errors", "GET"): A,
    ("inference:second_look", "GET"): R,
    ("inference:suspect_dismiss", "POST"): R,
    ("inference:rerank_start", "POST"): M,
    ("inference:rerank_cancel", "POST"): M,
    ("inference:model_version_delete", "POST"): M,
    ("inference:model_version_deletion_cancel", "POST"): M,
    ("training:project_models", "GET"): A,
    ("training:compare", "GET"): A,
    ("training:thresholds", "GET"): A,
    ("training:review_threshold_use", "POST"): M,
    ("training:training_start", "POST"): M,
    ("training:model_version_upload", "POST"): M,
    ("training:training_cancel", "POST"): M,
    ("training:model_version_promote", "POST"): M,
    ("datasets:project_data", "GET"): M,
    ("datasets:import_start", "POST"): M,
    ("datasets:export_start", "POST"): M,
    ("datasets:job_cancel", "POST"): M,
    ("datasets:bucket_watch_add", "POST"): M,
    ("datasets:bucket_watch_remove", "POST"): M,
    ("webhooks:webhook_list", "GET"): M,
    ("webhooks:webhook_add", "POST"): M,
    ("webhooks:webhook_ping", "POST"): M,
    ("webhooks:webhook_toggle", "POST"): M,
    ("webhooks:webhook_remove", "POST"): M,
    ("webhooks:delivery_redeliver", "POST"): M,
}


def _pages() -> dict[str, list[str]]:
    """Every page's URL name (with its namespace) and the names of its URL arguments."""
    pages = {}

    def walk(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace in ("api", "admin"):
                    continue  # the API has its own matrix; the admin is walked below
                walk(pattern.url_patterns, f"{pattern.namespace}:" if pattern.namespace else namespace)
            elif isinstance(pattern, URLPattern) and pattern.name:
                pages[namespace + pattern.name] = list(pattern.pattern.converters)
    walk(get_resolver().url_patterns)
    return pages


def test_every_page_has_a_rule():
    assert set(_pages()) == {name for name, _ in PAGE_RULES}


@pytest.fixture
def world():
    # Every name a user controls carries a script: no page may show it unescaped.
    project = make_project(name=f"Secret {XSS}", class_names=[XSS, "car"])
    users = {role: add_member(project, role) for role in (A, R)}
    users[M] = project.memberships.get(role=M).user
    users["non-member"] = UserFactory()
    image = add_images(project, 1, size=64)[0]
    image.original_name = f"{XSS}.png"
    image.save()
    version = add_model_version(project)
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    snapshot.file.save("s.json", ContentFile(b"{}"))
    export = DatasetExport.objects.create(project=project, status=JobStatus.QUEUED)
    kwargs = {
        "project_id": project.pk, "image_id": image.pk, "version_id": version.pk,
        "run_id": TrainingRun.objects.create(project=project, snapshot=snapshot).pk,
        "suspect_id": SuspectedError.objects.create(image=image, model_version=version, kind="class_swap",
                                                    label_class=project.label_classes.first(), x=1, y=1, w=2,
                                                    h=2).pk,
        "kind": "export", "job_id": export.pk,
        "rerank_id": RerankRun.objects.create(project=project, score_threshold=0.5).pk,
        # Finished (one going would hide the project from every other page), and on its manager's project list.
        "deletion_id": ProjectDeletion.objects.create(project=project, project_name=project.name, requested_by=users[M],
                                                      status=JobStatus.CANCELLED, finished_at=timezone.now()).pk,
        "version_deletion_id": ModelVersionDeletion.objects.create(
            project=project, model_version=version, version_number=version.number, status=JobStatus.CANCELLED).pk,
        "class_id": project.label_classes.first().pk, "user_id": users[A].pk,
        "uidb64": "MQ", "token": "not-a-token",
    }
    DatasetImport.objects.create(project=project, original_name="a.zip")
    webhook = webhook_create(project=project, user=None, url=f"https://hooks.example/{XSS}",
                             events=["model_version.activated"])
    kwargs |= {"webhook_id": webhook.pk, "delivery_id": webhook_ping(webhook=webhook).pk,
               "watch_id": BucketWatch.objects.create(project=project, source_url="s3://cams/site-a/").pk}
    return users, kwargs


def _url(name: str, kwargs: dict) -> str:
    return reverse(name, kwargs={key: kwargs[key] for key in _pages()[name]})


def _expected(rule: str, caller: str) -> str:
    if rule == PUBLIC:
        return "allowed"
    if caller == "anonymous":
        return "login"
    if rule == ANYONE:
        return "allowed"
    if caller == "non-member":
        return "404"
    if rule == MANAGER_OR_404:
        return "allowed" if caller == M else "404"
    order = [A, R, M]
    return "allowed" if order.index(caller) >= order.index(rule) else "403"


@pytest.mark.parametrize(("name", "method"), sorted(PAGE_RULES))
def test_page_matrix(client, world, name, method):
    users, kwargs = world
    url = _url(name, kwargs)
    outcomes = {}
    for caller in CALLERS:
        client.logout()
        if caller != "anonymous":
            client.force_login(users[caller])
        response = client.get(url) if method == "GET" else client.post(url, {})
        assert response.status_code < 500, (caller, response.status_code)
        if response.get("Content-Type", "").startswith("text/html"):
            assert XSS not in response.content.decode(), f"{XSS} shown unescaped on {url} to {caller}"
        rule = PAGE_RULES[(name, method)]
        if rule != PUBLIC and response.status_code == 302 and response["Location"].startswith(reverse("login")):
            got = "login"
        elif response.status_code in (403, 404):
            got = str(response.status_code)
        else:
            got = "allowed"
        outcomes[caller] = (_expected(rule, caller), got)
    assert all(expected == got for expected, got in outcomes.values()), outcomes


def test_admin_is_for_staff_only(client, world):
    """Every registered model's list, add and change pages: anonymous and members are sent to the admin login."""
    users, _ = world
    staff = UserFactory(is_staff=True, is_superuser=True)
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:%s_%s_changelist" % info))
        obj = model.objects.first()
        if obj is not None:
            urls.append(reverse("admin:%s_%s_change" % info, args=[obj.pk]))
    for url in urls:
        for caller in ("anonymous", M):
            client.logout()
            if caller != "anonymous":
                client.force_login(users[caller])
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"], (caller, url)
        client.force_login(staff)
        assert client.get(url).status_code == 200, url
