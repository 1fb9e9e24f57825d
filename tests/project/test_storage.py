"""storage_read: a whole media file, the same bytes on disk and in a bucket, in one request on a bucket."""
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from project.storage import storage_read


@pytest.fixture(params=["filesystem", "s3"])
def storage(request):
    if request.param == "s3":
        request.getfixturevalue("s3_media")
    return request.param


def test_reads_the_stored_bytes_and_says_when_a_file_is_missing(storage):
    data = bytes(range(256)) * 300
    name = default_storage.save("projects/1/images/ab/scene.png", ContentFile(data))
    assert storage_read(name) == data
    with pytest.raises(FileNotFoundError, match="gone.png"):
        storage_read("projects/1/images/ab/gone.png")


def test_a_bucket_is_read_with_one_request(s3_media):
    name = default_storage.save("projects/1/images/ab/scene.png", ContentFile(b"png" * 1000))
    calls = []
    default_storage.connection.meta.client.meta.events.register(
        "before-call.s3", lambda model, **kwargs: calls.append(model.name))
    assert storage_read(name) == b"png" * 1000
    assert calls == ["GetObject"]
