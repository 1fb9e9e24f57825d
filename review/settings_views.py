"""Pages that set a project up: a new project (anyone logged in), and its settings page (managers):
name and options, label classes, members, and deleting the project.

Each form posts to its own URL and calls one service. What a service refuses comes back as a
message (or, for the settings form, on the form itself) and changes nothing.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from inference.services import project_settings_update
from review import services
from review.access import object_for_member, project_for_member
from review.forms import (
    LabelClassForm, MemberForm, ProjectCreateForm, ProjectDeleteForm, ProjectSettingsForm, cleaned_or_refused,
    refusal_reported,
)
from review.models import LabelClass, Membership, Project, Role, Tag
from review.project_deletion import project_deletion_start
from review.tags import tag_delete, tag_rename, tags_with_counts

SETTINGS_FIELDS = list(ProjectSettingsForm.base_fields)
RERANK_NOTE = (" The queue's ranking and error review are being worked out again at the new threshold, ≥ {:.4g}: "
               "the project page shows how far.")


@login_required
@require_POST
def project_create(request: HttpRequest) -> HttpResponseRedirect:
    with refusal_reported(request, "The project was not created"):
        data = cleaned_or_refused(ProjectCreateForm(request.POST))
        project = services.project_create(name=data["name"], owner=request.user, class_names=data["class_names"])
        messages.success(request, f"Created {project.name}. Upload images, or import a labelled dataset.")
        return HttpResponseRedirect(reverse("review:project_detail", args=[project.pk]))
    return HttpResponseRedirect(reverse("review:project_list"))


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    if request.method == "GET":
        form = ProjectSettingsForm(initial={field: getattr(project, field) for field in SETTINGS_FIELDS})
        return _settings_page(request, project, form)
    form = ProjectSettingsForm(request.POST)
    if form.is_valid():
        try:
            rerank = project_settings_update(project=project, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Settings saved." + (RERANK_NOTE.format(project.score_threshold)
                                                           if rerank else ""))
            return HttpResponseRedirect(reverse("review:project_settings", args=[project.pk]))
        project.refresh_from_db()  # project_update set the refused values on it before checking them
    return _settings_page(request, project, form, status=400)


def _settings_page(request: HttpRequest, project: Project, form: ProjectSettingsForm, status: int = 200) -> HttpResponse:
    label_classes = list(project.label_classes.annotate(human_boxes=Count("annotations")).order_by("index"))
    next_index = label_classes[-1].index + 1 if label_classes else 0
    return render(request, "review/project_settings.html", {
        "project": project,
        "form": form,
        "label_classes": label_classes,
        "members": Membership.objects.filter(project=project).select_related("user").order_by("user__username"),
        "roles": Role.choices,
        "next_colour": services.PALETTE[next_index % len(services.PALETTE)],  # what label_class_create would pick
        "delete_form": ProjectDeleteForm(project=project),
        "webhook_count": project.webhooks.count(),  # webhooks/ has their own page
        "tags": tags_with_counts(project),
    }, status=status)


@login_required
@require_POST
def label_class_add(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    form = LabelClassForm(request.POST)
    with refusal_reported(request, "The class was not added"):
        data = cleaned_or_refused(form)
        label_class = services.label_class_create(project=project, name=data["name"], colour=data["colour"] or None)
        messages.success(request, f"Added the class {label_class.name}.")
    return _back_to_settings(project.pk)


@login_required
@require_POST
def label_class_edit(request: HttpRequest, class_id: int) -> HttpResponseRedirect:
    label_class = object_for_member(request.user, LabelClass.objects.all(), class_id, role=Role.MANAGER)
    form = LabelClassForm(request.POST)
    with refusal_reported(request, "The class was not changed"):
        old_name = label_class.name
        data = cleaned_or_refused(form)
        services.label_class_update(label_class=label_class, name=data["name"], colour=data["colour"] or None)
        messages.success(request, f"Saved the class {old_name}" + (
            f", now {label_class.name}." if label_class.name != old_name else "."))
    return _back_to_settings(label_class.project_id)


@login_required
@require_POST
def label_class_remove(request: HttpRequest, class_id: int) -> HttpResponseRedirect:
    label_class = object_for_member(request.user, LabelClass.objects.all(), class_id, role=Role.MANAGER)
    with refusal_reported(request, "The class was not deleted"):
        services.label_class_delete(label_class=label_class)
        messages.success(request, f"Deleted the class {label_class.name}.")
    return _back_to_settings(label_class.project_id)


@login_required
@require_POST
def tag_edit(request: HttpRequest, tag_id: int) -> HttpResponseRedirect:
    tag = object_for_member(request.user, Tag.objects.select_related("project"), tag_id, role=Role.MANAGER)
    with refusal_reported(request, "The tag was not renamed"):
        old_name = tag.name
        now = tag_rename(tag=tag, name=request.POST.get("name", ""))
        if now.pk != tag.pk:
            messages.success(request, f"The images tagged {old_name} are now tagged {now.name}, with the others.")
        elif now.name != old_name:
            messages.success(request, f"Renamed the tag {old_name} to {now.name}.")
    return _back_to_settings(tag.project_id)


@login_required
@require_POST
def tag_remove(request: HttpRequest, tag_id: int) -> HttpResponseRedirect:
    tag = object_for_member(request.user, Tag.objects.all(), tag_id, role=Role.MANAGER)
    tag_delete(tag=tag)
    messages.success(request, f"Took the tag {tag.name} off its images.")
    return _back_to_settings(tag.project_id)


@login_required
@require_POST
def member_set(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    """Add a user by username with a role, or change a member's role."""
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    form = MemberForm(request.POST)
    with refusal_reported(request, "The member was not saved"):
        data = cleaned_or_refused(form)
        user = get_user_model().objects.filter(username=data["username"].strip()).first()
        if user is None:
            raise ValidationError(f"There is no user named {data['username'].strip()!r}.")
        membership = services.membership_set(project=project, user=user, role=data["role"])
        messages.success(request, f"{user.get_username()} is now {membership.get_role_display().lower()}.")
        if user == request.user and membership.role != Role.MANAGER:  # no longer allowed on the settings page
            return HttpResponseRedirect(reverse("review:project_detail", args=[project.pk]))
    return _back_to_settings(project.pk)


@login_required
@require_POST
def member_remove(request: HttpRequest, project_id: int, user_id: int) -> HttpResponseRedirect:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    user = get_object_or_404(get_user_model(), pk=user_id, memberships__project=project)
    with refusal_reported(request, "The member was not removed"):
        services.membership_remove(project=project, user=user)
        messages.success(request, f"Removed {user.get_username()} from the project.")
    if user == request.user:  # a manager who left can no longer see the settings
        return HttpResponseRedirect(reverse("review:project_list"))
    return _back_to_settings(project.pk)


@login_required
@require_POST
def project_remove(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    form = ProjectDeleteForm(request.POST, project=project)
    with refusal_reported(request, "The project was not deleted"):
        cleaned_or_refused(form)
        project_deletion_start(project=project, user=request.user)
        messages.success(request, f"Deleting the project {project.name} with its images, boxes and models: it is gone "
                         "for everyone now, and a worker deletes its files below. Cancel it there to keep what is left.")
        return HttpResponseRedirect(reverse("review:project_list"))
    return _back_to_settings(project.pk)


def _back_to_settings(project_id: int) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("review:project_settings", args=[project_id]))
