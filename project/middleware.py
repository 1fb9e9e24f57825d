"""Refuse request bodies over MAX_REQUEST_BYTES before any view (or Django's upload handlers) reads them."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class RequestSizeLimitMiddleware:
    """413 for a declared body larger than the biggest thing we accept (a zip of MAX_ARCHIVE_BYTES).

    Django caps form fields (DATA_UPLOAD_MAX_MEMORY_SIZE) but streams files to disk without a total
    limit; this keeps a client from filling the disk. Put a matching limit in the reverse proxy too.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BYTES:
            detail = (f"The request is {length / 1e6:.0f} MB; the limit is {settings.MAX_REQUEST_BYTES / 1e6:.0f} MB. "
                      "Split the upload into smaller archives.")
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": detail}, status=413)
            return HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
