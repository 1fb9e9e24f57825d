"""A row's stored files go with the row, however the row goes.

Some rows are deleted by cascades their own app does not run: a model version's deletion takes its
prediction exports (inference/version_deletion.py cannot import the datasets app, which sits above
it), a project's deletion its imports and exports, the admin a snapshot. A `post_delete` receiver
deletes each of the row's files once that deletion commits, instead of leaving them for
`manage.py storage_orphans`.
"""
from __future__ import annotations

from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models.signals import post_delete


def files_go_with_rows(*row_models: type[models.Model]) -> None:
    """Call from an AppConfig.ready(): the files of these models' rows are deleted with the rows."""
    for model in row_models:
        post_delete.connect(_row_files_delete, sender=model, dispatch_uid=f"file_cleanup.{model._meta.label}")


def _row_files_delete(sender, instance, **kwargs) -> None:
    names = [getattr(instance, field.attname) for field in sender._meta.fields if isinstance(field, models.FileField)]
    for name in filter(None, (str(name) for name in names)):
        transaction.on_commit(lambda name=name: default_storage.delete(name))
