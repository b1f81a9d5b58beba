"""Download and unpack the public SR datasets: resumable, checksummed, safely extracted, idempotent.

Layout under a data root DIR:
- `DIR/downloads/<archive>`            archives (`<archive>.part` while downloading; resumed by Range)
- `DIR/suite-data.lock.json`           SHA-256 of every archive, recorded on first download where the
                                       source publishes none, and checked on every later download
- `DIR/DIV2K/DIV2K_train_HR/...`       DIV2K root (open it with `open_paired(DIR/DIV2K, s)`)
- `DIR/benchmark/Set5/HR/...`          benchmark layout (`DIR/benchmark/Set5` etc.)
- `DIR/.suite-data/`                   extraction markers and staging folders

Sources (SPEC section 6): DIV2K from the ETH Zurich CVL DIV2K page, Set5/Set14/B100/Urban100 from
the EDSR authors' `benchmark.tar`. A `mirror` base URL or one `url` replaces them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import http.client
import json
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from suite import __version__
from suite.files import atomic_write

DIV2K_BASE_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
BENCHMARK_URL = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
MIRROR_ENV = "SUITE_DATA_MIRROR"
LOCK_NAME = "suite-data.lock.json"
_CHUNK = 1 << 20
_MAX_RESUMES = 5


@dataclass(frozen=True)
class Archive:
    """One downloadable archive and where its members go."""

    filename: str
    url: str
    extract_to: str                  # folder under the data root that receives the members
    member_prefix: str | None = None  # extract only members under this path (None: all)
    sha256: str | None = None        # published hash; None: recorded in the lock file on first download


@dataclass(frozen=True)
class Source:
    """A named dataset: its archives by part name and the folder to evaluate or train on."""

    name: str
    parts: dict[str, Archive]
    data_path: str  # relative to the data root, what `--data` should point at


def _div2k() -> Source:
    parts = {}
    for split in ("train", "valid"):
        parts[f"{split}_HR"] = Archive(f"DIV2K_{split}_HR.zip", DIV2K_BASE_URL + f"DIV2K_{split}_HR.zip", "DIV2K")
        for scale in (2, 3, 4):
            filename = f"DIV2K_{split}_LR_bicubic_X{scale}.zip"
            parts[f"{split}_LR_X{scale}"] = Archive(filename, DIV2K_BASE_URL + filename, "DIV2K")
    return Source("DIV2K", parts, "DIV2K")


def _benchmark(subset: str | None) -> Source:
    prefix = None if subset is None else f"benchmark/{subset}/"
    name = subset or "benchmark"
    archive = Archive("benchmark.tar", BENCHMARK_URL, ".", member_prefix=prefix)
    return Source(name, {name: archive}, f"benchmark/{subset}" if subset else "benchmark")


SOURCES: dict[str, Source] = {
    "DIV2K": _div2k(),
    "benchmark": _benchmark(None),
    **{subset: _benchmark(subset) for subset in ("Set5", "Set14", "B100", "Urban100")},
}


class ChecksumError(RuntimeError):
    """A downloaded or placed archive whose SHA-256 differs from the expected one."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, obj: dict) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def read_lock(root: Path) -> dict:
    """The lock file's `archives` mapping (filename -> {sha256, size, url, recorded_utc})."""
    path = root / LOCK_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        archives = data["archives"]
        if not isinstance(archives, dict):
            raise TypeError("'archives' is not a mapping")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"lock file {path} is not valid ({err}); fix or delete it") from err
    return archives


def _record_lock(root: Path, filename: str, sha256: str, size: int, url: str) -> None:
    archives = read_lock(root)
    archives[filename] = {"sha256": sha256, "size": size, "url": url,
                          "recorded_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}
    _write_json(root / LOCK_NAME, {"version": 1, "archives": archives})


def _offline_error(url: str, target: Path, reason: object) -> RuntimeError:
    return RuntimeError(
        f"cannot download {url} ({reason}). Without network access, download it elsewhere and "
        f"place it as {target} (folder {target.parent}), then run the same command again.")


def download(url: str, target: Path, timeout: float = 30.0, log: Callable[[str], None] = lambda _: None) -> int:
    """Download `url` to `target` via `target.part`, resuming with Range requests; -> bytes received.

    A transfer that breaks off after making progress is resumed (up to a few times); a server that
    cannot be reached fails at once with an error naming the URL and the folder for manual placement.
    """
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    received = 0
    for attempt in range(_MAX_RESUMES + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": f"rib-suite/{__version__}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:
                log(f"{target.name}: server reports the partial file complete ({have} bytes)")
                break
            raise RuntimeError(f"download of {url} failed: HTTP {err.code} {err.reason}; a copy placed as "
                               f"{target} (folder {target.parent}) is used instead") from err
        except (urllib.error.URLError, OSError) as err:
            if attempt and received:
                raise RuntimeError(f"download of {url} broke off and could not resume ({err}); "
                                   f"run again to resume from {part}") from err
            raise _offline_error(url, target, getattr(err, "reason", err)) from err
        with response:
            status = response.status
            if have and status == 206:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {have}-"):
                    raise RuntimeError(f"download of {url}: server answered Range bytes={have}- "
                                       f"with Content-Range {content_range!r}")
                mode = "ab"
                log(f"{target.name}: resuming at byte {have}")
            elif status == 200:
                if have:
                    log(f"{target.name}: server ignored the Range request; starting over")
                mode, have = "wb", 0
            else:
                raise RuntimeError(f"download of {url} failed: unexpected HTTP {status}")
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            got = 0
            try:
                with open(part, mode) as handle:
                    while block := response.read(_CHUNK):
                        handle.write(block)
                        got += len(block)
            except (http.client.HTTPException, ConnectionError, TimeoutError) as err:
                log(f"{target.name}: transfer interrupted after {have + got} bytes ({err})")
            received += got
        size = part.stat().st_size
        if total is None or size == total:
            break
        if got == 0:
            raise RuntimeError(f"download of {url} stalled at {size} of {total} bytes; run again to resume")
    else:
        raise RuntimeError(f"download of {url} still incomplete after {_MAX_RESUMES} resumptions; "
                           f"run again to resume from {part}")
    os.replace(part, target)
    return received


def _member_error(archive: Path, name: str, dest: Path, why: str) -> ValueError:
    return ValueError(f"refusing to extract {archive}: member {name!r} {why} (target folder {dest}); "
                      f"nothing was extracted")


def _inside(dest: Path, candidate: Path) -> bool:
    return candidate == dest or dest in candidate.parents


def _check_name(archive: Path, name: str, dest: Path) -> Path:
    """Target path of a member name, refusing absolute paths, `..` and anything resolving outside."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise _member_error(archive, name, dest, "has an absolute path")
    if ".." in PurePosixPath(posix).parts:
        raise _member_error(archive, name, dest, "contains '..'")
    target = (dest / posix).resolve()
    if not _inside(dest, target):
        raise _member_error(archive, name, dest, "lands outside the target folder")
    return target


def _select(name: str, prefix: str | None) -> bool:
    return prefix is None or name.replace("\\", "/").startswith(prefix)


def _extract_tar(archive: Path, dest: Path, staging: Path, prefix: str | None) -> int:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if _select(m.name, prefix)]
        for member in members:
            target = _check_name(archive, member.name, dest)
            if member.issym():
                link = (target.parent / member.linkname).resolve()
                if member.linkname.startswith("/") or not _inside(dest, link):
                    raise _member_error(archive, member.name, dest, f"links outside ({member.linkname!r})")
            elif member.islnk():
                _check_name(archive, member.linkname, dest)
            elif not (member.isfile() or member.isdir()):
                raise _member_error(archive, member.name, dest, "is a device or fifo")
        if not members:
            return 0
        # The 'data' filter re-checks the same rules inside tarfile (defence in depth).
        if hasattr(tarfile, "data_filter"):
            tar.extractall(staging, members=members, filter="data")
        else:  # pragma: no cover - Python without PEP 706 backport; our checks above still hold
            tar.extractall(staging, members=members)
        return len(members)


def _extract_zip(archive: Path, dest: Path, staging: Path, prefix: str | None) -> int:
    with zipfile.ZipFile(archive) as zf:
        members = [info for info in zf.infolist() if _select(info.filename, prefix)]
        for info in members:
            _check_name(archive, info.filename, dest)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise _member_error(archive, info.filename, dest, "is a symbolic link")
        for info in members:
            zf.extract(info, staging)
        return len(members)


def safe_extract(archive: Path, dest: Path, staging: Path, member_prefix: str | None = None) -> list[str]:
    """Extract a zip or tar into `dest` (merging with what is there) -> top-level names written.

    Every member is checked before anything is written: absolute paths, `..`, and links pointing
    outside `dest` are refused with a ValueError. Members are unpacked into `staging` first and then
    moved into place file by file, so an interrupted extraction leaves no half-written file in `dest`.
    """
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            count = _extract_zip(archive, dest, staging, member_prefix)
        elif tarfile.is_tarfile(archive):
            count = _extract_tar(archive, dest, staging, member_prefix)
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive")
        if count == 0:
            raise ValueError(f"{archive} has no members under {member_prefix!r}")
        for folder, _, files in os.walk(staging):
            relative = Path(folder).relative_to(staging)
            (dest / relative).mkdir(parents=True, exist_ok=True)
            for file in files:
                os.replace(Path(folder) / file, dest / relative / file)
        return sorted(p.name for p in staging.iterdir())
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _marker_path(root: Path, archive: Archive) -> Path:
    scope = (archive.member_prefix or "all").strip("/").replace("/", "_")
    return root / ".suite-data" / f"{archive.filename}.{scope}.json"


def _already_extracted(root: Path, archive: Archive, expected: str | None) -> bool:
    marker = _marker_path(root, archive)
    if not marker.is_file() or expected is None:
        return False
    try:
        record = json.loads(marker.read_text())
    except ValueError:
        return False
    dest = root / archive.extract_to
    return record.get("sha256") == expected and all((dest / name).exists() for name in record.get("paths", []))


def _resolve_url(archive: Archive, url: str | None, mirror: str | None) -> str:
    if url:
        return url
    if mirror:
        return mirror.rstrip("/") + "/" + archive.filename
    return archive.url


def _verified_archive(root: Path, archive: Archive, url: str, expected: str | None, timeout: float,
                      log: Callable[[str], None]) -> tuple[Path, str, int]:
    """The archive in `root/downloads`, downloaded if absent -> (path, sha256, bytes downloaded)."""
    target = root / "downloads" / archive.filename
    received = 0
    if target.is_file():
        log(f"{archive.filename}: using {target}")
    else:
        log(f"{archive.filename}: downloading {url}")
        received = download(url, target, timeout=timeout, log=log)
    digest = sha256_file(target)
    if expected is not None and digest != expected:
        rejected = target.with_name(target.name + ".sha256-mismatch")
        os.replace(target, rejected)
        raise ChecksumError(f"SHA-256 mismatch for {archive.filename} from {url}: got {digest}, expected "
                            f"{expected} (from {'the source' if archive.sha256 else root / LOCK_NAME}); "
                            f"the file was moved aside to {rejected}")
    return target, digest, received


def fetch(name: str, root: str | Path, parts: list[str] | None = None, url: str | None = None,
          mirror: str | None = None, timeout: float = 30.0, remove_archives: bool = False,
          log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Download, verify and extract dataset `name` under `root` -> one record per archive.

    Records: {"archive", "url", "sha256", "downloaded_bytes", "action": "present"|"extracted"}.
    A second run with the same arguments downloads and extracts nothing.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(SOURCES)}")
    source = SOURCES[name]
    chosen = list(source.parts) if not parts else parts
    unknown = [part for part in chosen if part not in source.parts]
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)} of {name}; choose from {', '.join(source.parts)}")
    if url and len(chosen) > 1:
        raise ValueError(f"--url names one archive but {name} has {len(chosen)} parts here; "
                         f"select one with --parts or use --mirror BASE_URL")
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for part in chosen:
        archive = source.parts[part]
        archive_url = _resolve_url(archive, url, mirror)
        expected = archive.sha256 or read_lock(root).get(archive.filename, {}).get("sha256")
        if _already_extracted(root, archive, expected):
            log(f"{archive.filename}: already extracted into {root / archive.extract_to}")
            records.append({"archive": archive.filename, "url": archive_url, "sha256": expected,
                            "downloaded_bytes": 0, "action": "present"})
            continue
        path, digest, received = _verified_archive(root, archive, archive_url, expected, timeout, log)
        if expected is None:
            _record_lock(root, archive.filename, digest, path.stat().st_size, archive_url)
            log(f"{archive.filename}: no published SHA-256; recorded {digest} in {root / LOCK_NAME}")
        staging = root / ".suite-data" / f"staging-{archive.filename}"
        top_level = safe_extract(path, root / archive.extract_to, staging, archive.member_prefix)
        written = [archive.member_prefix.strip("/")] if archive.member_prefix else top_level
        _write_json(_marker_path(root, archive), {"sha256": digest, "paths": written})
        log(f"{archive.filename}: extracted into {root / archive.extract_to}")
        if remove_archives:
            path.unlink()
        records.append({"archive": archive.filename, "url": archive_url, "sha256": digest,
                        "downloaded_bytes": received, "action": "extracted"})
    return records
