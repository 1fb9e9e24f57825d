"""Every REST endpoint, every method, every kind of caller: the expected status.

The endpoint list is read from the URL configuration, and each (endpoint, method) must have a row in
REQUIRED_ROLE: a new endpoint without one fails `test_every_endpoint_has_a_rule`, so nobody has to
remember to cover it.
"""
import pytest
from django.core.files.base import ContentFile
from django.urls import URLPattern, get_resolver, reverse
from rest_framework.test import APIClient

from datasets.models import BucketWatch, DatasetExport, DatasetImport
from inference.models import InferenceRun, ModelExport, ModelVersion, ModelVersionDeletion, RerankRun, SuspectedError
from project import api_urls
from project.jobs import JobStatus
from review.models import ProjectDeletion, Role, Tag
from review.services import comment_add
from tests.factories import UserFactory, add_images, add_member, make_project
from training.models import DatasetSnapshot, TrainingRun
from webhooks.services import webhook_create, webhook_ping

pytestmark = pytest.mark.django_db

ANYONE = "any logged-in user"
PUBLIC = "public"  # the schema and its viewers: the API's contract is not a secret
AUTHOR = "its author only"  # no role is enough: the comment here is the target member's
MANAGER_OR_404 = "its requester or the project's managers; others: 404"  # a deletion outlives its project
A, R, M = Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER

REQUIRED_ROLE = {
    ("project_list", "GET"): ANYONE,
    ("project_list", "POST"): ANYONE,
    ("project_detail", "GET"): A,
    ("project_detail", "PATCH"): M,
    ("project_detail", "DELETE"): M,
    ("project_deletion_list", "GET"): ANYONE,  # each sees their own and their managed projects'
    ("project_deletion_detail", "GET"): MANAGER_OR_404,
    ("project_deletion_cancel", "POST"): MANAGER_OR_404,
    ("member_list", "GET"): M,
    ("member_list", "POST"): M,
    ("member_detail", "PATCH"): M,
    ("member_detail", "DELETE"): M,
    ("label_class_list", "GET"): A,
    ("label_class_list", "POST"): M,
    ("label_class_counts", "GET"): A,
    ("label_class_detail", "PATCH"): M,
    ("label_class_detail", "DELETE"): M,
    ("tag_list", "GET"): A,
    ("tag_detail", "PATCH"): M,
    ("tag_detail", "DELETE"): M,
    ("image_list", "GET"): A,
    ("image_list", "POST"): A,
    ("image_zip_upload", "POST"): A,
    ("image_bulk", "POST"): R,  # delete: M (tests/review/test_bulk_actions.py)
    ("next_image", "POST"): A,
    ("team_activity", "GET"): R,
    ("image_detail", "GET"): A,
    ("image_detail", "DELETE"): M,
    ("image_file", "GET"): A,
    ("image_thumbnail", "GET"): A,
    ("image_boxes", "PUT"): A,
    ("image_status", "POST"): R,
    ("image_comments", "GET"): A,
    ("image_comments", "POST"): A,
    ("image_box_history", "GET"): A,
    ("comment_detail", "DELETE"): M,  # or its author: the comment here is the target member's
    ("comment_detail", "PATCH"): AUTHOR,
    ("model_version_list", "GET"): A,
    ("model_version_list", "POST"): M,
    ("model_version_from_coco", "POST"): M,
    ("architecture_list", "GET"): ANYONE,
    ("model_version_rollback", "POST"): M,
    ("model_version_compare", "GET"): A,
    ("model_version_detail", "GET"): A,
    ("model_version_detail", "DELETE"): M,
    ("model_version_deletion_list", "GET"): A,
    ("model_version_deletion_detail", "GET"): A,
    ("model_version_deletion_cancel", "POST"): M,
    ("model_version_operating_points", "GET"): A,
    ("bucket_watch_list", "GET"): M,
    ("bucket_watch_list", "POST"): M,
    ("bucket_watch_detail", "DELETE"): M,
    ("model_version_promote", "POST"): M,
    ("model_version_weights", "GET"): M,
    ("model_export_list", "GET"): A,
    ("model_export_list", "POST"): M,
    ("model_export_detail", "GET"): A,
    ("model_export_cancel", "POST"): M,
    ("model_export_file", "GET"): M,
    ("prediction_list", "GET"): A,
    ("box_outcome_list", "GET"): A,
    ("box_outcome_counts", "GET"): A,
    ("suspected_error_list", "GET"): R,
    ("suspected_error_rates", "GET"): R,
    ("suspected_error_dismiss", "POST"): R,
    ("inference_run_list", "GET"): A,
    ("inference_run_list", "POST"): R,
    ("inference_run_detail", "GET"): A,
    ("inference_run_cancel", "POST"): R,
    ("rerank_run_list", "GET"): A,
    ("rerank_run_list", "POST"): M,
    ("rerank_run_detail", "GET"): A,
    ("rerank_run_cancel", "POST"): M,
    ("training_run_list", "GET"): A,
    ("training_run_list", "POST"): M,
    ("training_run_detail", "GET"): A,
    ("training_run_cancel", "POST"): M,
    ("snapshot_list", "GET"): A,
    ("snapshot_detail", "GET"): A,
    ("snapshot_download", "GET"): M,
    ("import_list", "GET"): M,
    ("import_list", "POST"): M,
    ("import_detail", "GET"): M,
    ("import_cancel", "POST"): M,
    ("export_list", "GET"): M,
    ("export_list", "POST"): M,
    ("export_detail", "GET"): M,
    ("export_cancel", "POST"): M,
    ("export_download", "GET"): M,
    ("webhook_list", "GET"): M,
    ("webhook_list", "POST"): M,
    ("webhook_detail", "GET"): M,
    ("webhook_detail", "PATCH"): M,
    ("webhook_detail", "DELETE"): M,
    ("webhook_ping", "POST"): M,
    ("webhook_delivery_list", "GET"): M,
    ("webhook_redeliver", "POST"): M,
    ("root", "GET"): PUBLIC,
    ("schema", "GET"): PUBLIC,
    ("docs", "GET"): PUBLIC,
    ("redoc", "GET"): PUBLIC,
}
HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Callers from least to most trusted, so a destructive call that succeeds runs last.
CALLERS = ["anonymous", "non-member", A, R, M]


def _api_endpoints() -> list[tuple[str, str]]:
    endpoints = []
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        view = pattern.callback.view_class
        endpoints += [(pattern.name, method) for method in HTTP_METHODS if hasattr(view, method.lower())]
    return endpoints


def test_every_endpoint_has_a_rule():
    assert sorted(_api_endpoints()) == sorted(REQUIRED_ROLE)


def test_api_is_mounted_under_v1():
    assert get_resolver().resolve("/api/v1/projects/").url_name == "project_list"


@pytest.fixture
def world():
    """One project with one of everything, members of each role, and an outsider."""
    project = make_project(name="Secret project")
    users = {role: add_member(project, role) for role in (A, R)}
    users[M] = project.memberships.get(role=M).user
    users["non-member"] = UserFactory()
    target = add_member(project, A)  # the member the member endpoints change
    image = add_images(project, 1)[0]
    version = ModelVersion.objects.create(project=project, number=1, architecture="ssdlite320_mobilenet_v3_large",
                                          class_names=["circle"])
    version.weights.save("w.safetensors", ContentFile(b"weights"))
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    snapshot.file.save("s.json", ContentFile(b"{}"))
    webhook = webhook_create(project=project, user=None, url="https://hooks.example/a", events=["training_run.finished"])
    ids = {
        "project_id": project.pk, "user_id": target.pk, "class_id": project.label_classes.first().pk,
        "image_id": image.pk, "version_id": version.pk, "snapshot_id": snapshot.pk,
        "comment_id": comment_add(image=image, author=target, text="A note").pk,
        "inference_run_id": InferenceRun.objects.create(project=project, model_version=version).pk,
        "training_run_id": TrainingRun.objects.create(project=project, snapshot=snapshot).pk,
        "rerank_run_id": RerankRun.objects.create(project=project, score_threshold=0.5).pk,
        # Finished: one still going would hide the project from every other endpoint here.
        "deletion_id": ProjectDeletion.objects.create(project=project, project_name=project.name,
                                                      status=JobStatus.CANCELLED).pk,
        "version_deletion_id": ModelVersionDeletion.objects.create(
            project=project, model_version=version, version_number=1, status=JobStatus.CANCELLED).pk,
        "import_id": DatasetImport.objects.create(project=project, original_name="a.zip").pk,
        "export_id": _finished_export(project).pk,
        "model_export_id": _finished_model_export(version).pk,
        "watch_id": BucketWatch.objects.create(project=project, source_url="s3://cams/site-a/").pk,
        "tag_id": Tag.objects.create(project=project, name="gate").pk,
        "webhook_id": webhook.pk, "delivery_id": webhook_ping(webhook=webhook).pk,
        "suspect_id": SuspectedError.objects.create(image=image, model_version=version, kind="class_swap",
                                                    label_class=project.label_classes.first(), x=1, y=1, w=2, h=2).pk,
    }
    return users, ids


def _finished_export(project) -> DatasetExport:
    export = DatasetExport(project=project, status=JobStatus.SUCCEEDED)
    export.file.save("e.zip", ContentFile(b"PK\x05\x06" + b"\0" * 18))
    return export


def _finished_model_export(version) -> ModelExport:
    export = ModelExport(project=version.project, model_version=version, version_number=version.number,
                         class_names=version.class_names, status=JobStatus.SUCCEEDED)
    export.file.save("m.onnx", ContentFile(b"onnx"))
    return export


def _url(name: str, ids: dict) -> str:
    pattern = next(p for p in api_urls.urlpatterns if p.name == name)
    wanted = pattern.pattern.converters.keys()
    kwargs = {key: ids[key] for key in wanted if key in ids}
    if "run_id" in wanted:
        kwargs["run_id"] = ids[f"{name.split('_run')[0]}_run_id"]
    return reverse(f"api:{name}", kwargs=kwargs)


def _expected(rule: str, caller: str) -> str:
    if rule == PUBLIC:
        return "allowed"
    if caller == "anonymous":
        return "401"
    if rule == ANYONE:
        return "allowed"
    if caller == "non-member":
        return "404"
    if rule == AUTHOR:
        return "403"
    if rule == MANAGER_OR_404:
        return "allowed" if caller == M else "404"
    order = [A, R, M]
    return "allowed" if order.index(caller) >= order.index(rule) else "403"


@pytest.mark.parametrize(("name", "method"), sorted(REQUIRED_ROLE))
def test_permission_matrix(world, name, method):
    users, ids = world
    url = _url(name, ids)
    outcomes = {}
    for caller in CALLERS:
        client = APIClient()
        if caller != "anonymous":
            client.force_authenticate(users[caller])
        response = getattr(client, method.lower())(url, {}, format="json") if method != "GET" else client.get(url)
        assert response.status_code < 500, (caller, response.status_code, getattr(response, "data", None))
        expected = _expected(REQUIRED_ROLE[(name, method)], caller)
        got = str(response.status_code) if response.status_code in (401, 403, 404) else "allowed"
        outcomes[caller] = (expected, got)
        if expected == "401":
            assert response.headers.get("WWW-Authenticate", "").startswith("Token")
    assert all(expected == got for expected, got in outcomes.values()), outcomes
