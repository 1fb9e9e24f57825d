"""Every browser page and every admin URL, as anonymous, a non-member, each role and staff.

Like the API's matrix (test_api_permissions.py), the list of pages is read from the URL
configuration: a page without a rule in PAGE_RULES fails `test_every_page_has_a_rule`.
"""
import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from review.models import Role
from tests.factories import UserFactory
from tests.project.conftest import XSS

pytestmark = pytest.mark.django_db

ANYONE = "any logged-in user"
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
    ("review:image_thumbnail", "GET"): A,
    ("review:image_region", "GET"): A,
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
    ("review:tag_edit", "POST"): M,
    ("review:tag_remove", "POST"): M,
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
    ("inference:model_export_start", "POST"): M,
    ("inference:model_export_cancel", "POST"): M,
    ("training:project_models", "GET"): A,
    ("training:compare", "GET"): A,
    ("training:thresholds", "GET"): A,
    ("training:review_threshold_use", "POST"): M,
    ("training:training_start", "POST"): M,
    ("training:model_version_upload", "POST"): M,
    ("training:model_version_from_coco", "POST"): M,
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
