"""A saved review answers at once; a real `celery worker` then judges the models on the new boxes."""
import pytest

from inference.models import BoxOutcome
from review.models import LabelClass
from tests.factories import add_images, add_model_version, api_client, make_project, outcome_case
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_saved_review_is_judged_by_a_worker(start_worker):
    project = make_project()
    [image] = add_images(project, 1, size=96)
    version = add_model_version(project)
    circle, square = (LabelClass.objects.get(project=project, name=n) for n in ("circle", "square"))
    boxes = outcome_case(image, version, circle, square)
    worker = start_worker(queues="default")  # error review's bookkeeping runs no model
    client = api_client(project.memberships.get().user)
    response = client.put(f"/api/v1/images/{image.pk}/boxes/", {"version": image.version, "boxes": boxes},
                          format="json")
    assert response.status_code == 200

    def kinds():
        return sorted(BoxOutcome.objects.filter(image=image, model_version=version).values_list("kind", flat=True))
    assert wait_for(kinds, message="the worker to write the outcomes") == ["missed", "missed", "tp", "wrong_class"]
    client.post(f"/api/v1/images/{image.pk}/status/", {"status": "unreviewed"}, format="json")
    wait_for(lambda: not BoxOutcome.objects.exists(), message="the worker to drop the outcomes of an unreviewed image")
    assert not worker.torch_loaded()
