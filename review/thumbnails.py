"""Thumbnails: the pages that show many images at once (the queue, the project page, a comparison of
two models) load a small JPEG of each instead of the stored image. A camera's 1920x1080 frame is a few
hundred kB and a 12-megapixel one several MB, and a queue page shows 48 of them.

A thumbnail is made the first time one is asked for, so uploads and imports stay as fast as they were
and images stored before thumbnails existed get theirs the same way. It is stored beside the images
and named on the image's row: deleting the image deletes it, and storage_orphans counts it as in use.

Error review's patches show a box and its surroundings: `region_bytes` cuts that region out, so a page
of 60 patches loads 60 small JPEGs, not 60 whole images. Regions are not stored (the browser keeps them).
"""
from __future__ import annotations

import io
import logging
import math

import PIL.Image
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from project.storage import storage_read
from review.models import Image, image_thumbnail_path

logger = logging.getLogger(__name__)

# Pixels on the longer side: a card is about 180 CSS pixels wide, twice that on a high-density screen.
THUMBNAIL_SIDE = 384
THUMBNAIL_QUALITY = 85
# Pixels on the longer side of a region: error review's tiles are 160 CSS pixels, twice that on a high-density screen.
REGION_SIDE = 320


def thumbnail_bytes(data: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG of the image in `data` that fits in side x side, its proportions kept."""
    with PIL.Image.open(io.BytesIO(data)) as picture:
        picture.draft(None, (side, side))  # a JPEG decodes at 1/2 to 1/8 scale: a 12-megapixel frame in milliseconds
        small = picture.convert("RGB")
    small.thumbnail((side, side), PIL.Image.Resampling.BICUBIC)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def region_bytes(data: bytes, region: tuple[int, int, int, int], side: int = REGION_SIDE) -> bytes:
    """A JPEG of `region` (left, top, right, bottom in the image's pixels, inside it) of the image in
    `data`, its longer side at most `side` (never enlarged)."""
    left, top, right, bottom = region
    with PIL.Image.open(io.BytesIO(data)) as picture:
        full_width, full_height = picture.size
        shrink = min(1.0, side / max(right - left, bottom - top))
        # A JPEG decodes at 1/2 to 1/8 scale when the region, shrunk, still has enough pixels that way.
        picture.draft(None, (math.ceil(full_width * shrink), math.ceil(full_height * shrink)))
        x_scale, y_scale = picture.size[0] / full_width, picture.size[1] / full_height
        cut = picture.convert("RGB").crop((math.floor(left * x_scale), math.floor(top * y_scale),
                                           math.ceil(right * x_scale), math.ceil(bottom * y_scale)))
    cut.thumbnail((side, side), PIL.Image.Resampling.BICUBIC)
    out = io.BytesIO()
    cut.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def image_thumbnail_name(image: Image) -> str | None:
    """The stored name of `image`'s thumbnail, made now if it has none yet; None when the image is small
    enough to be its own thumbnail or cannot be read (the caller shows the stored image then)."""
    if max(image.width, image.height) <= THUMBNAIL_SIDE:
        return None
    if image.thumbnail:
        return image.thumbnail.name
    try:
        data = thumbnail_bytes(storage_read(image.file.name))
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as exc:
        logger.warning("no thumbnail for image %s: %s", image.pk, exc)
        return None
    name = default_storage.save(image_thumbnail_path(image, "thumbnail.jpg"), ContentFile(data))
    if Image.objects.filter(pk=image.pk, thumbnail="").update(thumbnail=name):
        image.thumbnail = name
        return name
    # Another request made one first, or the image was deleted meanwhile: keep theirs, drop ours.
    default_storage.delete(name)
    return Image.objects.filter(pk=image.pk).values_list("thumbnail", flat=True).first() or None


def image_thumbnail_open(image: Image) -> File | None:
    """`image`'s thumbnail opened for reading, made first if need be; None: show the stored image."""
    name = image_thumbnail_name(image)
    if name is None:
        return None
    try:
        return default_storage.open(name, "rb")  # a missing file raises here, on disk and in a bucket
    except FileNotFoundError:
        # Deleted from the storage by hand (thumbnails are only a cache): forget it and make it again.
        Image.objects.filter(pk=image.pk, thumbnail=name).update(thumbnail="")
        image.thumbnail = ""
        name = image_thumbnail_name(image)
        return default_storage.open(name, "rb") if name else None
