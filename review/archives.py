"""Read zip archives that users upload without trusting them. No Django models here.

Everything is checked from the central directory before a single entry is read: entries whose
path escapes the archive (`../`, absolute paths, drive letters), symlinks, too many entries, a
declared total size over the limit, suspicious compression ratios. Entries are read into memory, one
at a time and never past their declared size (a video's as a stream, in parts), so nothing is ever
written to disk from an archive.
"""
from __future__ import annotations

import posixpath
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# Entries we skip silently: folders and the litter that archiving tools add.
IGNORED_PREFIXES = ("__MACOSX/",)
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
# A zip bomb packs gigabytes into kilobytes; honest image archives compress far less than this.
MAX_COMPRESSION_RATIO = 200


class ArchiveRejected(ValueError):
    """The archive is not safe or not readable; the message says why in a user's words."""


@dataclass(frozen=True)
class ArchiveEntry:
    name: str   # normalised path inside the archive, forward slashes
    size: int   # declared uncompressed size


class SafeArchive:
    """A checked zip archive: construct it (which validates) and then read entries by name."""

    def __init__(self, file: BinaryIO, *, max_entries: int, max_total_bytes: int) -> None:
        try:
            self._zip = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise ArchiveRejected("The file is not a readable zip archive.") from None
        self.entries = _checked_entries(self._zip, max_entries=max_entries, max_total_bytes=max_total_bytes)
        self._infos = {_normalised(info.filename): info for info in self._zip.infolist()}

    def read(self, entry: ArchiveEntry) -> bytes:
        """The entry's bytes; refuses an entry that inflates past its declared size or fails its CRC."""
        try:
            with self._zip.open(self._infos[entry.name]) as stream:
                data = stream.read(entry.size + 1)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
            raise ArchiveRejected(f"{entry.name}: cannot be read from the archive ({exc}).") from None
        if len(data) > entry.size:
            raise ArchiveRejected(f"{entry.name}: holds more data than the archive declares.")
        return data

    def open(self, entry: ArchiveEntry) -> BinaryIO:
        """The entry as a seekable stream, for a reader that wants parts of it rather than all its bytes
        at once (a video's frames); it ends at the declared size, and its CRC is checked if read to the end."""
        try:
            return self._zip.open(self._infos[entry.name])
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
            raise ArchiveRejected(f"{entry.name}: cannot be read from the archive ({exc}).") from None

    def __iter__(self) -> Iterator[ArchiveEntry]:
        return iter(self.entries)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeArchive:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _normalised(name: str) -> str:
    return name.replace("\\", "/")


def _checked_entries(archive: zipfile.ZipFile, *, max_entries: int, max_total_bytes: int) -> list[ArchiveEntry]:
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise ArchiveRejected(f"The archive holds {len(infos)} entries; the limit is {max_entries}.")
    entries, total, seen = [], 0, set()
    for info in infos:
        name = _normalised(info.filename)
        if _escapes(name):
            raise ArchiveRejected(f"The archive entry {name!r} points outside the archive; nothing was imported.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveRejected(f"The archive entry {name!r} is a symbolic link; links are not accepted.")
        if name in seen:
            raise ArchiveRejected(f"The archive holds {name!r} twice.")
        seen.add(name)
        if info.is_dir() or name.startswith(IGNORED_PREFIXES) or posixpath.basename(name) in IGNORED_NAMES:
            continue
        if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
            raise ArchiveRejected(f"The archive entry {name!r} is compressed suspiciously well (a zip bomb?).")
        total += info.file_size
        if total > max_total_bytes:
            raise ArchiveRejected(
                f"The archive unpacks to more than {max_total_bytes / 1e6:.0f} MB, the limit; split it into smaller ones.")
        entries.append(ArchiveEntry(name=name, size=info.file_size))
    return entries


def _escapes(name: str) -> bool:
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return True
    return any(part == ".." for part in name.split("/"))
