"""Browser pages of the review app. Thin: access check, one selector or service, one template."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.middleware.csrf import get_token
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from datasets.formats import is_video_name
from datasets.services import dataset_import_start
from inference import selectors as inference_selectors
from inference import services as inference_services
from inference.ranking import WEIGHTS as RANKING_WEIGHTS
from project.converters import as_id
from review import notifications, project_deletion, selectors, services
from review.activity import DEFAULT_WINDOW, WINDOWS, team_activity, window_start
from review.access import member_of, object_for_member, project_for_member
from review.api import image_detail_data
from review.media import image_file_response, image_region_response, image_thumbnail_response, images_for_media
from review.forms import AccountForm, refusal_reported
from review.bulk_actions import ACTIONS, bulk_apply, member_by_id, required_role, selected_images
from review.api_tokens import api_token_create, api_token_revoke
from review.models import ROLE_RANK, ApiToken, Image, ReviewStatus, Role
from review.project_deletion import deletions_on_project_list, deletions_visible_to
from review.tags import project_tags
from review.queue import (
    ImageCursorPagination, ImageFilter, images_with_counts, queue_cards, queue_cards_html, url_with_id_slot,
)
from training import selectors as training_selectors
from training.config import MAX_EPOCHS, TrainConfig
from workers.selectors import project_queue_workers

IMAGES_PER_PAGE = 48


@login_required
@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    projects = list(selectors.project_list_for_user(request.user))
    waiting = selectors.work_waiting_for(request.user, [p.pk for p in projects])
    for project in projects:
        project.waiting = waiting.get(project.pk)
    return render(request, "review/project_list.html", {
        "projects": projects, "deletions": deletions_on_project_list(request.user)})


@login_required
@require_POST
def project_deletion_cancel(request: HttpRequest, deletion_id: int) -> HttpResponseRedirect:
    deletion = get_object_or_404(deletions_visible_to(request.user), pk=deletion_id)
    with refusal_reported(request, "The deletion was not cancelled"):
        project_deletion.project_deletion_cancel(deletion=deletion)
        messages.success(request, f"Cancelled the deletion of {deletion.project_name}: the project is back with the "
                         "images that were not deleted yet.")
    return HttpResponseRedirect(reverse("review:project_list"))


@login_required
@require_GET
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = member_of(request.user, project_id)
    project = membership.project
    status = request.GET.get("status") if request.GET.get("status") in ReviewStatus.values else None
    counts = selectors.image_status_counts(project=project)
    page = Paginator(selectors.image_list(project=project, status=status), IMAGES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "review/project_detail.html", {
        "project": project,
        "page": page,
        "status": status,
        "statuses": [(value, label, counts[value]) for value, label in ReviewStatus.choices],
        "awaiting_approval": counts[ReviewStatus.REVIEWED],
        # Images a reviewer sent back over this member's review: fixes to make.
        "sent_back_to_me": selectors.images_sent_back_to(Image.objects.filter(project=project),
                                                         request.user.pk).count(),
        "assigned_to_me": Image.objects.filter(project=project, status=ReviewStatus.UNREVIEWED,
                                               assigned_to=request.user).count(),
        "mentioning_me": selectors.images_mentioning(Image.objects.filter(project=project), request.user.pk).count(),
        "label_classes": project.label_classes.all(),
        "can_manage": membership.has_role(Role.MANAGER),
        "can_approve": membership.has_role(Role.REVIEWER),
        "active_model": inference_services.active_model_version(project),
        "inference_runs": inference_selectors.inference_runs_recent(project=project),
        "rerank_runs": inference_selectors.rerank_runs_recent(project=project),
        "model_versions": inference_selectors.model_versions(project=project),
        "training_runs": training_selectors.training_runs_recent(project=project),
        "default_epochs": TrainConfig.epochs, "max_epochs": MAX_EPOCHS,
        "corrections": _with_version_numbers(project, selectors.corrections_by_model_version(project=project)),
        "drift": _with_version_numbers(project, selectors.review_drift(project=project)),
        "queue_workers": project_queue_workers(),
    })


def _with_version_numbers(project, rows: list[dict]) -> list[dict]:
    numbers = dict(inference_selectors.model_versions(project=project).values_list("pk", "number")) if rows else {}
    return [{**row, "label": f"v{numbers.get(row['model_version_id'], '?')}"} for row in rows]


@login_required
@require_GET
def project_queue(request: HttpRequest, project_id: int) -> HttpResponse:
    """The review queue: the same filters, orderings and cursor pages as the images API.

    A queue URL that names no filter (the project page's link, a breadcrumb, the next page of
    either) is the to-do list: unreviewed images only. The form always sends `status`, empty for
    "any", so every filtered view, "any" included, shows exactly what it asks for.
    """
    membership = member_of(request.user, project_id)
    project = membership.project
    active = inference_services.active_model_version(project)
    images = images_with_counts(Image.objects.filter(project=project), active)
    query = request.GET
    to_do = not any(name in query for name in ImageFilter.base_filters)
    if to_do:
        query = query.copy()
        query["status"] = ReviewStatus.UNREVIEWED
        images = images.filter(status=ReviewStatus.UNREVIEWED)
    else:  # the FilterSet builds a form per request (about 1 ms): only when a filter was asked for
        filterset = ImageFilter(query, queryset=images)
        if filterset.is_valid():
            images = filterset.qs
        else:
            messages.error(request, "Some filters were not understood and were ignored: "
                           + "; ".join(f"{k}: {' '.join(v)}" for k, v in filterset.errors.items()))
    paginator = ImageCursorPagination()
    paginator.page_size = IMAGES_PER_PAGE
    try:
        images = paginator.paginate_queryset(images, Request(request))
    except APIException as exc:  # an unknown ordering or a damaged cursor
        messages.error(request, " ".join(str(v) for v in (exc.detail.values() if isinstance(exc.detail, dict)
                                                               else [exc.detail])))
        return HttpResponseRedirect(reverse("review:project_queue", args=[project.pk]))
    return render(request, "review/queue.html", {
        "project": project,
        "cards": (cards := queue_cards(images, looks_like=services.images_looking_seen(
            project=project, user=request.user, images=images))),
        "cards_html": queue_cards_html(cards, selectable=membership.has_role(Role.REVIEWER)),
        "next_url": paginator.get_next_link(),
        "previous_url": paginator.get_previous_link(),
        "query": query,
        "to_do": to_do,
        "statuses": ReviewStatus.choices,
        "orderings": list(ImageCursorPagination.orderings),
        "label_classes": project.label_classes.all(),
        "model_versions": inference_selectors.model_versions(project=project),
        "members": project.memberships.select_related("user").order_by("user__username"),
        "tags": project_tags(project),
        "active_model": active,
        # The filters alone (no ordering or cursor): "every image matching" re-applies them.
        "filter_fields": _filter_fields(query),
        "can_bulk": membership.has_role(Role.REVIEWER),
        "can_manage": membership.has_role(Role.MANAGER),
    })


def _filter_fields(query) -> list[tuple[str, str]]:
    """The filters a queue page was asked for, to carry through a bulk action and back to the same page.

    An empty `status` is kept: it is the form's "any", which a queue URL without filters is not.
    """
    return [(name, value) for name in ImageFilter.base_filters for value in query.getlist(name)
            if value or name == "status"]


@login_required
@require_POST
def queue_bulk(request: HttpRequest, project_id: int) -> HttpResponse:
    """A bulk action (review/bulk_actions.py) on the images ticked on the queue page, or on every one matching its filters.

    A delete, and any action on "every image matching", first shows what it would touch and asks
    again: those are the selections a reviewer cannot see whole on the page.
    """
    project = project_for_member(request.user, project_id, role=Role.REVIEWER)  # what every action needs, at least
    filters = dict(_filter_fields(request.POST))
    back = reverse("review:project_queue", args=[project.pk]) + ("?" + urlencode(filters) if filters else "")
    action = request.POST.get("action", "")
    matching = request.POST.get("scope") == "matching"
    try:
        project = project_for_member(request.user, project.pk, role=required_role(action))
        if matching:
            images = selected_images(project, filters=filters)
        else:
            images = selected_images(project, image_ids=_ids(request.POST.getlist("image")))
        if (action == "delete" or matching) and request.POST.get("confirmed") != "yes":
            count, examples = images.count(), list(images.order_by("pk")[:12])
            return render(request, "review/bulk_confirm.html", {
                "project": project, "action": action, "action_label": ACTIONS[action][1],
                "count": count, "examples": examples, "more": count - len(examples), "back": back,
                "fields": [(k, v) for k in request.POST for v in request.POST.getlist(k)
                           if k not in ("csrfmiddlewaretoken", "confirmed")],
            })
        result = bulk_apply(project=project, user=request.user, action=action, images=images,
                            comment=request.POST.get("comment", ""),
                            assignee=member_by_id(project, request.POST.get("assignee")) if action == "assign" else None,
                            export_format=request.POST.get("format", "coco"), tags=request.POST.get("tags", ""))
        messages.success(request, result.message())
        if result.export_id:  # its progress and its download are on the Import & export page
            return HttpResponseRedirect(reverse("datasets:project_data", args=[project.pk]))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return HttpResponseRedirect(back)


def _ids(values: list[str]) -> list[int]:
    try:
        return [int(value) for value in values]
    except ValueError:
        raise ValidationError({"images": "Image ids are whole numbers."}) from None


@login_required
@require_GET
def project_team(request: HttpRequest, project_id: int) -> HttpResponse:
    """What each member did in the last days: for whoever leads the reviewers (reviewer role and up)."""
    project = project_for_member(request.user, project_id, role=Role.REVIEWER)
    days = request.GET.get("days", DEFAULT_WINDOW)
    try:
        since = window_start(days)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        days, since = DEFAULT_WINDOW, window_start(DEFAULT_WINDOW)
    return render(request, "review/team.html", {
        "project": project, "rows": team_activity(project=project, since=since), "days": days, "windows": WINDOWS,
    })


@login_required
@require_GET
def queue_next(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    """Open the next image for this reviewer, held for them, or go back to the queue saying why there is none.

    The most urgent unreviewed image; with `?status=reviewed`, the approval pass: the reviewed image
    that has waited longest. Images other reviewers have open are passed over, as are `after` (the one
    just saved) and the images this reviewer skipped (`?skip=<id>` adds one) until the pass runs dry.
    """
    approval = request.GET.get("status") == ReviewStatus.REVIEWED
    project = project_for_member(request.user, project_id, role=Role.REVIEWER if approval else Role.ANNOTATOR)
    status = ReviewStatus.REVIEWED if approval else ReviewStatus.UNREVIEWED
    skipped = SkipList(request, project.pk)
    if skip := as_id(request.GET.get("skip")):
        services.image_release(image_id=skip, user=request.user)
        skipped.add(skip)
    after = [after] if (after := as_id(request.GET.get("after"))) else []
    image = services.image_next_for_review(project=project, user=request.user, status=status,
                                           exclude=skipped.ids + after)
    if image is None:
        _say_why_none(request, project, status, skipped, after)
        return HttpResponseRedirect(reverse("review:project_queue", args=[project.pk]))
    return HttpResponseRedirect(reverse("review:image_editor", args=[image.pk]))


class SkipList:
    """The images a reviewer skipped in one project, kept in their session: a skip lasts until the pass
    has nothing else to offer, then the skipped images come round again."""

    LIMIT = 500  # the most recent; older skips come round again sooner

    def __init__(self, request: HttpRequest, project_id: int) -> None:
        self.session, self.key = request.session, f"review-skipped-{project_id}"
        self.ids: list[int] = list(self.session.get(self.key, []))

    def add(self, image_id: int) -> None:
        self.ids = [i for i in self.ids if i != image_id][-(self.LIMIT - 1):] + [image_id]
        self.session[self.key] = self.ids

    def clear(self) -> None:
        self.ids = []
        self.session.pop(self.key, None)


def _say_why_none(request: HttpRequest, project, status: str, skipped: SkipList, after: list[int]) -> None:
    left = Image.objects.filter(project=project, status=status).exclude(pk__in=after)
    if not left.exists():
        messages.success(request, "Nothing waits for approval: every reviewed image is approved."
                         if status == ReviewStatus.REVIEWED else "The queue is empty: every image is reviewed.")
        return
    theirs = 0
    if status == ReviewStatus.UNREVIEWED:  # the approval pass is anyone's
        theirs = left.exclude(assigned_to=None).exclude(assigned_to=request.user).count()
        left = left.filter(Q(assigned_to=None) | Q(assigned_to=request.user))
    mine = left.filter(pk__in=skipped.ids).count()
    held = left.count() - mine
    parts = ([f"{mine} you skipped (they come round again from now on)"] if mine else []) + (
        [f"{held} open in other reviewers' editors"] if held else []) + (
        [f"{theirs} assigned to other members"] if theirs else [])
    messages.info(request, f"Nothing else to open now: {' and '.join(parts)}.")
    skipped.clear()


@login_required
@require_GET
def image_editor(request: HttpRequest, image_id: int) -> HttpResponse:
    """The box editor. Everything it needs comes in the page; saving goes through the API."""
    image = object_for_member(request.user, Image.objects.select_related("project"), image_id)
    project = image.project
    # ?model_version= shows another version's predictions (the error patches link here with it).
    chosen = as_id(request.GET.get("model_version"))
    shown = (inference_selectors.model_versions(project=project).filter(pk=chosen).first() if chosen
             else None) or inference_services.active_model_version(project)
    classes = list(project.label_classes.order_by("index").values("id", "name", "colour"))
    can_approve = ROLE_RANK[image.requester_role] >= ROLE_RANK[Role.REVIEWER]
    held_by_other = not services.image_hold(image=image, user=request.user)
    services.mentions_read(image=image, user=request.user)  # "Mentions of you" counts what they have not seen
    next_url = reverse("review:queue_next", args=[project.pk])
    # Skipping in the approval pass stays in it; anywhere else it goes on to the most urgent unreviewed image.
    in_approval_pass = can_approve and image.status == ReviewStatus.REVIEWED
    return render(request, "review/editor.html", {
        "project": project,
        "image": image,
        "classes": classes,
        "model_version": shown,
        "ranking": _ranking_parts(image),
        "can_manage": image.requester_role == Role.MANAGER,
        "can_approve": can_approve,
        "held_since": image.held_until - timedelta(seconds=settings.REVIEW_HOLD_SECONDS) if held_by_other else None,
        "comments": (image.comments.select_related("author").prefetch_related("mentions__user")
                     if image.comment_count else []),
        "editor_data": {
            "image": image_detail_data(image, model_version_id=shown.pk if shown else None),
            "classes": classes,
            "csrf_token": get_token(request),
            "username": request.user.get_username(),
            "can_approve": can_approve,
            "project": {"id": project.pk, "score_threshold": project.score_threshold},
            "urls": {
                "save": reverse("api:image_boxes", args=[image.pk]),
                "status": reverse("api:image_status", args=[image.pk]),
                "comments": reverse("api:image_comments", args=[image.pk]),
                "comment": url_with_id_slot("api:comment_detail"),
                "history": reverse("api:image_box_history", args=[image.pk]),
                "next": f"{next_url}?after={image.pk}",
                "next_approval": f"{next_url}?status=reviewed&after={image.pk}",
                "skip": f"{next_url}?skip={image.pk}" + ("&status=reviewed" if in_approval_pass else ""),
            },
        },
    })


def _ranking_parts(image: Image) -> list[tuple[str, float, float]] | None:
    """Why this image sits where it does in the queue: (part, value, weight) for each part of the priority."""
    if image.uncertainty is None:
        return None
    return [(name, value or 0.0, weight) for name, value, weight in (
        ("uncertainty", image.uncertainty, RANKING_WEIGHTS["uncertainty"]),
        ("disagreement with the previous model", image.disagreement, RANKING_WEIGHTS["disagreement"]),
        ("unusual number of boxes", image.count_anomaly, RANKING_WEIGHTS["count_anomaly"]))]


@login_required
@require_POST
def image_upload(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    """Store each uploaded file that passes the checks, report each one refused, then predict the new ones.
    A video becomes an import of its frames, one a second (managers: imports are theirs)."""
    membership = member_of(request.user, project_id, role=Role.ANNOTATOR)
    project = membership.project
    files = request.FILES.getlist("files")
    if not files:
        messages.error(request, "Choose at least one image to upload.")
    added = []
    for upload in files:
        if is_video_name(upload.name):
            _video_import(request, membership, upload)
            continue
        try:
            added.append(services.image_create(project=project, data=upload.read(), filename=upload.name))
        except ValidationError as exc:
            messages.error(request, f"{services.display_name(upload.name)}: {' '.join(exc.messages)}")
    if added:
        messages.success(request, f"Added {len(added)} image{'s' if len(added) != 1 else ''}.")
        run = inference_services.inference_run_after_upload(
            project=project, image_ids=[image.pk for image in added], user=request.user)
        if run:
            messages.info(request, f"Predicting the new images with {run.model_version} (run #{run.pk}).")
    return HttpResponseRedirect(reverse("review:project_detail", args=[project.pk]))


def _video_import(request: HttpRequest, membership, upload) -> None:
    name = services.display_name(upload.name)
    if not membership.has_role(Role.MANAGER):
        messages.error(request, f"{name} is a video: a manager imports its frames on Import & export.")
        return
    try:
        job = dataset_import_start(project=membership.project, user=request.user, file=upload, name=upload.name)
    except ValidationError as exc:
        messages.error(request, f"{name}: {' '.join(exc.messages)}")
        return
    messages.info(request, f"{name} is a video: its frames, one a second, are being imported (import #{job.pk} on "
                           "Import & export, where another interval can be chosen).")


@login_required
@require_POST
def image_remove(request: HttpRequest, image_id: int) -> HttpResponseRedirect:
    """Delete an image from the editor (managers), then open the next one in the queue."""
    image = object_for_member(request.user, Image.objects.all(), image_id, role=Role.MANAGER)
    services.image_delete(image=image)
    messages.success(request, f"Deleted {image.original_name} with its boxes and predictions.")
    return HttpResponseRedirect(reverse("review:queue_next", args=[image.project_id]))


@login_required
@require_POST
def inference_start(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    project = project_for_member(request.user, project_id, role=Role.REVIEWER)
    try:
        run = inference_services.inference_run_create(
            project=project, user=request.user, scope=request.POST.get("scope", "unreviewed"))
        messages.success(request, f"Inference run #{run.pk} queued for {run.progress_total} images.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return HttpResponseRedirect(reverse("review:project_detail", args=[project.pk]))


@login_required
@require_GET
def image_file(request: HttpRequest, image_id: int) -> FileResponse:
    """Stream an image to members of its project only: media has no public URL."""
    return image_file_response(object_for_member(request.user, images_for_media(), image_id))


@login_required
@require_GET
def image_thumbnail(request: HttpRequest, image_id: int) -> FileResponse:
    """A small JPEG of an image, for the pages that show many, to members of its project only."""
    return image_thumbnail_response(object_for_member(request.user, images_for_media(), image_id))


@login_required
@require_GET
def image_region(request: HttpRequest, image_id: int) -> HttpResponse:
    """A small JPEG of `?region=left,top,right,bottom` (whole pixels; without it, the whole image) of an
    image, to members of its project only: error review's patches."""
    image = object_for_member(request.user, images_for_media(), image_id)
    parts = request.GET.get("region", f"0,0,{image.width},{image.height}").split(",")
    if len(parts) != 4 or not all(part.isascii() and part.isdigit() and len(part) <= 6 for part in parts):
        return HttpResponse("Give region=left,top,right,bottom in whole pixels.", status=400, content_type="text/plain")
    left, top, right, bottom = map(int, parts)
    if not (left < right <= image.width and top < bottom <= image.height):
        return HttpResponse(f"The region must lie inside the image ({image.width}x{image.height}) and not be empty.",
                            status=400, content_type="text/plain")
    return image_region_response(image, (left, top, right, bottom))


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """The user's e-mail address and which e-mails they get; their API token is a page of its own."""
    pending = notifications.pending_email_of(request.user)
    if request.method == "POST":
        form = AccountForm(request.POST)
        if form.is_valid():
            try:
                waiting = notifications.account_save(user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, "Saved." + (
                    f" A link to confirm {form.cleaned_data['email']} was e-mailed there; until it is opened, "
                    f"e-mails go to {request.user.email or 'no address'}." if waiting else ""))
                return HttpResponseRedirect(reverse("review:account"))
    else:
        form = AccountForm(initial={"email": pending or request.user.email,
                                    **notifications.notification_settings_of(request.user)})
    return render(request, "review/account.html", {"form": form, "email_on": settings.EMAIL_NOTIFICATIONS,
                                                   "pending": pending})


@login_required
@require_GET
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link e-mailed to a new address: opening it (logged in) makes the address the account's."""
    try:
        email = notifications.email_confirm(user=request.user, token=token)
    except ValidationError as exc:
        return render(request, "registration/account_message.html", {
            "title": "The address was not changed", "message": " ".join(exc.messages),
            "link": reverse("review:account"), "link_text": "Your account"}, status=400)
    messages.success(request, f"Confirmed: e-mails go to {email} now.")
    return HttpResponseRedirect(reverse("review:account"))


@login_required
def api_token(request: HttpRequest) -> HttpResponse:
    """Make, replace or revoke the caller's API token. The key is shown once, right after it is made."""
    if request.method == "POST":
        if request.POST.get("action") == "create":
            key = api_token_create(user=request.user)
            return render(request, "review/api_token.html", {"token": request.user.api_token, "new_key": key})
        api_token_revoke(user=request.user)
        messages.info(request, "Your API token was revoked; scripts using it now get 401.")
        return HttpResponseRedirect(reverse("review:api_token"))
    return render(request, "review/api_token.html", {"token": ApiToken.objects.filter(user=request.user).first()})
