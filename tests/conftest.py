import sys

import pytest


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
