"""A new review threshold set through the API is applied to the stored outcomes by a real `celery worker`,
which reports the rerank's progress in its RerankRun row."""
import pytest

from inference.models import BoxOutcome, Prediction, RerankRun
from inference.outcomes import box_outcomes_refresh
from review.services import BoxIn, image_boxes_save
from tests.factories import add_images, add_model_version, api_client, make_project
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_judges_the_reviewed_images_again_at_the_new_threshold(start_worker, broker):
    if broker["url"].startswith("redis"):
        pytest.skip("the rerank is an ordinary default-queue task; the filesystem broker's case is enough")
    project = make_project()
    version = add_model_version(project)
    [image] = add_images(project, 1, size=96)
    circle = project.label_classes.get(index=0)
    image_boxes_save(image=image, user=None, version=image.version,
                     boxes=[BoxIn(label_class_id=circle.pk, x=10, y=10, w=30, h=30)])
    for x, score in [(10, 0.9), (50, 0.4)]:
        Prediction.objects.create(image=image, model_version=version, label_class=circle, x=x, y=10, w=30, h=30,
                                  score=score)
    box_outcomes_refresh(image_ids=[image.pk])

    def kinds():
        return sorted(BoxOutcome.objects.filter(image=image).values_list("kind", flat=True))
    assert kinds() == ["tp"]
    start_worker(queues="default")
    manager = project.memberships.get().user
    response = api_client(manager).patch(f"/api/v1/projects/{project.pk}/", {"score_threshold": 0.3}, format="json")
    assert response.status_code == 200, response.content
    assert wait_for(lambda: kinds() == ["fp", "tp"], timeout=60, message="the worker to judge the 0.4 box")
    run = RerankRun.objects.get(project=project)
    assert wait_for(lambda: RerankRun.objects.filter(pk=run.pk, status="succeeded").exists(), timeout=30,
                    message="the rerank to report its end")
    run.refresh_from_db()
    assert (run.score_threshold, run.progress_done, run.progress_total, run.images_judged, run.attempts,
            run.requested_by) == (0.3, 1, 1, 1, 1, manager)
