"""Check and normalise uploaded image bytes before anything is stored. No Django models here.

Refused: formats outside the allow-list (so SVG, HTML and polyglots never pass), decompression bombs
(pixel count checked from the header, before decoding), truncated or corrupt files. Accepted images
are turned upright (EXIF orientation applied), 16-bit grey ones scaled to 8 bits, and re-encoded, which
also drops EXIF/GPS metadata.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from review.look_alikes import look_cells

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


class ImageRejected(ValueError):
    """The bytes are not an image we accept; the message says why in a user's words."""


@dataclass(frozen=True)
class NormalisedImage:
    content: bytes        # what is stored: upright, metadata stripped
    extension: str        # of the stored content
    width: int            # after EXIF orientation
    height: int
    content_hash: str     # SHA-256 of the uploaded bytes, the duplicate key
    look: bytes = b""     # grey cells of the upright picture (review/look_alikes.py)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_image(data: bytes, *, max_bytes: int, max_pixels: int) -> NormalisedImage:
    """Validate uploaded bytes and return the upright, metadata-free image to store."""
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            probe = PILImage.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except UnidentifiedImageError:
        raise ImageRejected(
            "The file is not an image in an accepted format (JPEG, PNG, WebP, BMP, TIFF)."
        ) from None
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise ImageRejected("The image has too many pixels to decode safely.") from None
    width, height = probe.size
    if width * height > max_pixels:
        raise ImageRejected(
            f"The image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels."
        )
    source_format = probe.format
    try:
        probe.load()  # decodes every byte: truncated files fail here
        upright = _eight_bit(ImageOps.exif_transpose(probe))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"The image is truncated or corrupt ({exc}).") from None
    return NormalisedImage(
        content=_encode(upright, source_format),
        extension="jpg" if source_format == "JPEG" else "png",
        width=upright.width,
        height=upright.height,
        content_hash=content_hash(data),
        look=look_cells(upright),
    )


def _eight_bit(image: PILImage.Image) -> PILImage.Image:
    """A 16-bit grey image (thermal and industrial cameras; Pillow's I;16 and I modes) scaled to 8 bits
    the way a browser shows it, 0-65535 onto 0-255. Pillow's own conversion clips every value above
    255, which turns a 16-bit frame almost white. The scale is fixed, not stretched per image, so
    frames of one camera stay comparable, as a detector needs."""
    if image.mode != "I" and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image).astype(np.float32)
    return PILImage.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")


def _encode(image: PILImage.Image, source_format: str) -> bytes:
    """Re-encode without metadata: JPEG stays JPEG (high quality), everything else becomes PNG."""
    out = io.BytesIO()
    if source_format == "JPEG":
        image.convert("RGB").save(out, format="JPEG", quality=95)
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image.save(out, format="PNG")
    return out.getvalue()


def decode_rgb(data: bytes) -> PILImage.Image:
    """Open stored image bytes as upright RGB (stored files are already upright; transposing is a no-op)."""
    image = PILImage.open(io.BytesIO(data))
    image.load()
    return ImageOps.exif_transpose(image).convert("RGB")
