"""Browser pages of error review: a version's mistakes as a grid of image patches, the second-look queue,
and the buttons that rank the queue again at the review threshold or stop that."""
from __future__ import annotations

import math
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inference import selectors
from inference.models import (
    BoxOutcome, ModelExport, ModelVersion, ModelVersionDeletion, OutcomeKind, RerankRun, SuspectedError, SuspectKind,
    SuspectStatus,
)
from inference.model_exports import model_export_cancel, model_export_start
from inference.services import rerank_run_cancel, rerank_run_create
from inference.suspects import suspect_dismiss, suspect_rates
from inference.version_deletion import model_version_deletion_cancel, model_version_deletion_start
from project.converters import as_id
from review.access import object_for_member, project_for_member
from review.forms import refusal_reported
from review.models import Role
from review.tags import project_tags

PATCHES_PER_PAGE = 60
TILE_PX = 160


@login_required
@require_GET
def model_version_errors(request: HttpRequest, version_id: int) -> HttpResponse:
    """False positives, misses, wrong classes and poor localisations; filter by kind and class; each opens the editor."""
    version = object_for_member(request.user, ModelVersion.objects.select_related("project"), version_id)
    project = version.project
    kind = request.GET.get("kind") if request.GET.get("kind") in OutcomeKind.values else None
    class_id = as_id(request.GET.get("class"))
    tags = project_tags(project)
    tag = request.GET.get("tag") if request.GET.get("tag") in tags else None
    page = Paginator(selectors.box_outcomes(version=version, kind=kind, label_class_id=class_id, tag=tag),
                     PATCHES_PER_PAGE).get_page(request.GET.get("page"))
    chosen = {"kind": kind, "class": class_id, "tag": tag}

    def link(**change) -> str:
        """This page's query with `change` made (None drops a filter); back to page 1 unless one is named."""
        return "?" + urlencode({k: v for k, v in {**chosen, **change}.items() if v is not None})

    kinds = [(value, label) for value, label in OutcomeKind.choices if value != OutcomeKind.TRUE_POSITIVE]
    classes = project.label_classes.order_by("index")
    return render(request, "inference/errors.html", {
        "project": project, "version": version, "kind": kind, "class_id": class_id, "tag": tag, "page": page,
        "kinds": kinds, "counts": selectors.box_outcome_counts(version=version, tag=tag),
        "kind_links": [(None, "All errors", link(kind=None))] + [(v, label, link(kind=v)) for v, label in kinds],
        "class_links": [(None, "every class", link(**{"class": None}))]
                       + [(c.id, c.name, link(**{"class": c.id})) for c in classes],
        "tag_links": [(None, "every tag", link(tag=None))] + [(t, t, link(tag=t)) for t in tags] if tags else [],
        "previous_url": link(page=page.previous_page_number()) if page.has_previous() else None,
        "next_url": link(page=page.next_page_number()) if page.has_next() else None,
        "patches": [_patch(outcome, version) for outcome in page],
    })


@login_required
@require_GET
def second_look(request: HttpRequest, project_id: int) -> HttpResponse:
    """Reviewed images whose labels the newest model confidently disputes; how often each kind was right."""
    project = project_for_member(request.user, project_id, role=Role.REVIEWER)
    kind = request.GET.get("kind") if request.GET.get("kind") in SuspectKind.values else None
    suspects = (SuspectedError.objects.filter(image__project=project, status=SuspectStatus.OPEN)
                .select_related("image", "label_class", "model_version")
                .order_by(F("score").desc(nulls_last=True), "id"))
    if kind:
        suspects = suspects.filter(kind=kind)
    page = Paginator(suspects, PATCHES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "inference/second_look.html", {
        "project": project, "kind": kind, "page": page, "kinds": SuspectKind.choices,
        "rates": suspect_rates(project_id=project.pk),
        "patches": [_patch(suspect, suspect.model_version) for suspect in page],
    })


@login_required
@require_POST
def suspect_dismiss_view(request: HttpRequest, suspect_id: int) -> HttpResponseRedirect:
    suspect = get_object_or_404(SuspectedError.objects.select_related("image"), pk=suspect_id)
    project_for_member(request.user, suspect.image.project_id, role=Role.REVIEWER)
    suspect_dismiss(suspect=suspect, user=request.user)
    messages.success(request, "Dismissed: the labels were right.")
    return HttpResponseRedirect(reverse("inference:second_look", args=[suspect.image.project_id]))


@login_required
@require_POST
def rerank_start(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    """Rank the queue again at the review threshold: after a cancelled or failed rerank, say."""
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    run = rerank_run_create(project=project, user=request.user)
    messages.success(request, f"{run} started: the project page shows how far it is.")
    return HttpResponseRedirect(reverse("review:project_detail", args=[project.pk]))


@login_required
@require_POST
def rerank_cancel(request: HttpRequest, rerank_id: int) -> HttpResponseRedirect:
    run = object_for_member(request.user, RerankRun.objects.all(), rerank_id, role=Role.MANAGER)
    try:
        rerank_run_cancel(run=run)
        messages.info(request, f"{run} is stopping: the images it has not reached keep the old threshold's ranking "
                               "until the queue is ranked again.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return HttpResponseRedirect(reverse("review:project_detail", args=[run.project_id]))


@login_required
@require_POST
def model_version_delete(request: HttpRequest, version_id: int) -> HttpResponseRedirect:
    version = object_for_member(request.user, ModelVersion.objects.all(), version_id, role=Role.MANAGER)
    with refusal_reported(request, f"{version} was not deleted"):
        deletion = model_version_deletion_start(version=version, user=request.user)
        messages.success(request, f"Deleting {version} with its {deletion.progress_total} predictions: the models page "
                         "shows how far it is, and Cancel there keeps the version with what is left.")
    return HttpResponseRedirect(reverse("training:project_models", args=[version.project_id]))


@login_required
@require_POST
def model_version_deletion_cancel_view(request: HttpRequest, version_deletion_id: int) -> HttpResponseRedirect:
    deletion = object_for_member(request.user, ModelVersionDeletion.objects.all(), version_deletion_id,
                                 role=Role.MANAGER)
    with refusal_reported(request, f"{deletion} was not cancelled"):
        model_version_deletion_cancel(deletion=deletion)
        messages.info(request, f"{deletion} cancelled: v{deletion.version_number} stays, with the predictions not "
                               "deleted yet.")
    return HttpResponseRedirect(reverse("training:project_models", args=[deletion.project_id]))


@login_required
@require_POST
def model_export_start_view(request: HttpRequest, version_id: int) -> HttpResponseRedirect:
    version = object_for_member(request.user, ModelVersion.objects.all(), version_id, role=Role.MANAGER)
    with refusal_reported(request, f"{version} was not exported"):
        export, created = model_export_start(version=version, user=request.user)
        messages.success(request, f"Exporting {version} as ONNX: a worker writes the file and checks it against the "
                         "model on some of the project's images; it appears under ONNX files below." if created else
                         f"{version} is already exported as ONNX: {export.status} (ONNX files, below).")
    return HttpResponseRedirect(reverse("training:project_models", args=[version.project_id]) + "#model-exports")


@login_required
@require_POST
def model_export_cancel_view(request: HttpRequest, model_export_id: int) -> HttpResponseRedirect:
    export = object_for_member(request.user, ModelExport.objects.all(), model_export_id, role=Role.MANAGER)
    with refusal_reported(request, f"{export} was not cancelled"):
        model_export_cancel(export=export)
        messages.info(request, f"{export} cancelled.")
    return HttpResponseRedirect(reverse("training:project_models", args=[export.project_id]) + "#model-exports")


def patch_region(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The whole pixels a patch shows of a box (x, y, w, h) in a width x height image: the box and some
    context around it, inside the image. Left, top, right, bottom."""
    margin = max(16.0, 0.5 * max(w, h))
    left = min(max(0, math.floor(x - margin)), width - 1)
    top = min(max(0, math.floor(y - margin)), height - 1)
    right = max(left + 1, min(width, math.ceil(x + w + margin)))
    bottom = max(top + 1, min(height, math.ceil(y + h + margin)))
    return left, top, right, bottom


def _patch(outcome: BoxOutcome | SuspectedError, version: ModelVersion) -> dict:
    """The box with some context around it: that region of the image, cut out by the server
    (review:image_region, a few kB), fitted into a square tile with CSS."""
    image = outcome.image
    left, top, right, bottom = patch_region(outcome.x, outcome.y, outcome.w, outcome.h, image.width, image.height)
    scale = TILE_PX / max(right - left, bottom - top)
    focus = f"{outcome.x:.1f},{outcome.y:.1f},{outcome.w:.1f},{outcome.h:.1f}"
    return {
        "outcome": outcome,
        "image_url": f"{reverse('review:image_region', args=[image.pk])}?region={left},{top},{right},{bottom}",
        "editor_url": f"{reverse('review:image_editor', args=[image.pk])}?model_version={version.pk}&focus={focus}",
        "background": {"w": (right - left) * scale, "h": (bottom - top) * scale, "x": 0, "y": 0},
        "box": {"x": (outcome.x - left) * scale, "y": (outcome.y - top) * scale, "w": outcome.w * scale,
                "h": outcome.h * scale},
        "truth_class": outcome.annotation.label_class if getattr(outcome, "annotation_id", None) else None,
    }
