"""Admin actions that several apps share."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.core.exceptions import ValidationError


def cancel_runs(modeladmin: admin.ModelAdmin, request, runs: Iterable, cancel: Callable) -> None:
    """Ask each selected job run to stop, through its app's cancel service."""
    for run in runs:
        try:
            cancel(run=run)
            modeladmin.message_user(request, f"{run} is stopping.")
        except ValidationError as exc:
            modeladmin.message_user(request, f"{run}: {' '.join(exc.messages)}", messages.WARNING)
