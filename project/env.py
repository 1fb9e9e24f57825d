"""Read the environment into settings values; kept apart from settings.py so tests can call it."""
from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_bool(environ: dict[str, str], name: str, default: bool) -> bool:
    """Parse a yes/no variable; anything unexpected is a configuration error, not a silent False."""
    raw = environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_list(environ: dict[str, str], name: str, default: list[str]) -> list[str]:
    raw = environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_config(url: str | None, var_dir: Path) -> dict:
    """DATABASE_URL -> Django DATABASES['default']; the default is SQLite under var/."""
    if not url:
        url = f"sqlite:///{var_dir / 'db.sqlite3'}"
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Django understands: {exc}") from exc
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # A file-backed test database: worker subprocesses in integration tests must see it.
        config["CONN_MAX_AGE"] = 0
        config["TEST"] = {"NAME": str(Path(config["NAME"]).with_name("test_" + Path(config["NAME"]).name))}
        # WAL lets the web server and a worker read while the other writes.
        config["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 30, "transaction_mode": "IMMEDIATE"}
    return config


def broker_transport(url: str) -> str | None:
    """CELERY_BROKER_TRANSPORT for a URL broker_config returned: for filesystem://, kombu's transport with each
    message written whole (project/filesystem_broker.py); for the others None, and the URL's scheme decides."""
    return "project.filesystem_broker:Transport" if url.startswith("filesystem://") else None


def broker_config(url: str | None, var_dir: Path) -> tuple[str, dict]:
    """CELERY_BROKER_URL -> (url, transport options). The default is Celery's filesystem transport."""
    # Longer than the longest training run, or Redis would hand a running task to a second worker.
    visibility_timeout = 12 * 3600
    if not url or url.startswith("filesystem://"):
        folder = var_dir / "broker"
        for sub in ("queue", "processed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return "filesystem://", {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            # The exchange table, which kombu would otherwise write into ./control wherever the process runs.
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # kombu looks for a new message once a second by default, and a worker that takes one task at
            # a time (prefetch 1) then runs at most one task a second, however short: look ten times as often.
            "polling_interval": 0.1,
        }
    if url.startswith(("redis://", "rediss://")):
        return url, {"visibility_timeout": visibility_timeout}
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return url, {}
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={url!r} is not supported; use redis://, amqp:// or filesystem://."
    )


def secret_key(environ: dict[str, str], debug: bool, var_dir: Path) -> str:
    """SECRET_KEY from the environment; generated once into var/ for local use, required in production."""
    key = environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    if not debug:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        # `make demo` starts the web server and a worker at once: the key is written whole under a
        # temporary name and linked into place, so the loser of a race reads the winner's key, never
        # an empty or half-written file (which would sign sessions the other process cannot read).
        draft = path.with_name(f".secret_key.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(50))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links: the first to create the file writes it
            try:
                with open(path, "x") as file:
                    file.write(draft.read_text())
            except FileExistsError:
                pass
        finally:
            draft.unlink()
    for _ in range(100):  # empty only for the moment between another process's create and write
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise ImproperlyConfigured(f"{path} is empty; delete it and start again to generate a new key.")


# S3's rules for bucket names: 3-63 lowercase letters, digits, dots and hyphens.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def import_buckets(urls: list[str]) -> list[str]:
    """IMPORT_BUCKETS: the s3://bucket[/prefix] URLs that imports may read (datasets/bucket_source.py)."""
    for url in urls:
        bucket = url.removeprefix("s3://").partition("/")[0]
        if not url.startswith("s3://") or not BUCKET_NAME.fullmatch(bucket):
            raise ImproperlyConfigured(f"IMPORT_BUCKETS: {url!r} is not an s3://bucket[/prefix] URL.")
    return urls


def media_storage(url: str | None) -> dict:
    """MEDIA_STORAGE -> Django STORAGES['default']: files under MEDIA_ROOT (the default), or an
    S3-compatible bucket, `s3://bucket` or `s3://bucket/prefix`, through django-storages.

    Credentials, region and a non-AWS endpoint (MinIO, Ceph, Cloudflare R2...) are boto3's own
    variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3) or
    an instance role, so no secret passes through these settings."""
    if not url:
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    if not url.startswith("s3://"):
        raise ImproperlyConfigured(f"MEDIA_STORAGE={url!r} is not supported; use s3://bucket[/prefix], or leave it "
                                   "unset to store media under MEDIA_ROOT.")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not BUCKET_NAME.fullmatch(bucket):
        raise ImproperlyConfigured(f"MEDIA_STORAGE={url!r}: {bucket!r} is not an S3 bucket name (3-63 lowercase "
                                   "letters, digits, dots and hyphens).")
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": prefix.strip("/"),
            # As on disk: a second file of the same name is stored beside the first, never over it.
            "file_overwrite": False,
            # Media stays private (review.views streams it to members): no ACL, only signed URLs if any.
            "default_acl": None,
            "querystring_auth": True,
        },
    }
