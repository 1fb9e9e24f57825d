"""The operator's console. Actions call the same services as the pages and the API."""
import json
from collections import defaultdict

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from rest_framework.authtoken.models import TokenProxy

from inference.services import rerank_run_create
from project.admin_actions import cancel_runs
from project.admin_base import ViewOnlyAdmin
from review.bulk_actions import bulk_apply
from review.models import (
    Annotation, ApiToken, Comment, Image, LabelClass, Membership, Mention, NotificationSettings, PasswordResetRequest,
    Project, ProjectDeletion, ReviewEvent, StatusChange,
)
from review.project_deletion import project_deletion_cancel, project_deletion_start
from review.services import comment_delete, image_delete, images_delete, label_class_delete
from training.services import snapshot_coco, training_run_start


class MembershipInline(admin.TabularInline):
    model = Membership
    raw_id_fields = ["user"]
    extra = 0


class DeletesThroughServices:
    """Deletes go through the services, as from the pages and the API: they wait for writers on the
    rows (project/row_locks.py) and remove the stored files. Review events and status changes are
    read-only here, but they go with their image: without this, the admin refused (403) to delete
    any reviewed image."""

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        read_only = {ReviewEvent._meta.verbose_name, StatusChange._meta.verbose_name}
        return deleted, counts, perms_needed - read_only, protected


class LabelClassFormSet(BaseInlineFormSet):
    def delete_existing(self, label_class, commit=True):
        if commit:
            label_class_delete(label_class=label_class)


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    formset = LabelClassFormSet
    extra = 0


def _report(request, label: str, action) -> None:
    """Run `action`, then tell the operator what happened or why it was refused."""
    try:
        messages.success(request, f"{label}: {action()}")
    except ValidationError as exc:
        messages.error(request, f"{label}: {' '.join(exc.messages)}")


@admin.register(Project)
class ProjectAdmin(DeletesThroughServices, admin.ModelAdmin):
    list_display = ["name", "holdout_fraction", "retrain_after_reviews", "infer_on_upload", "score_threshold",
                    "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline, LabelClassInline]
    actions = ["start_fine_tuning", "export_reviewed_labels"]

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


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "project"]
    search_fields = ["user__username", "project__name"]
    raw_id_fields = ["user", "project"]


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "index", "colour"]
    list_select_related = ["project"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["project"]

    def delete_model(self, request, label_class):
        label_class_delete(label_class=label_class)

    def delete_queryset(self, request, label_classes):
        for label_class in label_classes:
            label_class_delete(label_class=label_class)


@admin.register(Image)
class ImageAdmin(DeletesThroughServices, admin.ModelAdmin):
    list_display = ["id", "original_name", "project", "status", "split", "width", "height", "priority", "uncertainty",
                    "created_at"]
    list_filter = ["status", "split"]
    list_select_related = ["project"]
    search_fields = ["original_name", "content_hash"]
    raw_id_fields = ["project", "reviewed_by", "held_by", "assigned_to"]  # held_by: an admin may clear a hold
    # Media has no public URL, so the file is shown as a link to the member-only view, not as a widget.
    exclude = ["file"]
    readonly_fields = ["stored_file", "content_hash", "stored_hash", "width", "height", "split", "version",
                       "correction_count"]
    show_full_result_count = False  # COUNT(*) over 100k rows on every page load is not worth it
    actions = ["run_inference", "approve_reviewed", "send_back"]

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
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "label_class", "x", "y", "w", "h", "source", "author", "updated_at"]
    list_filter = ["source"]
    list_select_related = ["image", "label_class", "author"]
    raw_id_fields = ["image", "label_class", "author"]
    show_full_result_count = False


@admin.register(ReviewEvent)
class ReviewEventAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Read-only: the record of what reviewers did, which the corrections metric and each image's
    correction_count are made of. An edited event would make them disagree."""

    list_display = ["id", "image", "user", "model_version_id", "accepted", "moved", "relabeled", "deleted", "added",
                    "seconds_spent", "created_at"]
    list_select_related = ["image", "user"]
    raw_id_fields = ["image", "user"]
    show_full_result_count = False

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
class CommentAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "author", "created_at", "text"]
    list_select_related = ["image", "author"]
    search_fields = ["text"]
    readonly_fields = ["image", "author", "created_at"]
    show_full_result_count = False

    # Through the services, which keep each image's comment_count.
    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, comment):
        comment_delete(comment=comment)

    def delete_queryset(self, request, comments):
        for comment in comments:
            comment_delete(comment=comment)


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
    autocomplete_fields = ["user"]


@admin.register(ProjectDeletion)
class ProjectDeletionAdmin(admin.ModelAdmin):
    """Started by deleting a project (here, on its settings page or through the API); the row outlives the project."""

    list_display = ["id", "project_name", "status", "percent", "attempts", "requested_by", "created_at", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["requested_by"]
    search_fields = ["project_name"]
    raw_id_fields = ["project", "requested_by"]
    readonly_fields = ["project", "project_name", "progress_done", "progress_total", "celery_task_id", "held_by_task", "started_at",
                       "finished_at"]
    actions = ["cancel"]

    def has_add_permission(self, request) -> bool:
        return False  # a row added here would never be queued; deleting the project starts one

    @admin.action(description="Cancel the selected deletions (their projects come back with what is left)")
    def cancel(self, request, deletions):
        cancel_runs(self, request, deletions, lambda run: project_deletion_cancel(deletion=run))
