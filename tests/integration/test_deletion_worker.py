"""A project and a model version deleted through the API by a real `celery worker` of the default queue,
which reports each deletion's progress in its row and never loads torch."""
import pytest
from django.core.files.storage import default_storage

from inference.models import ModelVersion, ModelVersionDeletion, Prediction
from project.jobs import JobStatus
from review.models import Image, Project, ProjectDeletion
from tests.factories import add_images, add_model_version, api_client, make_project
from tests.integration.conftest import finished, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_default_queue_worker_deletes_a_version_then_the_project(start_worker):
    project = make_project()
    images = add_images(project, 3, size=48)
    old, active = add_model_version(project), add_model_version(project)
    circle = project.label_classes.first()
    for version in (old, active):
        Prediction.objects.bulk_create(Prediction(image=image, model_version=version, label_class=circle,
                                                  x=1, y=1, w=9, h=9, score=0.8) for image in images for _ in range(5))
    weights, files = old.weights.name, [image.file.name for image in images]
    worker = start_worker(queues="default")
    manager = api_client(project.memberships.get().user)

    response = manager.delete(f"/api/v1/model-versions/{old.pk}/")
    assert response.status_code == 202, response.content
    deletion = wait_for(lambda: finished(ModelVersionDeletion, response.data["id"]), timeout=60,
                        message="the worker to delete the version")
    assert (deletion.status, deletion.progress_done, deletion.progress_total, deletion.attempts) == (
        JobStatus.SUCCEEDED, 15, 15, 1), deletion.error
    assert list(ModelVersion.objects.values_list("pk", flat=True)) == [active.pk]
    assert Prediction.objects.count() == 15
    # The weights file goes once the deletion has committed: a moment after the run reads succeeded.
    wait_for(lambda: not default_storage.exists(weights), timeout=10, message="the weights file to go")

    response = manager.delete(f"/api/v1/projects/{project.pk}/")
    assert response.status_code == 202, response.content
    deletion = wait_for(lambda: finished(ProjectDeletion, response.data["id"]), timeout=60,
                        message="the worker to delete the project")
    assert (deletion.status, deletion.progress_done, deletion.progress_total) == (JobStatus.SUCCEEDED, 3, 3)
    assert not Project.objects.exists() and not Image.objects.exists() and not Prediction.objects.exists()
    wait_for(lambda: not any(default_storage.exists(name) for name in files), timeout=10,
             message="the images' files to go")
    assert not worker.torch_loaded()
