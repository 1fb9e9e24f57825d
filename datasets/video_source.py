"""Frames of a video as the images of an import: a camera's clip of the hour the model got wrong.

A video upload is an import source like a zip (datasets/imports.py): its "files" are one frame every
`every` seconds, named `<clip>_<seconds>s.jpg`, and each is read as a JPEG when the import gets to it,
so nothing holds more than one frame in memory. The import then checks, stores and deduplicates them
as it does any image: a frozen camera's identical frames are reported as duplicates, not added twice.
Decoding is PyAV's (FFmpeg): whatever FFmpeg reads (H.264, H.265, VP9, MJPEG ... in MP4, MOV, MKV,
AVI or WebM).
"""
from __future__ import annotations

import io
import math
import posixpath
from typing import BinaryIO

import av
import PIL.Image
from django.conf import settings

from review.archives import ArchiveRejected

FRAME_QUALITY = 92  # the stored frame is the only copy: well above a thumbnail's 85
SEEK_AHEAD_SECONDS = 3.0


# A phone filming upright stores sideways frames and a display rotation, as a camera's JPEG has its
# EXIF orientation; images are stored upright (review.services.image_prepare), so frames are too.
_TURNS = {90: PIL.Image.Transpose.ROTATE_90, 180: PIL.Image.Transpose.ROTATE_180,
          270: PIL.Image.Transpose.ROTATE_270}


def upright(frame: av.VideoFrame) -> PIL.Image.Image:
    """The frame as a player shows it: turned by its display rotation (counterclockwise, in degrees)."""
    picture = frame.to_image()
    turn = _TURNS.get(round(frame.rotation or 0) % 360)
    return picture.transpose(turn) if turn is not None else picture


class VideoSource:
    """The frames of a video file, one every `every` seconds from its start, as an import's entries."""

    is_archive = False
    refused = ()

    def __init__(self, file: BinaryIO, *, name: str, every: float) -> None:
        try:
            self._container = av.open(file, mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:  # OSError: the file's own read failed (a bucket's)
            raise ArchiveRejected(f"This is not a video FFmpeg can read ({exc}).") from None
        try:
            self._stream = next(iter(self._container.streams.video))
        except StopIteration:
            self._container.close()
            raise ArchiveRejected("The file holds no video stream.") from None
        width, height = self._stream.codec_context.width, self._stream.codec_context.height
        if width * height > settings.MAX_IMAGE_PIXELS:  # refused before a frame that size is decoded
            self._container.close()
            raise ArchiveRejected(f"The video's frames are {width}x{height} pixels; the limit is "
                                  f"{settings.MAX_IMAGE_PIXELS:,} pixels an image.")
        duration = self._duration()
        if duration is None:
            self._container.close()
            raise ArchiveRejected("The video does not say how long it is; convert it to MP4 and upload it again.")
        count = max(1, math.ceil(duration / every))
        if count > settings.MAX_ARCHIVE_ENTRIES:
            self._container.close()
            raise ArchiveRejected(f"One frame every {every:g} s of this {duration:.0f} s video is {count} images; the "
                                  f"limit is {settings.MAX_ARCHIVE_ENTRIES}. Take frames less often.")
        stem = posixpath.splitext(posixpath.basename(name.replace("\\", "/")))[0] or "video"
        digits = len(f"{duration:.2f}")  # names sort in time order
        self._times = {f"{stem}_{n * every:0{digits}.2f}s.jpg": n * every for n in range(count)}
        self.names = list(self._times)
        self._frames = None    # the decoder, going forward
        self._last = None      # the last frame it gave
        self._position = math.inf

    def _duration(self) -> float | None:
        if self._stream.duration and self._stream.time_base:
            return float(self._stream.duration * self._stream.time_base)
        if self._container.duration:
            return self._container.duration / av.time_base
        return None

    def will_read(self, names: list[str]) -> None:
        """Entries are read in time order; the decoder only goes forward (see read)."""

    def read(self, name: str) -> bytes:
        """The frame shown at the entry's time, as a JPEG: the first one at or after it (the last one
        when the video ends sooner than its header said)."""
        when = self._times[name]
        # The first read, one out of order, or one far ahead: start again from the keyframe before it
        # rather than decode every frame up to it (a camera sends a keyframe every 1 to 4 s).
        half_frame = 0.5 / float(self._stream.average_rate or 30)
        try:
            if when < self._position or when - self._position > SEEK_AHEAD_SECONDS:
                self._container.seek(int(when / float(self._stream.time_base)) if self._stream.time_base else 0,
                                     stream=self._stream, backward=True, any_frame=False)
                self._frames, self._last = self._container.decode(self._stream), None
            shown = self._last is not None and (self._last.time is None or self._last.time >= when - half_frame)
            for frame in () if shown else self._frames:  # frames taken more often than the video has them: the same one
                self._last = frame
                if frame.time is None or frame.time >= when - half_frame:
                    break
        except (av.FFmpegError, OSError) as exc:
            raise ArchiveRejected(f"The video could not be decoded at {when:.2f} s ({exc}).") from None
        if self._last is None:
            raise ArchiveRejected(f"The video has no frame at {when:.2f} s.")
        self._position = when
        out = io.BytesIO()
        upright(self._last).save(out, "JPEG", quality=FRAME_QUALITY)
        return out.getvalue()

    def close(self) -> None:
        self._container.close()
