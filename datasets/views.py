"""The import and export page (managers): start jobs, follow them live, download finished exports."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from datasets import services, watches
from datasets.exports import ExportSpec
from datasets.models import BucketWatch, DatasetExport, DatasetImport, ExportFormat, ExportSource, ImportFormat
from inference.models import ModelVersion
from project.converters import as_id
from review.access import object_for_member, project_for_member
from review.forms import refusal_reported
from review.models import Role
from training.models import DatasetSnapshot


@login_required
@require_GET
def project_data(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    return render(request, "datasets/project_data.html", {
        "project": project,
        "imports": DatasetImport.objects.filter(project=project).order_by("-created_at")[:10],
        "exports": DatasetExport.objects.filter(project=project).select_related("model_version")
        .order_by("-created_at")[:10],
        "import_formats": ImportFormat.choices,
        "import_buckets": settings.IMPORT_BUCKETS,
        "watches": BucketWatch.objects.filter(project=project).select_related("last_import").order_by("source_url"),
        "export_formats": ExportFormat.choices,
        "export_sources": ExportSource.choices,
        "model_versions": ModelVersion.objects.filter(project=project).order_by("-number"),
        "snapshots": DatasetSnapshot.objects.filter(project=project).order_by("-created_at")[:20],
    })


def _frame_every(request: HttpRequest) -> float:
    try:
        return float(request.POST.get("frame_every") or 1)
    except ValueError:
        return -1.0  # refused by the service, with the range


def _back(project_id: int) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("datasets:project_data", args=[project_id]))


@login_required
@require_POST
def import_start(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    upload = request.FILES.get("file")
    source_url = request.POST.get("source_url", "").strip()
    if upload is None and not source_url:
        messages.error(request, "Choose a .zip, a COCO .json file or a video to import, or name a bucket prefix.")
        return _back(project.pk)
    frame_every = _frame_every(request)
    try:
        job = services.dataset_import_start(
            project=project, user=request.user, file=upload, name=upload.name if upload else "",
            source_url=source_url, format=request.POST.get("format", "auto"),
            partial=request.POST.get("partial") == "on", model_name=request.POST.get("model_name", ""),
            frame_every=frame_every, tags=request.POST.get("tags", ""),
            tag_folders=request.POST.get("tag_folders") == "on",
            skip_look_alikes=request.POST.get("skip_look_alikes") == "on")
        messages.success(request, f"Import #{job.pk} of {job.original_name} queued.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(project.pk)


@login_required
@require_POST
def export_start(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    post = request.POST
    try:
        min_score = float(post.get("min_score") or 0)
    except ValueError:
        min_score = -1.0
    version_id, snapshot_id = post.get("model_version", ""), post.get("snapshot", "")
    spec = ExportSpec(
        format=post.get("format", ""), source=post.get("source", ""), include_images=post.get("include_images") == "on",
        min_score=min_score,
        model_version=ModelVersion.objects.filter(project=project, pk=pk).first() if (pk := as_id(version_id))
        else None,
        snapshot=DatasetSnapshot.objects.filter(project=project, pk=pk).first() if (pk := as_id(snapshot_id))
        else None,
    )
    try:
        job = services.dataset_export_start(project=project, user=request.user, spec=spec)
        messages.success(request, f"Export #{job.pk} queued.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(project.pk)


@login_required
@require_POST
def job_cancel(request: HttpRequest, kind: str, job_id: int) -> HttpResponseRedirect:
    model = {"import": DatasetImport, "export": DatasetExport}.get(kind)
    if model is None:
        raise Http404("No such job.")
    job = get_object_or_404(model, pk=job_id)
    project_for_member(request.user, job.project_id, role=Role.MANAGER)
    try:
        services.dataset_job_cancel(job=job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(job.project_id)


@login_required
@require_POST
def bucket_watch_add(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    """Import a prefix's new objects on a schedule, the first time now."""
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    try:
        every = int(request.POST.get("every_minutes", "60"))
    except ValueError:
        every = -1
    with refusal_reported(request, "Not watched"):
        watch = watches.bucket_watch_create(project=project, user=request.user, every_minutes=every,
                                            source_url=request.POST.get("source_url", ""),
                                            format=request.POST.get("format", "auto"),
                                            frame_every=_frame_every(request), tags=request.POST.get("tags", ""),
                                            tag_folders=request.POST.get("tag_folders") == "on",
                                            skip_look_alikes=request.POST.get("skip_look_alikes") == "on")
        started = watches.bucket_watches_run(watch_ids=[watch.pk])
        messages.success(request, f"Watching {watch.source_url}: its new objects are imported every "
                                  f"{watch.every_minutes} minutes" + (f", the first time now (import #{started[0]})."
                                                                      if started else "."))
    return _back(project.pk)


@login_required
@require_POST
def bucket_watch_remove(request: HttpRequest, watch_id: int) -> HttpResponseRedirect:
    watch = object_for_member(request.user, BucketWatch.objects.all(), watch_id, role=Role.MANAGER)
    watches.bucket_watch_delete(watch=watch)
    messages.info(request, f"No longer watching {watch.source_url}.")
    return _back(watch.project_id)
