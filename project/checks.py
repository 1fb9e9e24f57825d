"""Checks of a deployment, run by `manage.py check --deploy` before the first upload finds them."""
from __future__ import annotations

from uuid import uuid4

from django.core.checks import Error, Warning, register


@register("storage", deploy=True)
def media_storage_works(app_configs, **kwargs) -> list[Error]:
    """Store, read back and delete a small file: a wrong bucket, endpoint, credentials or folder
    permissions fail here with the backend's own message instead of on a reviewer's upload."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    try:
        name = default_storage.save(f".storage-check-{uuid4().hex}", ContentFile(b"ok"))
        try:
            with default_storage.open(name, "rb") as handle:
                read_back = handle.read()
        finally:
            default_storage.delete(name)
    except Exception as exc:  # whatever the backend raises, the operator needs its message, not a traceback
        return [Error(f"Media storage cannot store files: {exc}", id="project.E001",
                      hint="Check MEDIA_STORAGE and the AWS_* variables (or MEDIA_ROOT's permissions).")]
    if read_back != b"ok":
        return [Error(f"Media storage gave back {read_back[:20]!r} for the file it was given.", id="project.E002")]
    return []


@register("email", deploy=True)
def email_links_work(app_configs, **kwargs) -> list[Warning]:
    """E-mails to members link to the app; a worker has no request to learn its address from."""
    from django.conf import settings

    if settings.EMAIL_NOTIFICATIONS and not settings.SITE_URL.startswith(("https://", "http://")):
        return [Warning("E-mail notifications are on but SITE_URL is not set: their links would lead nowhere.",
                        id="project.W001", hint="Set SITE_URL to the address people open the app at, "
                                                "e.g. https://labels.example.")]
    return []


@register("jobs")
def job_heartbeat_fits(app_configs, **kwargs) -> list[Error]:
    """A heartbeat slower than the sweeper's patience makes every quiet job look dead (project/jobs.py)."""
    from django.conf import settings

    if settings.JOB_HEARTBEAT_SECONDS * 2 > settings.JOB_STALE_MINUTES * 60:
        return [Error(f"JOB_HEARTBEAT_SECONDS ({settings.JOB_HEARTBEAT_SECONDS:g}) must be at most half of "
                      f"JOB_STALE_MINUTES ({settings.JOB_STALE_MINUTES} minutes): the stale-run sweeper would start "
                      "healthy jobs a second time.", id="project.E003")]
    return []
