"""What the page matrix and the form walk share: a project with one of everything its pages show."""
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from datasets.models import BucketWatch, DatasetExport, DatasetImport
from inference.models import ModelExport, ModelVersionDeletion, RerankRun, SuspectedError
from project.jobs import JobStatus
from review.models import ProjectDeletion, Role, Tag
from tests.factories import UserFactory, add_images, add_member, add_model_version, make_project
from training.models import DatasetSnapshot, TrainingRun
from webhooks.services import webhook_create, webhook_ping

XSS = "<img src=x onerror=alert(1)>"
A, R, M = Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER


@pytest.fixture
def world():
    # Every name a user controls carries a script: no page may show it unescaped.
    project = make_project(name=f"Secret {XSS}", class_names=[XSS, "car"])
    users = {role: add_member(project, role) for role in (A, R)}
    users[M] = project.memberships.get(role=M).user
    users["non-member"] = UserFactory()
    image = add_images(project, 1, size=64)[0]
    image.original_name = f"{XSS}.png"
    image.save()
    tag = Tag.objects.create(project=project, name=f"night {XSS}")  # a name made without the checks
    image.tags.add(tag)
    version = add_model_version(project)
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    snapshot.file.save("s.json", ContentFile(b"{}"))
    export = DatasetExport.objects.create(project=project, status=JobStatus.QUEUED)
    kwargs = {
        "project_id": project.pk, "image_id": image.pk, "version_id": version.pk,
        "run_id": TrainingRun.objects.create(project=project, snapshot=snapshot).pk,
        "suspect_id": SuspectedError.objects.create(image=image, model_version=version, kind="class_swap",
                                                    label_class=project.label_classes.first(), x=1, y=1, w=2,
                                                    h=2).pk,
        "kind": "export", "job_id": export.pk,
        "rerank_id": RerankRun.objects.create(project=project, score_threshold=0.5).pk,
        # Finished (one going would hide the project from every other page), and on its manager's project list.
        "deletion_id": ProjectDeletion.objects.create(project=project, project_name=project.name, requested_by=users[M],
                                                      status=JobStatus.CANCELLED, finished_at=timezone.now()).pk,
        "version_deletion_id": ModelVersionDeletion.objects.create(
            project=project, model_version=version, version_number=version.number, status=JobStatus.CANCELLED).pk,
        "model_export_id": _finished_model_export(version).pk,
        "class_id": project.label_classes.first().pk, "user_id": users[A].pk,
        "tag_id": tag.pk,
        "uidb64": "MQ", "token": "not-a-token",
    }
    DatasetImport.objects.create(project=project, original_name="a.zip")
    webhook = webhook_create(project=project, user=None, url=f"https://hooks.example/{XSS}",
                             events=["model_version.activated"])
    kwargs |= {"webhook_id": webhook.pk, "delivery_id": webhook_ping(webhook=webhook).pk,
               "watch_id": BucketWatch.objects.create(project=project, source_url="s3://cams/site-a/").pk}
    return users, kwargs


def _finished_model_export(version) -> ModelExport:
    """Succeeded, with its file: the models page shows its check and download link."""
    export = ModelExport(project=version.project, model_version=version, version_number=version.number,
                         class_names=version.class_names, status=JobStatus.SUCCEEDED, size_bytes=4,
                         check_result={"images": 1, "boxes": 2, "matched": 2, "min_score": 0.3, "passed": True})
    export.file.save("m.onnx", ContentFile(b"onnx"))
    return export
