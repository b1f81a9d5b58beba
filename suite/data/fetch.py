"""Download and unpack the public SR datasets, and fetch single files (released checkpoints).

Resumable, checksummed, safely extracted, idempotent. Layout under a data root DIR:
- `DIR/downloads/<archive>`            archives (`<archive>.part` while downloading; resumed by Range)
- `DIR/suite-data.lock.json`           SHA-256 of every archive, recorded after its first verified
                                       extraction where the source publishes none, checked on every later
                                       download
- `DIR/DIV2K/DIV2K_train_HR/...`       DIV2K root (open it with `open_paired(DIR/DIV2K, s)`)
- `DIR/benchmark/Set5/HR/...`          benchmark layout (`DIR/benchmark/Set5` etc.)
- `DIR/Flickr2K/Flickr2K_HR/...`       Flickr2K HR images; `DIR/DF2K/` links DIV2K train + Flickr2K HR
- `DIR/.suite-data/`                   extraction markers and staging folders

Sources (SPEC section 6): DIV2K from the ETH Zurich CVL DIV2K page, Set5/Set14/B100/Urban100 and
Flickr2K from the EDSR authors (SNU CV lab). Manga109 has no public archive: it needs `url` (or a
mirror), or the archive placed by hand. A `mirror` base URL or one `url` replaces the sources.

A single file (`fetch_file`, e.g. a released `.pth`) gets the same resumable download and a lock
file beside it (`<folder>/suite-data.lock.json`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import http.client
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from suite import __version__
from suite.data.archives import ArchiveError, safe_extract
from suite.data.io import is_image_file
from suite.files import file_sha256, write_json_atomic

DIV2K_BASE_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
EDSR_BASE_URL = "https://cv.snu.ac.kr/research/EDSR/"
MIRROR_ENV = "SUITE_DATA_MIRROR"
LOCK_NAME = "suite-data.lock.json"
BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")
_CHUNK = 1 << 20
_MAX_RESUMES = 5
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Archive:
    """One downloadable archive and what it must hold."""

    filename: str
    url: str | None  # None: no public URL (give --url or --mirror, or place it by hand)
    extract_to: str  # folder under the data root that receives the members
    member_prefix: str | None = None  # extract only members under this path (None: all)
    allowed: tuple[str, ...] = ()  # every member of the archive lies under one of these folders
    expect: tuple[str, ...] = ()  # folders that must receive at least one image
    sha256: str | None = None  # published hash; None: recorded in the lock file after extraction


@dataclass(frozen=True)
class Source:
    """A named dataset: its archives by part name and the folder to evaluate or train on."""

    name: str
    parts: dict[str, Archive]
    data_path: str  # relative to the data root, what `--data` should point at
    links: dict[str, str] = field(default_factory=dict)  # assembled folder <- image folders (DF2K)


def _div2k_parts(splits: tuple[str, ...] = ("train", "valid"), lr: bool = True) -> dict[str, Archive]:
    parts = {}
    for split in splits:
        folder = f"DIV2K_{split}_HR"
        parts[f"{split}_HR"] = Archive(
            f"{folder}.zip", DIV2K_BASE_URL + f"{folder}.zip", "DIV2K", allowed=(folder,), expect=(folder,)
        )
        for scale in (2, 3, 4) if lr else ():
            filename = f"DIV2K_{split}_LR_bicubic_X{scale}.zip"
            folder = f"DIV2K_{split}_LR_bicubic"
            parts[f"{split}_LR_X{scale}"] = Archive(
                filename, DIV2K_BASE_URL + filename, "DIV2K", allowed=(folder,), expect=(f"{folder}/X{scale}",)
            )
    return parts


def _benchmark(subset: str | None) -> Source:
    sets = (subset,) if subset else BENCHMARK_SETS
    archive = Archive(
        "benchmark.tar",
        EDSR_BASE_URL + "benchmark.tar",
        ".",
        member_prefix=f"benchmark/{subset}" if subset else None,
        allowed=("benchmark",),
        expect=tuple(f"benchmark/{name}/HR" for name in sets),
    )
    name = subset or "benchmark"
    return Source(name, {name: archive}, f"benchmark/{subset}" if subset else "benchmark")


# Only the HR images: the archive's LR folders are MATLAB bicubic of them, which the suite makes itself.
_FLICKR2K = Archive(
    "Flickr2K.tar",
    EDSR_BASE_URL + "Flickr2K.tar",
    ".",
    member_prefix="Flickr2K/Flickr2K_HR",
    allowed=("Flickr2K",),
    expect=("Flickr2K/Flickr2K_HR",),
)

SOURCES: dict[str, Source] = {
    "DIV2K": Source("DIV2K", _div2k_parts(), "DIV2K"),
    "Flickr2K": Source("Flickr2K", {"Flickr2K": _FLICKR2K}, "Flickr2K/Flickr2K_HR"),
    # DF2K (SPEC section 5): one HR-only folder of links to DIV2K train HR and Flickr2K HR.
    "DF2K": Source(
        "DF2K",
        {**_div2k_parts(("train",), lr=False), "Flickr2K": _FLICKR2K},
        "DF2K",
        links={"DF2K": "DIV2K/DIV2K_train_HR Flickr2K/Flickr2K_HR"},
    ),
    "benchmark": _benchmark(None),
    **{subset: _benchmark(subset) for subset in BENCHMARK_SETS},
    # No public archive: the folder Manga109/ (HR/ + LR_bicubic/ benchmark layout, or images directly).
    "Manga109": Source(
        "Manga109",
        {"Manga109": Archive("Manga109.zip", None, ".", allowed=("Manga109",), expect=("Manga109",))},
        "Manga109",
    ),
}
FETCH_NAMES = tuple(SOURCES)  # what `suite data fetch NAME` accepts (the workflow schema lists the same)


class ChecksumError(RuntimeError):
    """A downloaded or placed file whose SHA-256 differs from the expected one."""


def _lock_path(folder: Path) -> Path:
    return folder / LOCK_NAME


def read_lock(folder: str | Path) -> dict:
    """The lock file's `archives` mapping (file name -> {sha256, size, url, recorded_utc}), validated."""
    path = _lock_path(Path(folder))
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError("the file is not a JSON object")
        archives = data["archives"]
        if not isinstance(archives, dict):
            raise TypeError("'archives' is not a mapping")
        for name, entry in archives.items():
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("sha256"), str)
                or not _SHA256.fullmatch(entry["sha256"])
            ):
                raise TypeError(f'entry {name!r} is {entry!r}, expected {{"sha256": <64 lower-case hex digits>, ...}}')
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"lock file {path} is not valid ({err}); fix or delete it") from err
    return archives


@contextlib.contextmanager
def _folder_lock(folder: Path, log: Callable[[str], None]):
    """Hold an exclusive lock on `folder`'s downloads: parallel jobs (a workflow fetching several sets
    or checkpoints at once) take turns instead of writing one `.part` file or the lock file together."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".suite-fetch.flock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another fetch into {folder} to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pinned(folder: Path, filename: str) -> str | None:
    entry = read_lock(folder).get(filename)
    return entry["sha256"] if entry else None


def _record_lock(folder: Path, filename: str, sha256: str, size: int, url: str | None) -> None:
    archives = read_lock(folder)
    archives[filename] = {
        "sha256": sha256,
        "size": size,
        "url": url,
        "recorded_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    write_json_atomic(_lock_path(folder), {"version": 1, "archives": archives})


def _offline_error(url: str, target: Path, reason: object) -> RuntimeError:
    return RuntimeError(
        f"cannot download {url} ({reason}). Without network access, download it elsewhere and "
        f"place it as {target} (folder {target.parent}), then run the same command again."
    )


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
            raise RuntimeError(
                f"download of {url} failed: HTTP {err.code} {err.reason}; a copy placed as "
                f"{target} (folder {target.parent}) is used instead"
            ) from err
        except (urllib.error.URLError, OSError) as err:
            if attempt and received:
                raise RuntimeError(
                    f"download of {url} broke off and could not resume ({err}); run again to resume from {part}"
                ) from err
            raise _offline_error(url, target, getattr(err, "reason", err)) from err
        with response:
            status = response.status or 200  # file:// and ftp:// answer without a status
            if have and status == 206:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {have}-"):
                    raise RuntimeError(
                        f"download of {url}: server answered Range bytes={have}- with Content-Range {content_range!r}"
                    )
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
        raise RuntimeError(
            f"download of {url} still incomplete after {_MAX_RESUMES} resumptions; run again to resume from {part}"
        )
    os.replace(part, target)
    return received


def _marker_path(root: Path, archive: Archive) -> Path:
    scope = (archive.member_prefix or "all").strip("/").replace("/", "_")
    return root / ".suite-data" / f"{archive.filename}.{scope}.json"


def _already_extracted(root: Path, archive: Archive, expected: str | None) -> bool:
    marker = _marker_path(root, archive)
    if not marker.is_file() or expected is None:
        return False
    try:
        record = json.loads(marker.read_text())
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(record, dict) or not isinstance(record.get("paths"), list):
        return False
    dest = root / archive.extract_to
    return record.get("sha256") == expected and all((dest / str(name)).exists() for name in record["paths"])


def _resolve_url(archive: Archive, url: str | None, mirror: str | None) -> str | None:
    if url:
        return url
    if mirror:
        return mirror.rstrip("/") + "/" + archive.filename
    return archive.url


def _moved_aside(path: Path, suffix: str) -> Path:
    rejected = path.with_name(path.name + suffix)
    os.replace(path, rejected)
    return rejected


def _reject_unpinned(path: Path, err: Exception, folder: Path) -> str:
    """Move a file that failed its checks aside (nothing was pinned) -> the error message saying so."""
    rejected = _moved_aside(path, ".rejected")
    return (
        f"{err}. Nothing was recorded in {_lock_path(folder)}; the file was moved aside to {rejected}, "
        f"so the next run downloads it again"
    )


def _obtain(url: str | None, target: Path, what: str, timeout: float, log: Callable[[str], None]) -> int:
    """Use `target` if it is there, else download it -> bytes downloaded."""
    if target.is_file():
        log(f"{target.name}: using {target}")
        return 0
    if target.exists():
        raise ValueError(f"{target} exists and is not a file; move it away and run again")
    if url is None:
        raise ValueError(
            f"{what} has no public download URL: pass --url URL (a mirror you may use) or "
            f"--mirror BASE_URL, or place the file as {target} (folder {target.parent}) and run again"
        )
    log(f"{target.name}: downloading {url}")
    return download(url, target, timeout=timeout, log=log)


def _check_digest(target: Path, digest: str, expected: str | None, url: str | None, where: str) -> None:
    if expected is not None and digest != expected:
        rejected = _moved_aside(target, ".sha256-mismatch")
        raise ChecksumError(
            f"SHA-256 mismatch for {target.name} from {url or 'a copy placed by hand'}: got "
            f"{digest}, expected {expected} (from {where}); the file was moved aside to {rejected}"
        )


def _link_folder(root: Path, folder: str, sources: list[str], log: Callable[[str], None]) -> int:
    """Make `root/folder` hold a relative symlink to every image of the `sources` folders -> count."""
    out = root / folder
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for source in sources:
        for image in sorted(p for p in (root / source).iterdir() if is_image_file(p)):
            link = out / image.name
            target = os.path.relpath(image, out)
            if link.is_symlink() and os.readlink(link) == target:
                count += 1
                continue
            if link.exists() or link.is_symlink():
                raise ValueError(f"cannot assemble {out}: {link} already exists and is not a link to {image}")
            os.symlink(target, link)
            count += 1
    log(f"{folder}: {count} images linked from {', '.join(sources)}")
    return count


def fetch(
    name: str,
    root: str | Path,
    parts: list[str] | None = None,
    url: str | None = None,
    mirror: str | None = None,
    timeout: float = 30.0,
    remove_archives: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Download, verify and extract dataset `name` under `root` -> one record per archive.

    Records: {"archive", "url", "sha256", "downloaded_bytes", "action": "present"|"extracted"}.
    A second run with the same arguments downloads and extracts nothing. An archive without a
    published SHA-256 is pinned in the lock file only after it extracted completely; one that does
    not is moved aside (`.rejected`), so the next run downloads it again.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(SOURCES)}")
    source = SOURCES[name]
    chosen = list(source.parts) if not parts else parts
    unknown = [part for part in chosen if part not in source.parts]
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)} of {name}; choose from {', '.join(source.parts)}")
    if url and len(chosen) > 1:
        raise ValueError(
            f"--url names one archive but {name} has {len(chosen)} parts here; "
            f"select one with --parts or use --mirror BASE_URL"
        )
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"data root {root} is not a folder")
    with _folder_lock(root, log):
        return _fetch_locked(name, source, chosen, root, url, mirror, timeout, remove_archives, log)


def _fetch_locked(
    name: str,
    source: Source,
    chosen: list[str],
    root: Path,
    url: str | None,
    mirror: str | None,
    timeout: float,
    remove_archives: bool,
    log: Callable[[str], None],
) -> list[dict]:
    protected = (_lock_path(root), root / "downloads", root / ".suite-data", root / ".suite-fetch.flock")
    records = []
    for part in chosen:
        archive = source.parts[part]
        archive_url = _resolve_url(archive, url, mirror)
        expected = archive.sha256 or _pinned(root, archive.filename)
        if _already_extracted(root, archive, expected):
            log(f"{archive.filename}: already extracted into {root / archive.extract_to}")
            records.append(
                {
                    "archive": archive.filename,
                    "url": archive_url,
                    "sha256": expected,
                    "downloaded_bytes": 0,
                    "action": "present",
                }
            )
            continue
        path = root / "downloads" / archive.filename
        received = _obtain(archive_url, path, f"{name} ({archive.filename})", timeout, log)
        digest = file_sha256(path)
        _check_digest(path, digest, expected, archive_url, "the source" if archive.sha256 else str(_lock_path(root)))
        staging = root / ".suite-data" / f"staging-{archive.filename}"
        try:
            top_level = safe_extract(
                path,
                root / archive.extract_to,
                staging,
                archive.member_prefix,
                allowed=archive.allowed,
                expect=archive.expect,
                protected=protected,
            )
        except ArchiveError as err:
            if expected is not None:
                raise
            raise ArchiveError(_reject_unpinned(path, err, root)) from err
        if expected is None:
            _record_lock(root, archive.filename, digest, path.stat().st_size, archive_url)
            log(f"{archive.filename}: no published SHA-256; recorded {digest} in {_lock_path(root)}")
        written = [archive.member_prefix.strip("/")] if archive.member_prefix else top_level
        write_json_atomic(_marker_path(root, archive), {"sha256": digest, "paths": written})
        log(f"{archive.filename}: extracted into {root / archive.extract_to}")
        if remove_archives:
            path.unlink()
        records.append(
            {
                "archive": archive.filename,
                "url": archive_url,
                "sha256": digest,
                "downloaded_bytes": received,
                "action": "extracted",
            }
        )
    for folder, sources in source.links.items() if set(chosen) == set(source.parts) else ():
        _link_folder(root, folder, sources.split(), log)
    return records


def _check_single_file(path: Path) -> None:
    """Refuse what is plainly not the file asked for: empty, a web page, a zip container (every
    torch checkpoint since 1.6) that is cut short or fails its CRC check."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        raise ValueError(f"{path} is empty")
    if head.lstrip()[:1] == b"<":
        raise ValueError(
            f"{path} starts like an HTML page: the server probably sent a web page (error or login page), not the file"
        )
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            raise ValueError(
                f"{path} is a damaged or incomplete zip container ({err}): an interrupted download or partial copy?"
            ) from err
        if bad is not None:
            raise ValueError(f"{path} is damaged: member {bad!r} fails its CRC check")


def _local_source(source: str) -> Path | None:
    """The file a `fetch_file` source names when it is a local path or a file:// URL, else None."""
    if source.startswith("file://"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(source).path))
    if "://" in source:
        return None
    return Path(source)


def _copy_local(source: Path, target: Path, log: Callable[[str], None]) -> int:
    """Copy a local file to `target` via `target.part` -> bytes copied."""
    if not source.is_file():
        raise FileNotFoundError(f"source file not found: {source}")
    if target.exists() and source.resolve() == target.resolve():
        return 0
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"{target.name}: copying {source}")
    shutil.copyfile(source, part)
    os.replace(part, target)
    return target.stat().st_size


def fetch_file(
    url: str | None,
    out: str | Path,
    sha256: str | None = None,
    timeout: float = 30.0,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """Download (or copy) one file, e.g. a released checkpoint, to `out`, verified -> a record.

    `url`: http(s) (resumed with Range requests), a local path or a file:// URL (copied: a file the
    user downloaded by hand stays untouched), or None (the file must already be at `out`).
    The SHA-256 is checked against `sha256` when given, else against the lock file beside `out`
    (`<folder>/suite-data.lock.json`), and pinned there once the file passed every check. A file
    already at `out` is verified and used without network access.
    Record: {"file", "url", "sha256", "downloaded_bytes", "action": "present"|"downloaded"}.
    """
    out = Path(out)
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"--sha256 {sha256!r} is not 64 hexadecimal digits")
    if out.name in ("", ".", "..") or out.name == LOCK_NAME or out.name.endswith(".part"):
        raise ValueError(f"--out {out} cannot be a file name the suite uses itself or a folder")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cannot write {out}: {folder} is not a folder")
    with _folder_lock(folder, log):
        return _fetch_file_locked(url, out, sha256, timeout, log)


def _fetch_file_locked(
    url: str | None, out: Path, sha256: str | None, timeout: float, log: Callable[[str], None]
) -> dict:
    folder = out.parent
    pinned = _pinned(folder, out.name)
    if sha256 and pinned and sha256 != pinned:
        raise ChecksumError(
            f"--sha256 {sha256} for {out} contradicts {_lock_path(folder)}, which pins {pinned}; "
            f"edit or delete that entry if the file really changed"
        )
    expected = sha256 or pinned
    present = out.is_file()
    local = _local_source(url) if url else None
    if local is not None and not present:
        received = _copy_local(local, out, log)
    else:
        received = _obtain(url, out, str(out.name), timeout, log)
    digest = file_sha256(out)
    _check_digest(out, digest, expected, url, "--sha256" if sha256 else str(_lock_path(folder)))
    if expected is None:
        try:
            _check_single_file(out)
        except ValueError as err:
            raise ValueError(_reject_unpinned(out, err, folder)) from err
    if pinned is None:
        _record_lock(folder, out.name, digest, out.stat().st_size, url)
        log(f"{out.name}: recorded SHA-256 {digest} in {_lock_path(folder)}")
    return {
        "file": str(out),
        "url": url,
        "sha256": digest,
        "downloaded_bytes": received,
        "action": "present" if present else "downloaded",
    }
