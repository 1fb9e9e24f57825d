import io
import stat
import zipfile

import pytest

from review.archives import ArchiveRejected, SafeArchive


def _zip(entries: dict[str, bytes], *, symlink: str | None = None, compress: bool = False) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    buffer.seek(0)
    return buffer


def _open(buffer, **limits):
    return SafeArchive(buffer, max_entries=limits.get("max_entries", 100),
                       max_total_bytes=limits.get("max_total_bytes", 10_000_000))


def test_reads_entries_and_skips_folders_and_litter():
    buffer = _zip({"a/one.png": b"1", "two.jpg": b"22", "__MACOSX/a/._one.png": b"x", "a/.DS_Store": b"x"})
    with _open(buffer) as archive:
        assert [(e.name, e.size) for e in archive] == [("a/one.png", 1), ("two.jpg", 2)]
        assert archive.read(archive.entries[1]) == b"22"


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png"])
def test_refuses_entries_escaping_the_archive(name):
    with pytest.raises(ArchiveRejected, match="outside the archive"):
        _open(_zip({"ok.png": b"1", name: b"2"}))


def test_refuses_symlinks():
    with pytest.raises(ArchiveRejected, match="symbolic link"):
        _open(_zip({"ok.png": b"1"}, symlink="link.png"))


def test_refuses_too_many_entries_and_too_large_a_total():
    with pytest.raises(ArchiveRejected, match="3 entries; the limit is 2"):
        _open(_zip({"a": b"1", "b": b"2", "c": b"3"}), max_entries=2)
    with pytest.raises(ArchiveRejected, match="more than"):
        _open(_zip({"a": b"1" * 600, "b": b"2" * 600}), max_total_bytes=1000)


def test_refuses_zip_bombs_and_non_zips():
    with pytest.raises(ArchiveRejected, match="suspiciously"):
        _open(_zip({"bomb.png": b"\0" * 5_000_000}, compress=True), max_total_bytes=10**9)
    with pytest.raises(ArchiveRejected, match="not a readable zip"):
        _open(io.BytesIO(b"<html>not a zip</html>"))
