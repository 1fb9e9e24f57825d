"""Twenty reviewers saving the same few images through a real server: every save is applied or refused with 409.

Runs against the live test server on the test database. On SQLite (one writer at a time) it is
skipped: the claim is about PostgreSQL, which CI (`.ci/run`) uses.
"""
import json
import threading
import urllib.error
import urllib.request
from collections import Counter

import pytest
from django.db import connection

from review.api_tokens import api_token_create
from review.models import Image, LabelClass, ReviewEvent, Role
from tests.factories import add_images, add_member, make_project

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CLIENTS, SAVES, IMAGES = 20, 20, 5  # 800 requests: four reviewers to an image collide often enough


def _call(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_concurrent_saves_on_overlapping_images_lose_nothing(live_server_media_url, live_server):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (CI runs it); SQLite serialises writers")
    project = make_project()
    images = add_images(project, IMAGES, size=64)
    circle = LabelClass.objects.get(project=project, name="circle")
    tokens = [api_token_create(user=add_member(project, Role.ANNOTATOR)) for _ in range(CLIENTS)]
    outcomes: Counter = Counter()
    applied: Counter = Counter()
    lock = threading.Lock()

    def reviewer(number: int) -> None:
        for save in range(SAVES):
            image = images[(number + save) % IMAGES]
            url = f"{live_server.url}/api/v1/images/{image.pk}/"
            status, detail = _call("GET", url, tokens[number])
            box = {"label_class": circle.pk, "x": number, "y": save, "w": 5, "h": 5}
            status, _ = _call("PUT", url + "boxes/", tokens[number], {"version": detail["version"], "boxes": [box]})
            with lock:
                outcomes[status] += 1
                if status == 200:
                    applied[image.pk] += 1

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(outcomes.values()) == CLIENTS * SAVES
    assert set(outcomes) <= {200, 409}, outcomes  # zero 5xx, nothing else
    assert outcomes[200] > 0 and outcomes[409] > 0  # they really did collide
    for image in Image.objects.filter(pk__in=[i.pk for i in images]):
        assert image.version == 1 + applied[image.pk]  # every applied save, and only those, moved the version
        assert image.annotations.count() == 1  # the last save's box, whole
        assert ReviewEvent.objects.filter(image=image).count() == applied[image.pk]
