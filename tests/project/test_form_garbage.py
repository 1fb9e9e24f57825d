"""Every form of every page and of the admin, posted with garbage in every field: a form error or a
refusal, never a server error. (A walk of the demo posting garbage found three 500s in the admin.)"""
import re
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.urls import Resolver404, resolve, reverse

from review.models import Role
from tests.factories import UserFactory
from tests.project.test_page_permissions import PAGE_RULES, _url

pytestmark = pytest.mark.django_db
GARBAGE = ["", "zz<b>x</b>", "9" * 23, "\u00b2"]
# Forms that would delete what the other forms need, and logout.
LEFT_OUT = re.compile(r"_remove$|_delete$|^logout$")


class Forms(HTMLParser):
    """The POST forms of a page: (action, {name: value}) with every field a browser would send."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._fields: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("method") or "").lower() == "post":
            self._fields = {}
            self.forms.append((attrs.get("action") or "", self._fields))
        elif self._fields is not None and tag in ("input", "select", "textarea") and attrs.get("name"):
            if attrs.get("type") not in ("submit", "button", "file"):
                self._fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._fields = None


def _post_garbage(client, page_url: str) -> tuple[int, list[str]]:
    """Post each form of the page once per GARBAGE value in all its fields: (forms posted, the 5xx answers)."""
    response = client.get(page_url, follow=True)
    assert response.status_code == 200, page_url
    page_url = response.redirect_chain[-1][0] if response.redirect_chain else page_url
    failures, posted = [], 0
    if not response["Content-Type"].startswith("text/html"):
        return 0, []
    parser = Forms()
    parser.feed(response.content.decode())
    for action, fields in parser.forms:
        url = action or page_url
        try:
            if LEFT_OUT.search(resolve(url.split("?")[0]).url_name or ""):
                continue
        except Resolver404:
            continue
        posted += 1
        for garbage in GARBAGE:
            data = {name: value if name == "csrfmiddlewaretoken" else garbage for name, value in fields.items()}
            status = client.post(url, data).status_code
            if status >= 500:
                failures.append(f"{url} <- {garbage!r} from {page_url}: {status}")
    return posted, failures


def test_every_page_form_takes_garbage(client, world):
    users, kwargs = world
    client.force_login(users[Role.MANAGER])
    posted, failures = 0, []
    for name, method in sorted(PAGE_RULES):
        if method == "GET" and not name.startswith(("password_", "login", "review:email_confirm")):
            forms, failed = _post_garbage(client, _url(name, kwargs))
            posted, failures = posted + forms, failures + failed
    assert not failures, failures
    assert posted >= 25  # the settings, data, webhooks, models, queue and editor pages' forms


def test_every_admin_form_takes_garbage(client, world):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    posted, failures = 0, []
    for model in admin.site._registry:
        opts = model._meta
        pages = [reverse(f"admin:{opts.app_label}_{opts.model_name}_add")]
        if (obj := model.objects.first()) is not None:
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        for page in pages:
            if client.get(page).status_code == 200:
                forms, failed = _post_garbage(client, page)
                posted, failures = posted + forms, failures + failed
    assert not failures, failures
    assert posted >= 20  # the pages of the models that are added or changed by hand
