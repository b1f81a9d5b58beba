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

A single file (`fetch_file`, e.g. a released `.pth` or `.safetensors`) gets the same resumable download and a
lock file beside it (`<folder>/suite-data.lock.json`).

Nothing is pinned in a lock file that is not the kind of file asked for: an archive must extract, a
checkpoint must be a torch zip archive or a complete safetensors file (`check_fetched_file`); an HTML or JSON body served with status 200
is named as such, a body the server encoded (Content-Encoding) is refused before it is written. Data is
written and flushed as it arrives (`.part`, resumed by the next run); every 64 KiB must arrive within
`timeout` and the whole download within `deadline`. The lock file, the folder lock and the `.part` file
must be regular files, and `fetch_file` refuses a target named like one of them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import http.client
import json
import math
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from suite import __version__
from suite.data.archives import ArchiveError, archive_kind, received_instead, safe_extract
from suite.data.io import is_image_file
from suite.files import SAFETENSORS_SUFFIX, check_regular_target, file_sha256, not_found_message, write_json_atomic

DIV2K_BASE_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
EDSR_BASE_URL = "https://cv.snu.ac.kr/research/EDSR/"
MIRROR_ENV = "SUITE_DATA_MIRROR"
LOCK_NAME = "suite-data.lock.json"
FLOCK_NAME = ".suite-fetch.flock"  # held while a fetch writes into the folder
MARKERS = ".suite-data"  # extraction markers and staging folders of a data root
# Suffixes of the files a fetch leaves beside its target: the download in progress, files moved aside.
OWN_SUFFIXES = (".part", ".rejected", ".sha256-mismatch")
CHECKPOINT_SUFFIXES = (".pth", ".pt", SAFETENSORS_SUFFIX)
BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")
DEFAULT_DEADLINE = 24 * 3600.0  # a whole download; a slower one resumes on the next run
_READ_SIZE = 64 << 10  # one read: what has arrived is on disk within a read, and must arrive within --timeout
_FSYNC_EVERY = 16 << 20
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
    if not path.exists() and not path.is_symlink():
        return {}
    check_lock_file(path)
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


def check_lock_file(path: Path) -> None:
    """Refuse a lock file (or the folder lock) that is a symlink, a folder or anything but a regular file: one
    line naming it, before anything is downloaded (reading through a symlink would pin another folder's file,
    and the atomic rewrite would replace the link)."""
    try:
        check_regular_target(path)
    except OSError as err:
        raise ValueError(f"{err}; move it away and run again") from None


@contextlib.contextmanager
def _folder_lock(folder: Path, log: Callable[[str], None]):
    """Hold an exclusive lock on `folder`'s downloads: parallel jobs (a workflow fetching several sets
    or checkpoints at once) take turns instead of writing one `.part` file or the lock file together."""
    folder.mkdir(parents=True, exist_ok=True)
    check_lock_file(folder / FLOCK_NAME)
    check_lock_file(_lock_path(folder))
    fd = os.open(folder / FLOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another fetch into {folder} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


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


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"--{name} must be a finite number of seconds > 0, got {value!r}")


def _stream_body(response, handle, url: str, part: Path, timeout: float, deadline_at: float, deadline: float) -> None:
    """Write the body to `handle` as it arrives: each read of at most _READ_SIZE bytes is written and flushed at
    once (a kill loses nothing the server sent) and fsynced every _FSYNC_EVERY bytes and at the end (a crash
    loses little). Every _READ_SIZE bytes must arrive within `timeout` seconds (a server trickling a byte a
    second trips it; each read is also bounded by the socket timeout) and the whole download by `deadline_at`
    (time.monotonic): either raises RuntimeError saying that the data so far is kept in `part`."""
    read = getattr(response, "read1", response.read)  # read1: what has arrived, without waiting for more
    window_start, window_bytes, unsynced = time.monotonic(), 0, 0
    try:
        while True:
            now = time.monotonic()
            if now > deadline_at:
                problem = f"passed its deadline of {deadline:g} s (--deadline)"
            elif now - window_start > timeout:
                problem = (
                    f"is too slow: {window_bytes} bytes in the last {now - window_start:.1f} s, fewer than "
                    f"{_READ_SIZE} within {timeout:g} s (--timeout)"
                )
            else:
                try:
                    block = read(_READ_SIZE)
                    problem = None
                except TimeoutError:
                    problem = f"stalled: nothing arrived for {timeout:g} s (--timeout)"
            if problem:
                raise RuntimeError(
                    f"download of {url} {problem}; the {handle.tell()} bytes received are kept in {part}, "
                    "run again to resume"
                )
            if not block:
                return
            handle.write(block)
            handle.flush()
            unsynced += len(block)
            if unsynced >= _FSYNC_EVERY:
                os.fsync(handle.fileno())
                unsynced = 0
            window_bytes += len(block)
            if window_bytes >= _READ_SIZE:
                window_start, window_bytes = time.monotonic(), 0
    finally:
        handle.flush()
        os.fsync(handle.fileno())


def download(
    url: str,
    target: Path,
    timeout: float = 30.0,
    log: Callable[[str], None] = lambda _: None,
    deadline: float = DEFAULT_DEADLINE,
) -> int:
    """Download `url` to `target` via `target.part`, resuming with Range requests; -> bytes received.

    A transfer that breaks off after making progress is resumed (up to a few times); a server that
    cannot be reached fails at once with an error naming the URL and the folder for manual placement.
    `timeout` bounds every read (see _stream_body), `deadline` the whole download; a body the server
    encoded (Content-Encoding: gzip), whose SHA-256 would not be the file's, is refused before it is written.
    """
    _check_seconds("timeout", timeout)
    _check_seconds("deadline", deadline)
    part = check_regular_target(target.with_name(target.name + ".part"))
    target.parent.mkdir(parents=True, exist_ok=True)
    deadline_at = time.monotonic() + deadline
    received = 0
    for attempt in range(_MAX_RESUMES + 1):
        have = part.stat().st_size if part.exists() else 0
        # identity: the bytes of the file itself, the ones its SHA-256 is of
        headers = {"User-Agent": f"rib-suite/{__version__}", "Accept-Encoding": "identity"}
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
            encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding != "identity":
                raise RuntimeError(
                    f"download of {url} refused: the server sent the file {encoding}-encoded (Content-Encoding: "
                    f"{encoding}) although only identity was accepted; nothing was written or recorded"
                )
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
            try:
                with open(part, mode) as handle:
                    _stream_body(response, handle, url, part, timeout, deadline_at, deadline)
            except (http.client.HTTPException, ConnectionError) as err:
                log(f"{target.name}: transfer interrupted after {part.stat().st_size} bytes ({err})")
        size = part.stat().st_size
        got = size - have
        received += got
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
    return root / MARKERS / f"{archive.filename}.{scope}.json"


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


def _mirror(mirror: str | None) -> str | None:
    """The mirror a fetch uses: the one given, else SUITE_DATA_MIRROR (an empty value is none)."""
    return mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None


def unsourced_archives(name: str, root: str | Path, url: str | None = None, mirror: str | None = None) -> list[Path]:
    """The archives of dataset `name` that `fetch` could neither download nor find placed by hand: no public URL,
    no `url`, no `mirror` (None: SUITE_DATA_MIRROR) and no file at root/downloads/<archive>. Each is given as the
    path a copy placed by hand takes; empty when `fetch(name, root, url=url, mirror=mirror)` has a source for
    every part. Lets a caller (the workflow) leave such a dataset out before a job fails on it."""
    downloads = Path(root) / "downloads"
    return [
        downloads / archive.filename
        for archive in SOURCES[name].parts.values()
        if _resolve_url(archive, url, _mirror(mirror)) is None and not (downloads / archive.filename).is_file()
    ]


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


def _reject_unpinned(path: Path, err: Exception, folder: Path, url: str | None) -> str:
    """Move a file that failed its checks aside (nothing was pinned) -> the error message saying so."""
    rejected = _moved_aside(path, ".rejected")
    return (
        f"{err} (received from {url or 'a copy placed by hand'}). Nothing was recorded in {_lock_path(folder)}; "
        f"the file was moved aside to {rejected}, so the next run downloads it again"
    )


def _obtain(
    url: str | None, target: Path, what: str, timeout: float, deadline: float, log: Callable[[str], None]
) -> int:
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
    return download(url, target, timeout=timeout, log=log, deadline=deadline)


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
    deadline: float | None = None,
) -> list[dict]:
    """Download, verify and extract dataset `name` under `root` -> one record per archive.

    Records: {"archive", "url", "sha256", "downloaded_bytes", "action": "present"|"extracted"}.
    A second run with the same arguments downloads and extracts nothing. An archive without a
    published SHA-256 is pinned in the lock file only after it extracted completely; one that does
    not is moved aside (`.rejected`), so the next run downloads it again.
    """
    deadline = DEFAULT_DEADLINE if deadline is None else deadline
    _check_seconds("timeout", timeout)
    _check_seconds("deadline", deadline)
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
    mirror = _mirror(mirror)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"data root {root} is not a folder")
    with _folder_lock(root, log):
        return _fetch_locked(name, source, chosen, root, url, mirror, (timeout, deadline), remove_archives, log)


def _fetch_locked(
    name: str,
    source: Source,
    chosen: list[str],
    root: Path,
    url: str | None,
    mirror: str | None,
    limits: tuple[float, float],
    remove_archives: bool,
    log: Callable[[str], None],
) -> list[dict]:
    protected = (_lock_path(root), root / "downloads", root / MARKERS, root / FLOCK_NAME)
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
        received = _obtain(archive_url, path, f"{name} ({archive.filename})", *limits, log)
        digest = file_sha256(path)
        _check_digest(path, digest, expected, archive_url, "the source" if archive.sha256 else str(_lock_path(root)))
        staging = root / MARKERS / f"staging-{archive.filename}"
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
            raise ArchiveError(_reject_unpinned(path, err, root, archive_url)) from err
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


def check_fetched_file(path: Path) -> None:
    """Refuse what is not the file asked for, by its kind (its suffix): a checkpoint (.pth, .pt) must be a
    torch zip archive (`_check_torch_zip`), a .safetensors one a complete safetensors file (`_check_safetensors`),
    an archive (.zip, .tar, ...) must open as one; anything else must at least not be empty, a web page or a JSON
    document. ValueError naming the file and what it holds."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    name = path.name.lower()
    if name.endswith(SAFETENSORS_SUFFIX):
        _check_safetensors(path, head)
    elif name.endswith(CHECKPOINT_SUFFIXES):
        _check_torch_zip(path, head)
    elif name.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        if archive_kind(path) == "zip":
            _check_zip(path)
    elif received_instead(head):
        raise ValueError(f"{path} is {received_instead(head)}")


def _check_zip(path: Path) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise ValueError(
            f"{path} is a damaged or incomplete zip container ({err}): an interrupted download or partial copy?"
        ) from err
    if bad is not None:
        raise ValueError(f"{path} is damaged: member {bad!r} fails its CRC check")
    return members


def _check_torch_zip(path: Path, head: bytes) -> None:
    """The layout torch.save writes (without unpickling, so without torch): one top folder holding data.pkl, a
    pickle, every member stored uncompressed with a correct CRC (`suite.checkpoint.load_torch_archive` checks
    the same before it reads the weights)."""
    if head[:4] != b"PK\x03\x04":
        what = received_instead(head) or f"a file starting with {head[:16]!r}"
        raise ValueError(f"{path} is {what}, not a torch checkpoint (a zip archive)")
    members = _check_zip(path)
    top = members[0].filename.split("/")[0] if members else ""
    names = {member.filename for member in members}
    if (
        f"{top}/data.pkl" not in names
        or any(not name.startswith(f"{top}/") for name in names)
        or any(member.compress_type != zipfile.ZIP_STORED for member in members)
    ):
        raise ValueError(
            f"{path} is a zip archive but not a torch checkpoint: torch.save writes one folder holding data.pkl, "
            "every member stored uncompressed"
        )
    with zipfile.ZipFile(path) as archive, archive.open(f"{top}/data.pkl") as pickled:
        if pickled.read(1) != b"\x80":  # the PROTO opcode every torch.save pickle starts with
            raise ValueError(f"{path} is a zip archive but not a torch checkpoint: its data.pkl is not a pickle")


def _check_safetensors(path: Path, head: bytes) -> None:
    """A safetensors file holding at least one tensor, its header parsed by the safetensors package (no torch
    needed): it refuses a header that does not parse or whose tensors do not cover the file exactly, so a
    truncated download or a web page fails here."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as tensors:
            names = list(tensors.keys())
    except (SafetensorError, OSError) as err:
        what = received_instead(head)
        raise ValueError(
            f"{path} is {what}, not a safetensors checkpoint"
            if what
            else f"{path} is not a valid safetensors file ({err}): an interrupted download or another format?"
        ) from err
    if not names:
        raise ValueError(f"{path} is a safetensors file holding no tensors, not a checkpoint")


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
        raise FileNotFoundError(not_found_message("source file", source, "a file"))
    if target.exists() and source.resolve() == target.resolve():
        return 0
    part = check_regular_target(target.with_name(target.name + ".part"))
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
    deadline: float | None = None,
) -> dict:
    """Download (or copy) one file, e.g. a released checkpoint, to `out`, verified -> a record.

    `url`: http(s) (resumed with Range requests), a local path or a file:// URL (copied: a file the
    user downloaded by hand stays untouched), or None (the file must already be at `out`).
    The SHA-256 is checked against `sha256` when given, else against the lock file beside `out`
    (`<folder>/suite-data.lock.json`), and pinned there once the file passed every check. A file
    already at `out` is verified and used without network access.
    Record: {"file", "url", "sha256", "downloaded_bytes", "action": "present"|"downloaded"}.
    """
    deadline = DEFAULT_DEADLINE if deadline is None else deadline
    _check_seconds("timeout", timeout)
    _check_seconds("deadline", deadline)
    out = Path(out)
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"--sha256 {sha256!r} is not 64 hexadecimal digits")
    if out.name in ("", ".", "..", LOCK_NAME, FLOCK_NAME, MARKERS) or out.name.endswith(OWN_SUFFIXES):
        raise ValueError(
            f"--out {out}: {out.name!r} is the name of a file the suite keeps in the download folder ({LOCK_NAME}, "
            f"{FLOCK_NAME}, {MARKERS}, *{', *'.join(OWN_SUFFIXES)}) or of a folder; choose another name"
        )
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cannot write {out}: {folder} is not a folder")
    with _folder_lock(folder, log):
        return _fetch_file_locked(url, out, sha256, (timeout, deadline), log)


def _fetch_file_locked(
    url: str | None, out: Path, sha256: str | None, limits: tuple[float, float], log: Callable[[str], None]
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
        received = _obtain(url, out, str(out.name), *limits, log)
    digest = file_sha256(out)
    _check_digest(out, digest, expected, url, "--sha256" if sha256 else str(_lock_path(folder)))
    if pinned is None:  # what gets pinned must be the kind of file asked for, whoever vouches for its hash
        try:
            check_fetched_file(out)
        except ValueError as err:
            raise ValueError(_reject_unpinned(out, err, folder, url)) from err
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
