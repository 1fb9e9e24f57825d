"""What the apps' admin classes share."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from project.converters import as_id


class ViewOnlyAdmin:
    """Rows the app's services make (and keep consistent): the admin lists and shows them, and may
    delete them unless the class says otherwise, but never adds or edits one by hand. Put it before
    admin.ModelAdmin in the bases."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class DeleteRefusals:
    """Django's delete pages (one object, or the *delete selected* action) list why some objects may not
    go, and delete nothing: `delete_refusal(obj)` returns the reason, or None. Put it before
    admin.ModelAdmin in the bases.

    Django also refuses a delete that cascades to rows the user may not delete; rows whose admin says
    `deleted_with_parent` (never deleted alone: review events, boxes, chunks) go with their parent all the same.
    """

    def delete_refusal(self, obj) -> str | None:
        return None

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        children = {model._meta.verbose_name for model, model_admin in admin.site._registry.items()
                    if getattr(model_admin, "deleted_with_parent", False)}
        return deleted, counts, perms_needed - children, [*protected, *filter(None, map(self.delete_refusal, objs))]


class JobRunAdmin(ViewOnlyAdmin, DeleteRefusals, admin.ModelAdmin):
    """A background job's row: started by the pages, the API, the commands or an admin action (a row added
    here would never be queued, a status changed here would lie), watched here and stopped by its
    *cancel* action. Only finished runs are deleted: a worker may be writing the rows of one still going."""

    list_filter = ["status"]
    readonly_fields = ["waiting"]  # a job queued a minute: which queue's worker it waits for (JobRun.waiting)

    def delete_refusal(self, run) -> str | None:
        return None if run.is_finished else f"{run} is {run.status}: cancel it first"


class BoundedIdsMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Django checks each chosen id alone, then asks the database for all of them at once (`pk__in`), which a
    number past a 64-bit integer overflows (a 500 on SQLite, and on PostgreSQL): such ids are refused first."""

    def _check_values(self, value):
        for pk in value:
            if as_id(pk) is None:
                raise ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value",
                                      params={"pk": pk})
        return super()._check_values(value)


class BoundedIdsAdmin:
    """The many-to-many fields of this admin take only ids a database can hold. Put it before the admin class."""

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("form_class", BoundedIdsMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)
