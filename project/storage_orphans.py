"""Files in media storage that no row refers to any more: left by a worker killed between writing a
file and committing its row (an import's images, say), or by a project delete that stopped halfway.

In use are the names in every FileField of every installed model, plus what a model lists in its
`storage_names_in_use()` (TrainingRun: the checkpoints of runs that may still resume). Only files
under `projects/` are considered, and only ones older than a minimum age, because every upload
writes its file a moment before the row that names it is committed. Through the storage API, so it
works the same on disk and in an S3 bucket.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import models
from django.utils import timezone

ROOT = "projects"


@dataclass(frozen=True)
class Orphan:
    name: str
    size: int
    modified: datetime


def names_in_use() -> set[str]:
    names: set[str] = set()
    for model in apps.get_models():
        fields = [field.name for field in model._meta.get_fields() if isinstance(field, models.FileField)]
        for field in fields:
            names.update(model._default_manager.exclude(**{field: ""}).values_list(field, flat=True))
        if hasattr(model, "storage_names_in_use"):
            names.update(model.storage_names_in_use())
    return names


def storage_orphans(*, min_age: timedelta) -> Iterator[Orphan]:
    """Every file under projects/ that no row names and that is older than `min_age`."""
    in_use = names_in_use()
    cutoff = timezone.now() - min_age
    for name in _files(ROOT):
        if name in in_use:
            continue
        modified = default_storage.get_modified_time(name)
        if modified <= cutoff:
            yield Orphan(name=name, size=default_storage.size(name), modified=modified)


def _files(folder: str) -> Iterator[str]:
    try:
        subfolders, files = default_storage.listdir(folder)
    except FileNotFoundError:  # nothing was ever stored (on disk; an object store just lists nothing)
        return
    for name in files:
        yield f"{folder}/{name}"
    for subfolder in subfolders:
        yield from _files(f"{folder}/{subfolder}")
