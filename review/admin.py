"""The operator's console. Actions call the same services as the pages and the API."""
import json
from collections import defaultdict

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from rest_framework.authtoken.models import TokenProxy

from inference.models import Prediction
from inference.services import rerank_run_create
from project.admin_actions import cancel_runs
from project.admin_base import BoundedIdsAdmin, DeleteRefusals, JobRunAdmin, ViewOnlyAdmin
from review.bulk_actions import bulk_apply
from review.models import (
    Annotation, ApiToken, Comment, Image, ImageLook, LabelClass, Membership, Mention, NotificationSettings,
    PasswordResetRequest, Project, ProjectDeletion, ReviewEvent, Role, StatusChange, Tag,
)
from review.project_deletion import project_deletion_cancel, project_deletion_start, project_is_being_deleted
from review.services import (
    comment_delete, image_delete, images_delete, label_class_create, label_class_delete, label_class_in_use,
    label_class_update, membership_remove, membership_set,
)
from training.services import snapshot_coco, training_run_start


class MembershipInline(admin.TabularInline):
    """Shown here, changed one at a time under Memberships, through the services (the last manager stays)."""

    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class LabelClassFormSet(BaseInlineFormSet):
    """Classes change through the services: a new one gets the next index (the model's class id) and a
    colour, and an index never changes. (Django itself refuses to delete a class with human boxes: they
    protect it.)"""

    def save_new(self, form, commit=True):
        return label_class_create(project=self.instance, name=form.cleaned_data["name"],
                                  colour=form.cleaned_data["colour"] or None)

    def save_existing(self, form, label_class, commit=True):
        return label_class_update(label_class=label_class, name=form.cleaned_data["name"],
                                  colour=form.cleaned_data["colour"] or None)

    def delete_existing(self, label_class, commit=True):
        if commit:
            label_class_delete(label_class=label_class)


class LabelClassForm(forms.ModelForm):
    colour = forms.CharField(required=False, max_length=7, help_text="#rrggbb; empty: the palette's next colour.")

    class Meta:
        model = LabelClass
        fields = ["project", "name", "colour"]


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    form = LabelClassForm
    formset = LabelClassFormSet
    fields = ["name", "colour", "index"]
    readonly_fields = ["index"]
    extra = 0


def _report(request, label: str, action) -> None:
    """Run `action`, then tell the operator what happened or why it was refused."""
    try:
        messages.success(request, f"{label}: {action()}")
    except ValidationError as exc:
        messages.error(request, f"{label}: {' '.join(exc.messages)}")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "holdout_fraction", "retrain_after_reviews", "infer_on_upload", "promote_only_clear_gains",
                    "tag_loss_limit", "score_threshold", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline, LabelClassInline]
    actions = ["start_fine_tuning", "export_reviewed_labels"]
    readonly_fields = ["created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # from the project list, which makes its creator its first manager

    def has_change_permission(self, request, project=None) -> bool:
        # One being deleted is shown as it is: its settings no longer matter (and its jobs are refused).
        being_deleted = project is not None and project_is_being_deleted(project)
        return super().has_change_permission(request, project) and not being_deleted

    def get_deleted_objects(self, projects, request):
        # A worker deletes the project with everything in it (review/project_deletion.py): what the page lists is
        # a count, not Django's list of every related row, which for 100,000 images would never render.
        images = Image.objects.filter(project__in=projects).count()
        deleted = [f"{project}, with its images, boxes, predictions, models and jobs (a worker deletes them)"
                   for project in projects]
        return deleted, {"projects": len(projects), "images": images}, set(), []

    def save_model(self, request, project, form, change):
        super().save_model(request, project, form, change)
        if change and "score_threshold" in form.changed_data:  # as project_settings_update does
            rerank_run_create(project=project, user=request.user)

    def delete_model(self, request, project):
        _report(request, project.name, lambda: f"{project_deletion_start(project=project, user=request.user)} "
                "queued: the project is hidden now; follow it under Project deletions")

    def delete_queryset(self, request, projects):
        for project in projects:
            self.delete_model(request, project)

    def response_delete(self, request, obj_display, obj_id):
        # Django would say "deleted successfully"; delete_model said what happened instead.
        return HttpResponseRedirect(reverse("admin:review_project_changelist"))

    @admin.action(description="Start fine-tuning on the reviewed labels")
    def start_fine_tuning(self, request, projects):
        for project in projects:
            _report(request, project.name,
                    lambda: f"training run #{training_run_start(project=project, user=request.user).pk} queued")

    @admin.action(description="Export reviewed labels (COCO JSON, one project)")
    def export_reviewed_labels(self, request, projects):
        if len(projects) != 1:
            self.message_user(request, "Choose exactly one project to export.", messages.ERROR)
            return None
        project = projects[0]
        response = HttpResponse(json.dumps(snapshot_coco(project), indent=1), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="project-{project.pk}-reviewed-coco.json"'
        return response


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["project", "user", "role"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        if self.instance.pk and role != Role.MANAGER and not _managers_left(self.instance.project_id, [self.instance.pk]):
            raise ValidationError("A project needs at least one manager; make someone else manager first.")
        return role


def _managers_left(project_id: int, leaving: list[int]) -> bool:
    return Membership.objects.filter(project_id=project_id, role=Role.MANAGER).exclude(pk__in=leaving).exists()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Through the services: the last manager stays, and a member who leaves gives back their assigned images."""

    form = MembershipForm
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "project"]
    search_fields = ["user__username", "project__name"]
    raw_id_fields = ["user", "project"]

    def get_readonly_fields(self, request, membership=None):
        return ["project", "user"] if membership is not None else []  # a membership is one user in one project

    def save_model(self, request, membership, form, change):
        saved = membership_set(project=membership.project, user=membership.user, role=membership.role)
        membership.pk = saved.pk

    def get_deleted_objects(self, memberships, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(memberships, request)
        leaving = defaultdict(list)
        for membership in memberships:
            leaving[membership.project].append(membership.pk)
        protected += [f"{project}: its last manager would leave; make someone else manager first"
                      for project, ids in leaving.items() if not _managers_left(project.pk, ids)]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, membership):
        membership_remove(project=membership.project, user=membership.user)

    def delete_queryset(self, request, memberships):
        for membership in memberships.select_related("project", "user"):
            membership_remove(project=membership.project, user=membership.user)


@admin.register(Tag)
class TagAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Tags come with imports and the queue's bulk actions (review/tags.py); deleting one here takes it off
    its images."""

    list_display = ["name", "project", "created_at"]
    list_select_related = ["project"]
    search_fields = ["name", "project__name"]


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    """Through the services, as on the settings page: see LabelClassFormSet."""

    form = LabelClassForm
    list_display = ["name", "project", "index", "colour"]
    list_select_related = ["project"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["project"]

    def get_fields(self, request, label_class=None):
        return ["project", "name", "colour"] + (["index"] if label_class is not None else [])

    def get_readonly_fields(self, request, label_class=None):
        return ["project", "index"] if label_class is not None else []

    def save_model(self, request, label_class, form, change):
        colour = form.cleaned_data["colour"] or None
        if change:
            label_class_update(label_class=label_class, name=label_class.name, colour=colour)
        else:
            label_class.pk = label_class_create(project=label_class.project, name=label_class.name, colour=colour).pk

    def get_deleted_objects(self, label_classes, request):
        # Counts, not Django's list of every prediction of the class (and of every human box that keeps it).
        refused = [reason for label_class in label_classes if (reason := label_class_in_use(label_class))]
        predictions = Prediction.objects.filter(label_class__in=label_classes).count()
        deleted = [f"{label_class} of {label_class.project}, with the models' predictions of it" for label_class in label_classes]
        return deleted, {"label classes": len(label_classes), "predictions": predictions}, set(), refused

    def delete_model(self, request, label_class):
        label_class_delete(label_class=label_class)

    def delete_queryset(self, request, label_classes):
        for label_class in label_classes:
            label_class_delete(label_class=label_class)


@admin.register(Image)
class ImageAdmin(DeleteRefusals, admin.ModelAdmin):
    """Deletes go through the services, as from the pages and the API: they wait for writers on the rows
    (project/row_locks.py) and remove the stored files; the image's boxes and review record go with it."""

    list_display = ["id", "original_name", "project", "status", "split", "width", "height", "priority", "uncertainty",
                    "created_at"]
    list_filter = ["status", "split"]
    list_select_related = ["project"]
    search_fields = ["original_name", "content_hash"]
    # Images come from uploads and imports (checked, turned upright, hashed); their status, boxes and
    # assignee change through the review services (the actions below, the queue, the editor), which
    # keep the review record. Here: the name shown, and a hold an admin may clear.
    raw_id_fields = ["held_by"]
    # Media has no public URL, so the file is shown as a link to the member-only view, not as a widget.
    exclude = ["file", "thumbnail"]
    readonly_fields = ["stored_file", "tags"] + [field.name for field in Image._meta.fields if field.name not in (
        "id", "file", "thumbnail", "original_name", "held_by", "held_until")]
    show_full_result_count = False  # COUNT(*) over 100k rows on every page load is not worth it
    actions = ["run_inference", "approve_reviewed", "send_back"]

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, image):
        image_delete(image=image)

    def delete_queryset(self, request, images):
        images_delete(images=images)

    @admin.display(description="File")
    def stored_file(self, image: Image) -> str:
        return format_html('<a href="{}">{}</a>', reverse("review:image_file", args=[image.pk]), image.file.name)

    @admin.action(description="Run the active model on the selected images")
    def run_inference(self, request, images):
        self._bulk(request, images, "predict")

    @admin.action(description="Approve the selected reviewed images")
    def approve_reviewed(self, request, images):
        self._bulk(request, images, "approve")

    @admin.action(description="Send the selected images back to the review queue")
    def send_back(self, request, images):
        self._bulk(request, images, "send_back")

    def _bulk(self, request, images, action: str) -> None:
        """The queue page's bulk action (review/bulk_actions.py), once per project of the selection."""
        by_project = defaultdict(list)
        for project_id, image_id in images.values_list("project_id", "id"):
            by_project[project_id].append(image_id)
        for project in Project.objects.filter(pk__in=by_project):
            _report(request, project.name, lambda: bulk_apply(
                project=project, user=request.user, action=action,
                images=Image.objects.filter(pk__in=by_project[project.pk])).message())


@admin.register(Annotation)
class AnnotationAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Read-only: boxes change in the editor or through the API, where every save keeps the boxes it
    replaced (an image's box history) and counts the reviewer's corrections."""

    list_display = ["id", "image", "label_class", "x", "y", "w", "h", "source", "author", "updated_at"]
    list_filter = ["source"]
    list_select_related = ["image", "label_class", "author"]
    show_full_result_count = False
    deleted_with_parent = True

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReviewEvent)
class ReviewEventAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Read-only: the record of what reviewers did, which the corrections metric and each image's
    correction_count are made of. An edited event would make them disagree."""

    list_display = ["id", "image", "user", "model_version_id", "accepted", "moved", "relabeled", "deleted", "added",
                    "seconds_spent", "created_at"]
    list_select_related = ["image", "user"]
    raw_id_fields = ["image", "user"]
    show_full_result_count = False
    deleted_with_parent = True

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ImageLook)
class ImageLookAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Read-only: made from the image's file when it is added (review/look_alikes.py), gone with the image."""

    list_display = ["image", "image__project"]
    list_select_related = ["image__project"]
    raw_id_fields = ["image"]
    show_full_result_count = False
    deleted_with_parent = True

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StatusChange)
class StatusChangeAdmin(ReviewEventAdmin):
    """Read-only for the same reason: the team page's approvals and send-backs are made of them."""

    list_display = ["id", "image", "status", "user", "reviewed_by", "created_at"]
    list_filter = ["status"]
    list_select_related = ["image", "user", "reviewed_by"]
    raw_id_fields = ["image", "user", "reviewed_by"]


@admin.register(Comment)
class CommentAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Staff read comments and delete one (through the services, which keep each image's comment_count);
    nobody changes another's words, as on the pages."""

    list_display = ["id", "image", "author", "created_at", "text"]
    list_select_related = ["image", "author"]
    search_fields = ["text"]
    show_full_result_count = False

    def delete_model(self, request, comment):
        comment_delete(comment=comment)

    def delete_queryset(self, request, comments):
        for comment in comments:
            comment_delete(comment=comment)


# Django's own user and group pages, with their many-to-many choices (groups, permissions) checked first.
class CheckedUserAdmin(BoundedIdsAdmin, UserAdmin):
    pass


class CheckedGroupAdmin(BoundedIdsAdmin, GroupAdmin):
    pass


admin.site.unregister(User)
admin.site.register(User, CheckedUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, CheckedGroupAdmin)


# DRF's own token admin would show (and let staff add) plain keys that no longer authenticate:
# tokens are review.ApiToken now, stored as digests.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Staff see who has a key and revoke one (delete); keys are made by their users (/account/token/)."""

    list_display = ["user", "prefix", "created_at", "last_used_at"]
    search_fields = ["user__username"]
    readonly_fields = ["user", "prefix", "digest", "created_at", "last_used_at"]


@admin.register(PasswordResetRequest)
class PasswordResetRequestAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """The last hour's reset e-mails asked for (review/password_resets.py); deleting a client's rows lifts its 429."""

    list_display = ["created_at", "client", "sent", "address_digest"]
    list_filter = ["sent"]
    search_fields = ["client"]
    readonly_fields = ["address_digest", "client", "sent", "created_at"]


@admin.register(Mention)
class MentionAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Who was named in which comment, and whether they have opened the image since; made by comments only."""

    list_display = ["user", "image", "created_at", "read_at"]
    list_filter = ["read_at"]
    search_fields = ["user__username", "comment__text"]
    readonly_fields = ["comment", "image", "user", "created_at", "read_at"]


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    """Which e-mails each user turned off (no row: they get all of them); users change theirs on /account/."""

    list_display = ["user", "email_mentions", "email_send_backs", "email_assignments", "email_jobs", "pending_email"]
    list_filter = ["email_mentions", "email_send_backs", "email_assignments", "email_jobs"]
    search_fields = ["user__username", "user__email"]
    # Not autocomplete_fields: its widget, drawn again around a form error, asked the database for a
    # user id that was not a number (a 500).
    raw_id_fields = ["user"]


@admin.register(ProjectDeletion)
class ProjectDeletionAdmin(JobRunAdmin):
    """Started by deleting a project (here, on its settings page or through the API); the row outlives the project."""

    list_display = ["id", "project_name", "status", "percent", "attempts", "requested_by", "created_at", "finished_at"]
    list_select_related = ["requested_by"]
    search_fields = ["project_name"]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected deletions (their projects come back with what is left)")
    def cancel(self, request, deletions):
        cancel_runs(self, request, deletions, lambda run: project_deletion_cancel(deletion=run))
