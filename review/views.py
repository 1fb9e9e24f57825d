"""Browser pages of the review app. Thin: access check, one selector or service, one template."""
from __future__ import annotations

import mimetypes

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from review import selectors
from review.access import project_for_member
from review.models import Image, ReviewStatus

IMAGES_PER_PAGE = 48


@login_required
@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    projects = selectors.project_list_for_user(request.user)
    return render(request, "review/project_list.html", {"projects": projects})


@login_required
@require_GET
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_member(request.user, project_id)
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
        "label_classes": project.label_classes.all(),
    })


@login_required
@require_GET
def image_file(request: HttpRequest, image_id: int) -> FileResponse:
    """Stream an image to members of its project only: media has no public URL."""
    image = get_object_or_404(Image.objects.only("id", "project_id", "file"), pk=image_id)
    project_for_member(request.user, image.project_id)
    content_type = mimetypes.guess_type(image.file.name)[0] or "application/octet-stream"
    response = FileResponse(image.file.open("rb"), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
