"""Import straight from an S3-compatible bucket: the objects under a prefix, read as an archive's entries.

Deployed cameras often drop their frames into a bucket. An import of `s3://bucket/prefix/` lists
the objects under the prefix and reads them one by one, with the same checks as an uploaded zip
(images, and COCO, YOLO or Pascal VOC labels beside them, paired by the same rules). Importing the
same prefix again reads only the objects that are new or changed since (BucketObject remembers each
one's ETag), and an image already in the project is reported as a duplicate and left as it is.

Only prefixes the operator lists in IMPORT_BUCKETS can be read: the workers' credentials may
reach buckets (the media bucket, say) that no manager should be able to copy into their project.
Credentials, region and endpoint are boto3's own AWS_* variables or an instance role, as for
MEDIA_STORAGE.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.core.exceptions import ValidationError

from datasets.formats import is_image_name
from datasets.models import BucketObject
from project.env import BUCKET_NAME
from review.archives import ArchiveRejected
from review.models import Project

# Objects fetched ahead of the one being checked, in threads: on a real bucket a GET's round trip
# (tens of milliseconds), not the bandwidth, bounds a sequential import. Bounds memory too: at most
# this many objects (each under MAX_IMAGE_BYTES) wait in memory.
PREFETCH = 8


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

    def __init__(self, url: str, *, project: Project) -> None:
        import boto3  # only import workers need it

        self.bucket, self.prefix = bucket_url_allowed(url)
        self.project = project
        self.unchanged = 0  # objects skipped: read by an earlier import, the same since
        self._client = boto3.client("s3")
        self._sizes: dict[str, int] = {}
        self._etags: dict[str, str] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, Future] = {}  # objects fetched ahead, at most PREFETCH + 1
        self._taken: set[str] = set()
        self._order: list[str] = []
        self._position: dict[str, int] = {}
        seen = dict(BucketObject.objects.filter(project=project, url__startswith=self._url("")).values_list("url",
                                                                                                              "etag"))
        listed = 0
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix):]
                    if not name or name.endswith("/"):
                        continue
                    listed += 1
                    if seen.get(self._url(name)) == item["ETag"]:
                        self.unchanged += 1
                        continue
                    self._sizes[name], self._etags[name] = item["Size"], item["ETag"]
                    if len(self._sizes) > settings.MAX_ARCHIVE_ENTRIES:
                        raise ArchiveRejected(
                            f"More than {settings.MAX_ARCHIVE_ENTRIES} new objects under {url}: import a narrower "
                            "prefix (one camera or one day, say).")
        except self._client.exceptions.NoSuchBucket:
            raise ArchiveRejected(f"The bucket {self.bucket!r} does not exist (or these credentials cannot see it).")
        if not listed:
            raise ArchiveRejected(f"No objects under {url}.")
        self.names = sorted(self._sizes)

    def _url(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def remember(self, *, refused: set[str]) -> None:
        """After a committed import: the objects it read, bar the refused ones, are not read again unchanged."""
        rows = [BucketObject(project=self.project, url=self._url(name), etag=self._etags[name])
                for name in self.names if name not in refused]
        BucketObject.objects.bulk_create(rows, batch_size=1000, update_conflicts=True,
                                         unique_fields=["project", "url"], update_fields=["etag", "imported_at"])

    def will_read(self, names: list[str]) -> None:
        """The order the import will read objects in: read() then fetches the next ones ahead, in threads."""
        self._order = [name for name in names if name in self._sizes]
        self._position = {name: i for i, name in enumerate(self._order)}

    def read(self, name: str) -> bytes:
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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._client.close()
