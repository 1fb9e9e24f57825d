"""A stored image streamed to a member of its project: the editor and queue pages and the API's
`images/{id}/file/` answer the same way. Media has no public URL (docs/security.md)."""
from __future__ import annotations

import mimetypes

from django.core.files.storage import default_storage
from django.http import FileResponse

from review.models import Image
from review.thumbnails import image_thumbnail_name


def image_file_response(image: Image) -> FileResponse:
    """The stored image: upright, metadata stripped, with its content type and never sniffed."""
    content_type = mimetypes.guess_type(image.file.name)[0] or "application/octet-stream"
    response = FileResponse(image.file.open("rb"), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def image_thumbnail_response(image: Image) -> FileResponse:
    """A small JPEG of the image for pages that show many (review/thumbnails.py); the stored image itself
    when it is small already."""
    name = image_thumbnail_name(image)
    if name is None:
        return image_file_response(image)
    response = FileResponse(default_storage.open(name, "rb"), content_type="image/jpeg")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
