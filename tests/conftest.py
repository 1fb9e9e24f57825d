import os
import sys
import uuid

import pytest

# Two pytest processes share two cores (`make test`): torch's default of a thread per core in each, and in
# every worker they start, would make four or more threads spin for two cores. One each, set before
# anything imports torch; worker subprocesses inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items):
    """Tests marked `long` first: with pytest-xdist (`make test` runs two processes) one then runs beside
    the rest instead of alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # a stable sort keeps the rest in order


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Each test stores its files in its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness is for attackers, not for test users (0.3 s each otherwise)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def live_server_media_url():
    """The test live server wraps the app in a media handler that needs a MEDIA_URL string; ours is None
    (media is only streamed to members). Give it a prefix nothing links to, for the tests only."""
    from django.test import override_settings

    with override_settings(MEDIA_URL="/_media_never_linked/"):
        yield


@pytest.fixture(autouse=True)
def inference_worker_state_reset():
    """The inference writer thread keeps its database connection between chunks (CONN_MAX_AGE), as in
    a worker; a test closes it afterwards, or PostgreSQL would refuse to drop the test database.
    The worker's per-run cache is emptied too: a rolled-back SQLite test gives the next run the same id."""
    yield
    execution = sys.modules.get("inference.execution")
    if execution is None:
        return
    execution._REVIEWED_COUNTS = (None, {})
    if execution._WRITER is not None:
        from django.db import connections

        execution._WRITER.submit(connections.close_all).result()


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3 endpoint on this machine (moto's server, in a thread): the edge of the world, as AWS, MinIO
    or R2 would be in production. Worker subprocesses reach it over HTTP like any S3 client."""
    from moto.server import ThreadedMotoServer

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3_client_env(monkeypatch, endpoint: str) -> None:
    """boto3's own variables, pointing at the local endpoint (test credentials)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_media(s3_endpoint, settings, monkeypatch):
    """Media in a new, empty bucket for this test: boto3's own variables point at the endpoint (a worker
    started by the test inherits them), and `worker_env` is what a worker needs besides."""
    import boto3

    from project.env import media_storage

    _s3_client_env(monkeypatch, s3_endpoint)
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/media"
    settings.STORAGES = {**settings.STORAGES, "default": media_storage(url)}

    class Bucket:
        name = bucket
        worker_env = {"MEDIA_STORAGE": url}

        @staticmethod
        def keys() -> list[str]:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    return Bucket


@pytest.fixture
def cameras(s3_endpoint, settings, monkeypatch):
    """A bucket where two sites' cameras drop frames; this installation may import site A's (IMPORT_BUCKETS).
    boto3's own variables point at the local endpoint; a worker started by the test inherits them."""
    import boto3

    _s3_client_env(monkeypatch, s3_endpoint)
    bucket = f"cams-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    settings.IMPORT_BUCKETS = [f"s3://{bucket}/site-a"]

    class Cameras:
        name = bucket
        worker_env = {"IMPORT_BUCKETS": f"s3://{bucket}/site-a"}

        @staticmethod
        def put(key: str, data: bytes) -> None:
            client.put_object(Bucket=bucket, Key=key, Body=data)

    return Cameras


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 that records each request (tests/webhooks/receiver.py)."""
    from tests.webhooks.receiver import Receiver

    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
