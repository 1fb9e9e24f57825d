"""An import's or export's file goes with its row, however the row goes.

Export rows are deleted by cascades the datasets app does not run: a model version's deletion
(inference/version_deletion.py cannot import this app, which sits above it) or a project's. A
`post_delete` receiver deletes the file once that deletion commits, instead of leaving it for
`manage.py storage_orphans`.
"""
from __future__ import annotations

from django.core.files.storage import default_storage
from django.db import transaction


def job_file_delete(sender, instance, **kwargs) -> None:
    name = instance.file.name
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))
