"""A web process serves every page and API call of the review loop without loading torch.

torch and torchvision cost each web process about 700 MB and four seconds to start; only workers
(and the rare request that uploads weights) need them. The pages run in a fresh interpreter,
since this test process has long imported torch itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inference.models import InferenceRun, Prediction
from inference.outcomes import box_outcomes_refresh
from review.models import Image, LabelClass, Split
from tests.factories import add_images, add_model_version, make_project, review_with_truth
from tests.integration.conftest import REPO, database_url
from training.models import TrainingRun

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Runs in the web process: every request, then whether torch was imported along the way.
WEB_PROCESS = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

calls = json.loads(sys.argv[1])
client = APIClient()
client.force_login(get_user_model().objects.get(pk=calls["user"]))
statuses = []
for method, url, body in calls["requests"]:
    response = getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)
    statuses.append([method, url, response.status_code])
print(json.dumps({"statuses": statuses, "torch": "torch" in sys.modules, "torchvision": "torchvision" in sys.modules}))
"""


def test_pages_and_api_of_the_review_loop_run_without_torch(tmp_path, media_root):
    project = make_project()
    images = add_images(project, 8, size=96)
    Image.objects.filter(pk=images[0].pk).update(split=Split.HOLDOUT)
    first, second = add_model_version(project), add_model_version(project)
    circle = LabelClass.objects.get(project=project, name="circle")
    for n, image in enumerate(images[:6]):
        image.refresh_from_db()
        review_with_truth(image, seed=n, size=96)
        Prediction.objects.bulk_create([
            Prediction(image=image, model_version=version, label_class=circle, x=5, y=5, w=30, h=30, score=score)
            for version, score in ((first, 0.9), (second, 0.6))])
    box_outcomes_refresh(image_ids=[image.pk for image in images[:6]])
    open_image = images[7]
    owner = project.memberships.get().user
    owner.is_staff = owner.is_superuser = True  # for the admin pages
    owner.save()
    p, i = project.pk, open_image.pk
    requests = [
        ("get", "/", None),
        ("get", f"/projects/{p}/", None),
        ("get", f"/projects/{p}/queue/", None),
        ("get", f"/images/{i}/edit", None),
        ("get", f"/images/{i}/file", None),
        ("get", f"/images/{i}/thumbnail", None),
        ("get", f"/model-versions/{second.pk}/errors/", None),
        ("get", f"/projects/{p}/second-look/", None),
        ("get", f"/projects/{p}/models/", None),
        ("get", f"/projects/{p}/models/compare/?first={first.pk}&second={second.pk}", None),
        ("get", f"/projects/{p}/data/", None),
        ("get", "/admin/", None),
        ("get", "/admin/review/image/", None),
        ("get", "/admin/inference/modelversion/", None),
        ("get", f"/api/v1/projects/{p}/images/?ordering=corrections", None),
        ("get", f"/api/v1/images/{i}/", None),
        ("get", f"/api/v1/projects/{p}/predictions/", None),
        ("get", f"/api/v1/model-versions/{second.pk}/outcomes/counts/", None),
        ("get", f"/api/v1/projects/{p}/model-versions/compare/?first={first.pk}&second={second.pk}", None),
        ("get", "/api/v1/schema/", None),
        ("put", f"/api/v1/images/{i}/boxes/", {
            "version": open_image.version, "model_version": second.pk,
            "boxes": [{"label_class": circle.pk, "x": 10, "y": 10, "w": 20, "h": 20}]}),
        ("post", f"/api/v1/projects/{p}/inference-runs/", {"scope": "unreviewed"}),
        ("post", f"/api/v1/projects/{p}/training-runs/", {"epochs": 1}),
        ("post", f"/api/v1/projects/{p}/exports/", {"format": "coco", "include_images": False}),
        ("delete", f"/api/v1/model-versions/{first.pk}/", None),  # not the active one
        ("get", f"/projects/{p}/models/", None),
        ("delete", f"/api/v1/projects/{p}/", None),
        ("get", "/", None),
    ]
    accepted = {"post": 201, "put": 200, "get": 200, "delete": 202}
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "DATABASE_URL": database_url(),
           "MEDIA_ROOT": str(media_root), "VAR_DIR": str(tmp_path), "CELERY_BROKER_URL": "filesystem://",
           "DEBUG": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", WEB_PROCESS, json.dumps({"user": owner.pk,
                                                                          "requests": requests})],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [(method, url, status) for method, url, status in result["statuses"]
            if status != (202 if url.endswith("/exports/") else accepted[method])] == []
    assert not result["torch"] and not result["torchvision"]
    # The calls did their work: the review is saved and both jobs wait for a worker.
    open_image.refresh_from_db()
    assert open_image.status == "reviewed" and open_image.annotations.count() == 1
    assert InferenceRun.objects.filter(project=project).exists() and TrainingRun.objects.filter(project=project).exists()
