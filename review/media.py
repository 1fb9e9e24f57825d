"""A stored image streamed to a member of its project: the editor and queue pages and the API's
`images/{id}/file/` answer the same way. Media has no public URL (docs/security.md)."""
from __future__ import annotations

import logging
import mimetypes

import PIL.Image

from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse

from project.storage import storage_read
from review.models import Image
from review.thumbnails import image_thumbnail_open, region_bytes

logger = logging.getLogger(__name__)


def images_for_media() -> QuerySet[Image]:
    """Images with only the columns these responses read (a row's other columns can be large)."""
    return Image.objects.only("id", "project_id", "file", "thumbnail", "width", "height", "content_hash")


def image_file_response(image: Image) -> FileResponse:
    """The stored image: upright, metadata stripped, with its content type and never sniffed."""
    content_type = mimetypes.guess_type(image.file.name)[0] or "application/octet-stream"
    return _private(FileResponse(image.file.open("rb"), content_type=content_type))


def image_thumbnail_response(image: Image) -> FileResponse:
    """A small JPEG of the image for pages that show many (review/thumbnails.py); the stored image itself
    when it is small already."""
    thumbnail = image_thumbnail_open(image)
    if thumbnail is None:
        return image_file_response(image)
    return _private(FileResponse(thumbnail, content_type="image/jpeg"))


def image_region_response(image: Image, region: tuple[int, int, int, int]) -> HttpResponse:
    """A small JPEG of a region of the image (left, top, right, bottom, checked to lie inside it)."""
    try:
        data = region_bytes(storage_read(image.file.name), region)
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as exc:  # changed in the storage since its upload
        logger.warning("no region of image %s: %s", image.pk, exc)
        return HttpResponse("The stored image cannot be read.", status=404, content_type="text/plain")
    return _private(HttpResponse(data, content_type="image/jpeg"))


def _private(response: HttpResponse) -> HttpResponse:
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
