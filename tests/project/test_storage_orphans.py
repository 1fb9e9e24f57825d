"""`manage.py storage_orphans`: files no row names are listed (and with --delete removed), on disk and
in an S3 bucket; every file a row names, and every file younger than the minimum age, stays."""
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

from project.jobs import JobStatus
from tests.factories import add_images, add_model_version, make_project
from training.models import DatasetSnapshot, TrainingRun, checkpoint_storage_name

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["filesystem", "s3"])
def storage(request):
    if request.param == "s3":
        request.getfixturevalue("s3_media")
    return request.param


def orphans(*args) -> tuple[list[str], str]:
    out = io.StringIO()
    call_command("storage_orphans", *args, stdout=out)
    lines = out.getvalue().splitlines()
    return sorted(line.split()[1] for line in lines[:-1]), lines[-1]


def test_files_no_row_names_are_found_and_deleted(storage):
    project = make_project()
    images = add_images(project, 2, size=32)
    version = add_model_version(project)
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    snapshot.file.save("s.json", ContentFile(b"{}"))
    failed = TrainingRun.objects.create(project=project, snapshot=snapshot, status=JobStatus.FAILED)
    done = TrainingRun.objects.create(project=project, snapshot=snapshot, status=JobStatus.SUCCEEDED)
    kept = [default_storage.save(checkpoint_storage_name(project.pk, failed.pk), ContentFile(b"may resume"))]
    lost = [
        default_storage.save(f"projects/{project.pk}/images/ab/left-by-a-killed-import.png", ContentFile(b"png")),
        default_storage.save(checkpoint_storage_name(project.pk, done.pk), ContentFile(b"finished run")),
        default_storage.save("projects/99999/images/cd/of-a-deleted-project.png", ContentFile(b"png")),
    ]

    assert orphans() == ([], "0 files (0.0 MB) that no row refers to, found; --delete removes them.")  # all new
    found, summary = orphans("--min-age-hours", "0")
    assert found == sorted(lost) and summary.startswith("3 files")

    assert orphans("--min-age-hours", "0", "--delete")[0] == sorted(lost)
    assert not any(default_storage.exists(name) for name in lost)
    in_use = [image.file.name for image in images] + [version.weights.name, snapshot.file.name, *kept]
    assert all(default_storage.exists(name) for name in in_use)
    assert orphans("--min-age-hours", "0")[0] == []


def test_a_negative_age_is_refused():
    with pytest.raises(CommandError, match="cannot be negative"):
        call_command("storage_orphans", "--min-age-hours", "-1")
