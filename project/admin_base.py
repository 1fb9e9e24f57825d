"""What the apps' admin classes share."""
from __future__ import annotations


class ViewOnlyAdmin:
    """Rows the app's services make (and keep consistent): the admin lists and shows them, and may
    delete them unless the class says otherwise, but never adds or edits one by hand. Put it before
    admin.ModelAdmin in the bases."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
