"""Safe extraction of dataset archives (zip and tar, plain or gzip/bzip2/xz compressed).

Nothing is written until the whole archive has been read and checked:
- the kind comes from the file's first bytes, never from its name or its tail (a tar whose last
  member is a zip is a tar; an HTML error page is named as one);
- a tar must end with its end-of-archive blocks (a tar cut at a member boundary is incomplete), a
  zip's members must pass their CRC check;
- every member is a regular file or a folder (no links, devices, FIFOs) with a relative name that
  stays inside the target folder, lies under the folders the dataset is known to hold, and is not
  one of the suite's own files;
- the expanded size is capped (MAX_EXPANSION times the archive, at least MIN_CAP_BYTES, and never
  more than the free disk space), so a zip bomb is refused before anything is inflated.
Members are unpacked into a staging folder first and then moved into place file by file. Every
failure is an ArchiveError (a ValueError) naming the archive.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from suite.data.io import IMAGE_SUFFIXES

# Image archives barely compress (PNG inside zip or tar): a declared expansion above this ratio is a
# bomb, not a dataset. Small archives get MIN_CAP_BYTES so a tiny legitimate set is never refused.
MAX_EXPANSION = 10
MIN_CAP_BYTES = 64 * 2**20
_BLOCK = 512
_CHUNK = 1 << 20
_COMPRESSED_TAR = {"tar.gz": gzip.open, "tar.bz2": bz2.open, "tar.xz": lzma.open}
# Errors the stdlib readers raise on damaged input; each becomes an ArchiveError naming the file.
_READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    lzma.LZMAError,
    OSError,
    NotImplementedError,
    UnicodeDecodeError,
)


class ArchiveError(ValueError):
    """An archive that is damaged, of an unknown kind, or holds members the suite will not write."""


@dataclass(frozen=True)
class Member:
    name: str  # normalised: '/' separators, no leading './', no trailing '/'
    is_dir: bool
    size: int
    source: str  # the name as the archive spells it


def _member(source: str, is_dir: bool, size: int) -> Member:
    name = source.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return Member(name.rstrip("/") if name != "." else "", is_dir, size, source)


def received_instead(head: bytes) -> str | None:
    """What a download starting with `head` plainly is instead of the file asked for (an empty body, a web
    page, a JSON document such as an error body served with status 200), or None. A UTF-8 byte-order mark
    and leading white space are skipped, as a browser would."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head:
        return "an empty body"
    if text.startswith(b"<"):  # <!DOCTYPE html>, <html>, <?xml ...>
        return "an HTML page (an error or login page, not the file)"
    if text[:1] in (b"{", b"["):
        return "a JSON document (an error message served as the file?)"
    return None


def _describe_start(head: bytes) -> str:
    received = received_instead(head)
    return f"it is {received}" if received else f"it starts with {head[:16]!r}"


def archive_kind(path: str | Path) -> str:
    """'zip', 'tar', 'tar.gz', 'tar.bz2' or 'tar.xz' from the file's first bytes; ArchiveError otherwise."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(_BLOCK)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    compressed = {b"\x1f\x8b": "tar.gz", b"BZ": "tar.bz2", b"\xfd7": "tar.xz"}.get(head[:2])
    if compressed is not None:
        try:
            with _COMPRESSED_TAR[compressed](path, "rb") as inner:
                head = inner.read(_BLOCK)
        except _READ_ERRORS as err:
            raise ArchiveError(f"{path} looks {compressed.split('.')[1]}-compressed but cannot be read: {err}") from err
        if _is_tar_header(head):
            return compressed
        raise ArchiveError(f"{path} is {compressed.split('.')[1]}-compressed but holds no tar archive")
    if _is_tar_header(head):
        return "tar"
    raise ArchiveError(f"{path} is neither a zip nor a tar archive: {_describe_start(head)}")


def _is_tar_header(head: bytes) -> bool:
    """A POSIX/GNU tar header: 'ustar' magic at offset 257 (every tar the dataset sources ship)."""
    return len(head) == _BLOCK and head[257:262] == b"ustar"


def _tar_members(tar: tarfile.TarFile, raw: BinaryIO, path: Path) -> list[Member]:
    members = []
    for info in tar.getmembers():
        if info.issym() or info.islnk():
            raise ArchiveError(
                f"refusing to extract {path}: member {info.name!r} is a link "
                f"(dataset archives hold regular files only); nothing was extracted"
            )
        if not (info.isfile() or info.isdir()):
            raise ArchiveError(
                f"refusing to extract {path}: member {info.name!r} is a device or FIFO; nothing was extracted"
            )
        members.append(_member(info.name, info.isdir(), 0 if info.isdir() else info.size))
    # tarfile stops silently at the end of the data: a tar cut at a member boundary reads as a
    # shorter archive. A complete one ends with two zero blocks right after its last member.
    raw.seek(tar.offset)
    end = raw.read(2 * _BLOCK)
    if len(end) < 2 * _BLOCK or end.count(0) != len(end):
        raise ArchiveError(
            f"{path} is truncated: the tar ends after {len(members)} member(s) without "
            f"its end-of-archive marker (an interrupted download or partial copy?)"
        )
    return members


def _zip_members(zf: zipfile.ZipFile, path: Path) -> list[Member]:
    members = []
    for info in zf.infolist():
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveError(
                f"refusing to extract {path}: member {info.filename!r} is a symbolic link; nothing was extracted"
            )
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{path}: member {info.filename!r} is encrypted")
        members.append(_member(info.filename, info.is_dir(), 0 if info.is_dir() else info.file_size))
    return members


class _Reader:
    """One open archive: its member list and a way to stream each member's bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = archive_kind(path)
        try:
            if self.kind == "zip":
                self._zip = zipfile.ZipFile(path)
                self.members = _zip_members(self._zip, path)
            else:
                opener = _COMPRESSED_TAR.get(self.kind, open)
                self._raw = opener(path, "rb")
                self._tar = tarfile.open(fileobj=self._raw, mode="r:")
                self.members = _tar_members(self._tar, self._raw, path)
        except ArchiveError:
            self.close()
            raise
        except _READ_ERRORS as err:
            self.close()
            raise ArchiveError(f"{path} is damaged or incomplete ({self.kind}): {err}") from err

    def open_member(self, name: str) -> BinaryIO:
        if self.kind == "zip":
            return self._zip.open(self._zip.getinfo(name))
        handle = self._tar.extractfile(self._tar.getmember(name))
        assert handle is not None  # regular files only, checked in _tar_members
        return handle

    def close(self) -> None:
        for attr in ("_zip", "_tar", "_raw"):
            handle = getattr(self, attr, None)
            if handle is not None:
                handle.close()


def _target(path: Path, name: str, dest: Path) -> Path:
    """Where member `name` lands in `dest`, refusing absolute paths, '..' and anything outside."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise ArchiveError(
            f"refusing to extract {path}: member {name!r} has an absolute path "
            f"(target folder {dest}); nothing was extracted"
        )
    if ".." in PurePosixPath(posix).parts:
        raise ArchiveError(
            f"refusing to extract {path}: member {name!r} contains '..' (target folder {dest}); nothing was extracted"
        )
    target = (dest / posix).resolve()
    if not (target == dest or dest in target.parents):
        raise ArchiveError(
            f"refusing to extract {path}: member {name!r} lands outside the target folder {dest}; nothing was extracted"
        )
    return target


def _under(name: str, folder: str) -> bool:
    return (name + "/").startswith(folder.rstrip("/") + "/")


def _is_image(name: str) -> bool:
    leaf = PurePosixPath(name).name
    return PurePosixPath(leaf).suffix.lower() in IMAGE_SUFFIXES and not leaf.startswith(".")


def _iter_files(folder: Path) -> Iterator[Path]:
    for parent, _, files in os.walk(folder):
        for file in files:
            yield Path(parent) / file


def _copy_member(reader: _Reader, member: Member, out: Path) -> None:
    """Stream one member into `out`; read errors (bad CRC, cut data) become ArchiveError, while
    write errors (disk full, permissions) stay OSError naming our own file."""
    path = reader.path
    with open(out, "wb") as dst:
        try:
            src = reader.open_member(member.source)
        except _READ_ERRORS as err:
            raise ArchiveError(
                f"{path} is damaged ({reader.kind}): member {member.name!r}: {err}; nothing was extracted"
            ) from err
        with src:
            written = 0
            while True:
                try:
                    block = src.read(_CHUNK)
                except _READ_ERRORS as err:
                    raise ArchiveError(
                        f"{path} is damaged ({reader.kind}): member {member.name!r}: {err}; nothing was extracted"
                    ) from err
                if not block:
                    break
                written += len(block)
                if written > member.size:
                    raise ArchiveError(
                        f"{path}: member {member.name!r} holds more than its declared "
                        f"{member.size} bytes; nothing was extracted"
                    )
                dst.write(block)
    if written != member.size:
        raise ArchiveError(
            f"{path}: member {member.name!r} is truncated ({written} of {member.size} bytes); nothing was extracted"
        )


def safe_extract(
    archive: str | Path,
    dest: str | Path,
    staging: str | Path,
    member_prefix: str | None = None,
    allowed: tuple[str, ...] = (),
    expect: tuple[str, ...] = (),
    protected: tuple[Path, ...] = (),
) -> list[str]:
    """Extract `archive` into `dest` (merging with what is there) -> the top-level names written.

    member_prefix: extract only members under this folder. allowed: every member of the archive
    must lie under one of these folders (empty: any). expect: folders that must each receive at
    least one image file. protected: paths (files or folders) no member may write.
    """
    path = Path(archive)
    dest = Path(dest).resolve()
    staging = Path(staging)
    reader = _Reader(path)
    try:
        members = reader.members
        protected = tuple(Path(p).resolve() for p in protected)
        for member in members:  # every member, selected or not: an unsafe name means a hostile archive
            if not member.name:
                continue
            target = _target(path, member.source, dest)
            hit = next((p for p in protected if target == p or p in target.parents), None)
            if hit is not None:
                raise ArchiveError(
                    f"refusing to extract {path}: member {member.source!r} would write the "
                    f"suite's own {hit}; nothing was extracted"
                )
        if allowed:
            stray = [m.name for m in members if m.name and not any(_under(m.name, a) for a in allowed)]
            if stray:
                raise ArchiveError(
                    f"{path} is not the expected archive: member {stray[0]!r} (and "
                    f"{len(stray) - 1} more) lies outside {', '.join(allowed)}; nothing was extracted"
                )
        selected = [m for m in members if m.name and (member_prefix is None or _under(m.name, member_prefix))]
        if not selected:
            raise ArchiveError(f"{path} has no members under {member_prefix!r}; nothing was extracted")
        for folder in expect:
            if not any(not m.is_dir and _under(m.name, folder) and _is_image(m.name) for m in selected):
                raise ArchiveError(
                    f"{path} is not the expected archive: it holds no image under {folder}/; nothing was extracted"
                )
        declared = sum(m.size for m in selected)
        cap = max(MAX_EXPANSION * path.stat().st_size, MIN_CAP_BYTES)
        if declared > cap:
            raise ArchiveError(
                f"refusing to extract {path}: its members expand to {declared} bytes, more than "
                f"{MAX_EXPANSION}x the archive's {path.stat().st_size} bytes (a zip bomb?); "
                f"nothing was extracted"
            )
        existing = next(folder for folder in (dest, *dest.parents) if folder.is_dir())
        free = shutil.disk_usage(existing).free
        if declared > free:
            raise ArchiveError(f"cannot extract {path}: it needs {declared} bytes, {dest} has {free} free")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            for member in selected:
                out = staging / member.name
                if member.is_dir:
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                _copy_member(reader, member, out)
            dest.mkdir(parents=True, exist_ok=True)
            for file in _iter_files(staging):
                relative = file.relative_to(staging)
                (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(file, dest / relative)
            for folder, _, _ in os.walk(staging):  # empty folders of the archive
                (dest / Path(folder).relative_to(staging)).mkdir(parents=True, exist_ok=True)
            return sorted(p.name for p in staging.iterdir())
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        reader.close()
