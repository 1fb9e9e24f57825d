"""Schemathesis against our OpenAPI schema, in process, logged in with a token: no input makes a 5xx.

Every operation gets generated cases (paths, queries, bodies the schema allows, and some it does not);
random ids mostly answer 404 and random bodies 400. What this guards is that no endpoint crashes.
(Driven with Hypothesis directly: schemathesis' pytest plugin does not run under pytest 9 yet.)
"""
from collections import Counter

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings

from project.wsgi import application
from review.api_tokens import api_token_create
from tests.factories import add_images, add_model_version, make_project

pytestmark = pytest.mark.django_db
EXAMPLES_PER_OPERATION = 6


@pytest.fixture
def wsgi_app(db):
    # Called as a plain WSGI app, Django would close the test's database connection after each
    # request; the test client avoids that the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _world() -> dict:
    """A project with one of everything; the fuzzed paths name these, so cases reach past the 404."""
    project = make_project()
    image = add_images(project, 1, size=32)[0]
    version = add_model_version(project)
    user = project.memberships.get().user
    return {"project_id": project.pk, "image_id": image.pk, "version_id": version.pk, "user_id": user.pk,
            "class_id": project.label_classes.first().pk,
            "token": api_token_create(user=user)}


def test_no_input_makes_a_server_error(wsgi_app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", wsgi_app)
    server_errors, cases, statuses = [], [0], Counter()
    world, touched = None, True
    for result in schema.get_all_operations():
        operation = result.ok()
        # Fresh after any operation that may change it: a fuzzed DELETE must not starve the others.
        # A world only read from is as good as new (and each one costs a model version's load).
        if touched:
            world = _world()
        touched = operation.method.upper() not in ("GET", "HEAD", "OPTIONS")

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            cases[0] += 1
            # Half the cases aim at objects that exist, half keep the generated (mostly unknown) ids.
            if case.path_parameters and cases[0] % 2:
                case.path_parameters = {name: world.get(name, value) for name, value in case.path_parameters.items()}
            response = case.call(headers={"Authorization": f"Token {world['token']}"})
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}")
        call()
    assert cases[0] >= 200, cases
    assert statuses[404] < cases[0] * 0.8, statuses  # most cases got past the URL and the access check
    assert server_errors == []
