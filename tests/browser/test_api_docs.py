"""The API's docs pages in a real browser: everything they load comes from this server."""
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_the_docs_ask_no_other_host(page, path):
    # Every request the browser sends goes through here; none may leave (this machine has no network
    # anyway, so each is refused and counted). ReDoc's sidebar logo came from cdn.redoc.ly.
    asked = []

    def other_host(route):
        asked.append(route.request.url)
        route.abort()

    page.route(lambda url: urlparse(url).hostname not in ("localhost", "127.0.0.1"), other_host)
    page.goto(page.base_url + path)
    page.wait_for_selector("h1:has-text(\"Detector review API\"), h2:has-text(\"Detector review API\")", timeout=30_000)
    page.wait_for_load_state("networkidle")
    assert asked == []
