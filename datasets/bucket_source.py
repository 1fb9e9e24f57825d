"""Import straight from an S3-compatible bucket: the objects under a prefix, read as an archive's entries.

Deployed cameras often drop their frames into a bucket. An import of `s3://bucket/prefix/` lists
the objects under the prefix and reads them one by one, with the same checks as an uploaded zip
(images, and COCO, YOLO or Pascal VOC labels beside them, paired by the same rules). Importing the
same prefix again reads only the objects that are new or changed since (BucketObject remembers each
one's ETag), and an image already in the project is reported as a duplicate and left as it is.

A video object (a camera's clip) gives one frame every `frame_every` seconds, named like an uploaded
video's (`cam1/clip_12.00s.jpg` for `cam1/clip.mp4`, datasets/video_source.py). It is read in ranges,
never fetched whole: its header to learn how many frames it gives, then the parts holding those
frames, so a sparse frame interval reads a fraction of an hour-long clip.

Only prefixes the operator lists in IMPORT_BUCKETS can be read: the workers' credentials may
reach buckets (the media bucket, say) that no manager should be able to copy into their project.
Credentials, region and endpoint are boto3's own AWS_* variables or an instance role, as for
MEDIA_STORAGE.
"""
from __future__ import annotations

import io
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.core.exceptions import ValidationError

from datasets.formats import is_image_name, is_video_name
from datasets.models import BucketObject
from datasets.video_source import VideoFrames
from project.env import BUCKET_NAME
from review.archives import ArchiveRejected
from review.models import Project

# Objects fetched ahead of the one being checked, in threads: on a real bucket a GET's round trip
# (tens of milliseconds), not the bandwidth, bounds a sequential import. Bounds memory too: at most
# this many objects (each under MAX_IMAGE_BYTES) wait in memory.
PREFETCH = 8
# A video is read in blocks of VIDEO_BLOCK_BYTES, kept in a cache of VIDEO_CACHE_BLOCKS. Reading on
# from the last block fetched doubles how many the next GET takes, up to VIDEO_READ_AHEAD_BLOCKS (a
# GET's round trip, not the bandwidth, bounds small ones); a jump (a seek to a frame further on)
# starts again from one block, so sparse frames cost about a block or two of the stream each.
VIDEO_BLOCK_BYTES = 256 * 1024
VIDEO_READ_AHEAD_BLOCKS = 32
VIDEO_CACHE_BLOCKS = 64


def bucket_url_allowed(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of an s3:// URL under one of IMPORT_BUCKETS; a ValidationError otherwise."""
    allowed = settings.IMPORT_BUCKETS
    if not allowed:
        raise ValidationError({"source_url": "This installation imports from no bucket (its operator sets "
                                             "IMPORT_BUCKETS to the prefixes it may read)."})
    url = url.strip()
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not BUCKET_NAME.fullmatch(bucket) or ".." in prefix.split("/"):
        raise ValidationError({"source_url": f"Give an S3 URL like s3://bucket/prefix/ (got {url[:200]!r})."})
    folder = _as_folder(prefix)
    if not any(bucket == b and folder.startswith(p) for b, p in map(_split, allowed)):
        raise ValidationError({"source_url": f"{url[:200]} is not under a prefix this installation imports from: "
                                             f"{', '.join(allowed)}."})
    return bucket, folder


def _split(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, _as_folder(prefix)


def _as_folder(prefix: str) -> str:
    """A key prefix that ends at a folder boundary: "cams/site-a" must not reach "cams/site-ab/"."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


class BucketSource:
    """The objects under an allowed prefix, as ImportSource gives an archive's entries (names relative to
    it), less those an earlier import of `project` read and that have not changed since (same ETag)."""

    is_archive = True

    def __init__(self, url: str, *, project: Project, frame_every: float = 1.0) -> None:
        import boto3  # only import workers need it

        self.bucket, self.prefix = bucket_url_allowed(url)
        self.project = project
        self.frame_every = frame_every
        self.unchanged = 0  # objects skipped: read by an earlier import, the same since
        self.refused: list[tuple[str, str]] = []  # videos that give no frames, and why
        self._client = boto3.client("s3")
        self._sizes: dict[str, int] = {}        # new images and label files
        self._video_sizes: dict[str, int] = {}  # new videos
        self._etags: dict[str, str] = {}        # all new objects
        self._videos = VideoFrames(self._open_video, every=frame_every)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, Future] = {}  # objects fetched ahead, at most PREFETCH + 1
        self._taken: set[str] = set()
        self._order: list[str] = []
        self._position: dict[str, int] = {}
        seen = {url: (etag, every) for url, etag, every in BucketObject.objects.filter(
            project=project, url__startswith=self._url("")).values_list("url", "etag", "frame_every")}
        listed = 0
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix):]
                    if not name or name.endswith("/"):
                        continue
                    listed += 1
                    if self._unchanged(seen.get(self._url(name)), name=name, etag=item["ETag"]):
                        self.unchanged += 1
                        continue
                    sizes = self._video_sizes if is_video_name(name) else self._sizes
                    sizes[name], self._etags[name] = item["Size"], item["ETag"]
                    if len(self._etags) > settings.MAX_ARCHIVE_ENTRIES:
                        raise ArchiveRejected(
                            f"More than {settings.MAX_ARCHIVE_ENTRIES} new objects under {url}: import a narrower "
                            "prefix (one camera or one day, say).")
        except self._client.exceptions.NoSuchBucket:
            raise ArchiveRejected(f"The bucket {self.bucket!r} does not exist (or these credentials cannot see it).")
        if not listed:
            raise ArchiveRejected(f"No objects under {url}.")
        for video in sorted(self._video_sizes):
            if self._video_sizes[video] > settings.MAX_ARCHIVE_BYTES:
                self.refused.append((video, f"A video larger than {settings.MAX_ARCHIVE_BYTES / 1e9:.1f} GB "
                                            "(MAX_ARCHIVE_BYTES)."))
            else:
                self._videos.add(video, taken=self._sizes)
        self.refused += self._videos.refused
        self.names = sorted([*self._sizes, *self._videos.frames])
        if len(self.names) > settings.MAX_ARCHIVE_ENTRIES:
            raise ArchiveRejected(f"The new objects under {url} give {len(self.names)} images and label files (one "
                                  f"frame every {frame_every:g} s of each video); the limit is "
                                  f"{settings.MAX_ARCHIVE_ENTRIES}. Import a narrower prefix or take frames less often.")

    def _open_video(self, video: str) -> _ObjectFile:
        return _ObjectFile(self._client, bucket=self.bucket, key=self.prefix + video,
                           size=self._video_sizes[video], etag=self._etags[video])

    def _unchanged(self, read: tuple[str, float | None] | None, *, name: str, etag: str) -> bool:
        """Whether an earlier import read this object as it is now: the same ETag, and for a video the same
        interval between frames (one read at 5 s and imported again at 1 s has frames still to give)."""
        if read is None or read[0] != etag:
            return False
        return not is_video_name(name) or read[1] is None or read[1] == self.frame_every

    def _url(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def remember(self, *, refused: set[str]) -> None:
        """After a committed import: the objects it read, bar the refused ones (and the videos with a refused
        frame), are not read again unchanged."""
        refused = refused | {self._videos.video_of(name) for name in refused} - {None}
        rows = [BucketObject(project=self.project, url=self._url(name), etag=etag,
                             frame_every=self.frame_every if is_video_name(name) else None)
                for name, etag in self._etags.items() if name not in refused]
        BucketObject.objects.bulk_create(rows, batch_size=1000, update_conflicts=True, unique_fields=["project", "url"],
                                         update_fields=["etag", "frame_every", "imported_at"])

    def will_read(self, names: list[str]) -> None:
        """The order the import will read objects in: read() then fetches the next ones ahead, in threads."""
        self._order = [name for name in names if name in self._sizes]
        self._position = {name: i for i, name in enumerate(self._order)}

    def read(self, name: str) -> bytes:
        if name in self._videos.frames:
            return self._videos.read(name)
        position = self._position.get(name)
        if position is None or name in self._taken:  # not announced (a label file), or read before
            return self._get(name)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="bucket-read")
        for ahead in self._order[position:position + PREFETCH + 1]:
            if ahead not in self._pending and ahead not in self._taken:
                self._pending[ahead] = self._pool.submit(self._get, ahead)
        self._taken.add(name)
        return self._pending.pop(name).result()  # its ArchiveRejected, if any, is raised here

    def _get(self, name: str) -> bytes:
        limit = settings.MAX_IMAGE_BYTES if is_image_name(name) else settings.MAX_LABEL_FILE_BYTES
        if self._sizes[name] > limit:
            raise ArchiveRejected(f"{name} is larger than {limit / 1e6:.0f} MB.")
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
        except self._client.exceptions.NoSuchKey:  # a camera's retention rule got there first: refuse this one
            raise ArchiveRejected(f"{name} was deleted from the bucket before it could be read.") from None
        try:
            data = body.read(limit + 1)  # the object may have grown since it was listed
        finally:
            body.close()
        if len(data) > limit:
            raise ArchiveRejected(f"{name} is larger than {limit / 1e6:.0f} MB.")
        return data

    def close(self) -> None:
        self._videos.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._client.close()


class _ObjectFile(io.RawIOBase):
    """A bucket object as a seekable file, fetched in blocks by ranged GETs (see VIDEO_BLOCK_BYTES). Each GET
    asks for the ETag listed: an object rewritten since fails its read rather than mix two versions' bytes."""

    def __init__(self, client, *, bucket: str, key: str, size: int, etag: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._size, self._etag = client, bucket, key, size, etag
        self._position = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()  # least recently used first
        self._next = -1    # the block after the last one fetched
        self._ahead = 1    # blocks the next GET takes when it reads on from there

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        start = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, start + offset)
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self._size or not len(buffer):
            return 0
        index, offset = divmod(self._position, VIDEO_BLOCK_BYTES)
        block = self._block(index)
        count = min(len(buffer), len(block) - offset)
        buffer[:count] = block[offset:offset + count]
        self._position += count
        return count

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        self._ahead = min(self._ahead * 2, VIDEO_READ_AHEAD_BLOCKS) if index == self._next else 1
        last = index
        while last + 1 - index < self._ahead and (last + 1) * VIDEO_BLOCK_BYTES < self._size \
                and last + 1 not in self._blocks:
            last += 1
        data = self._get(index * VIDEO_BLOCK_BYTES, min(self._size, (last + 1) * VIDEO_BLOCK_BYTES) - 1)
        for n in range(index, last + 1):
            self._blocks[n] = data[(n - index) * VIDEO_BLOCK_BYTES:(n - index + 1) * VIDEO_BLOCK_BYTES]
        while len(self._blocks) > VIDEO_CACHE_BLOCKS:
            self._blocks.popitem(last=False)
        self._next = last + 1
        return self._blocks[index]

    def _get(self, first: int, last: int) -> bytes:
        try:
            body = self._client.get_object(Bucket=self._bucket, Key=self._key, IfMatch=self._etag,
                                           Range=f"bytes={first}-{last}")["Body"]
        except self._client.exceptions.ClientError as exc:  # deleted, or rewritten (412), since it was listed
            raise OSError(f"{self._key} could not be read from the bucket "
                          f"({exc.response.get('Error', {}).get('Code', exc)})") from None
        try:
            data = body.read(last - first + 1)
        finally:
            body.close()
        if len(data) != last - first + 1:
            raise OSError(f"{self._key} gave {len(data)} bytes where {last - first + 1} were asked for.")
        return data
