"""Frames of a video as the images of an import: a camera's clip of the hour the model got wrong.

A video upload is an import source like a zip (datasets/imports.py): its "files" are one frame every
`every` seconds, named `<clip>_<seconds>s.jpg`, and each is read as a JPEG when the import gets to it,
so nothing holds more than one frame in memory. The import then checks, stores and deduplicates them
as it does any image: a frozen camera's identical frames are reported as duplicates, not added twice.
Decoding is PyAV's (FFmpeg): whatever FFmpeg reads (H.264, H.265, VP9, MJPEG ... in MP4, MOV, MKV,
AVI or WebM).

The videos among other files (a zip's entries, the objects under a bucket prefix) give their frames
as entries beside them through VideoFrames: `cam1/clip_12.00s.jpg` for `cam1/clip.mp4`.
"""
from __future__ import annotations

import contextlib
import io
import math
import posixpath
from collections.abc import Callable, Container
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

    def __init__(self, file: BinaryIO, *, name: str, every: float, close_file: bool = False) -> None:
        self._file = file if close_file else None  # closed with the source: a stream opened for it alone
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
        if self._file is not None:
            self._file.close()


class VideoFrames:
    """The frames of the videos among an import's files, as entries beside them: `cam1/clip_12.00s.jpg`
    for `cam1/clip.mp4`, one every `every` seconds. Each video is opened (`open_file(name)`: a seekable
    file) once to name its frames, its header read and no frame decoded, and again when the import reads
    them; the import reads entries in name order, so one video's frames in a row, one video open at a time."""

    def __init__(self, open_file: Callable[[str], BinaryIO], *, every: float) -> None:
        self._open_file = open_file
        self.every = every
        self.frames: dict[str, tuple[str, str]] = {}  # frame entry -> (its video, VideoSource's name for it)
        self.refused: list[tuple[str, str]] = []      # (video, why): videos that give no frames
        self._open: tuple[str, VideoSource] | None = None  # the video whose frames are being read

    def add(self, video: str, *, taken: Container[str]) -> None:
        """Name `video`'s frames, or refuse it with the reason: unreadable, or a frame named like one of
        the `taken` names (the other files) or another video's frame."""
        try:
            with contextlib.closing(self._source(video)) as source:
                frames = {posixpath.join(posixpath.dirname(video), frame): (video, frame) for frame in source.names}
        except ArchiveRejected as exc:
            self.refused.append((video, str(exc)))
            return
        if clash := next((name for name in frames if name in taken or name in self.frames), None):
            self.refused.append((video, f"Its frames would be named like {clash}, a name another file or video's "
                                        "frame has: rename one of them."))
            return
        self.frames.update(frames)

    def video_of(self, name: str) -> str | None:
        """The video a frame entry comes from; None for any other name."""
        return self.frames[name][0] if name in self.frames else None

    def read(self, name: str) -> bytes:
        video, frame = self.frames[name]
        if self._open is None or self._open[0] != video:
            self.close()
            self._open = (video, self._source(video))
        return self._open[1].read(frame)

    def _source(self, video: str) -> VideoSource:
        file = self._open_file(video)
        try:
            return VideoSource(file, name=video, every=self.every, close_file=True)
        except BaseException:
            file.close()
            raise

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

