"""`suite data fetch` against an HTTP server started here on 127.0.0.1 serving archives built here."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from suite.cli import main
from suite.data.datasets import open_paired
from suite.data.fetch import LOCK_NAME, ChecksumError, fetch, safe_extract


class ArchiveServer:
    """Serves `files` (URL path -> bytes) with Range support; can break a response off half-way."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate_next: set[str] = set()  # paths whose next response stops after half the bytes
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                wanted = self.headers.get("Range")
                if wanted:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if self.path in server.truncate_next:
                    server.truncate_next.discard(self.path)
                    chunk = chunk[: len(chunk) // 2]
                    self.close_connection = True
                self.wfile.write(chunk)
                server.bytes_sent += len(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> "ArchiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    with ArchiveServer() as srv:
        yield srv


def _png_bytes(seed: int, size: int = 16) -> bytes:
    buffer = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _benchmark_tar() -> bytes:
    members = {}
    for subset in ("Set5", "Set14"):
        for i in range(2):
            members[f"benchmark/{subset}/HR/im{i}.png"] = _png_bytes(i, 16)
            members[f"benchmark/{subset}/LR_bicubic/X2/im{i}x2.png"] = _png_bytes(10 + i, 8)
    # padding so the archive spans several read chunks of the client
    members["benchmark/Set5/README.txt"] = bytes(range(256)) * 12000
    return _tar(members)


def test_full_download_verify_extract_then_noop(server, tmp_path):
    archive = _benchmark_tar()
    server.files["/benchmark.tar"] = archive
    records = fetch("Set5", tmp_path, mirror=server.base + "/")
    assert records[0]["action"] == "extracted" and records[0]["downloaded_bytes"] == len(archive)
    lock = json.loads((tmp_path / LOCK_NAME).read_text())
    assert lock["archives"]["benchmark.tar"]["sha256"] == hashlib.sha256(archive).hexdigest()
    assert sorted(p.name for p in (tmp_path / "benchmark" / "Set5" / "HR").iterdir()) == ["im0.png", "im1.png"]
    assert not (tmp_path / "benchmark" / "Set14").exists()  # only the asked-for set is extracted
    assert len(open_paired(tmp_path / "benchmark" / "Set5", 2)) == 2

    n_requests = len(server.requests)
    again = fetch("Set5", tmp_path, mirror=server.base)
    assert again[0]["action"] == "present" and len(server.requests) == n_requests  # nothing downloaded

    # the whole benchmark reuses the archive already on disk: still no request
    fetch("benchmark", tmp_path, mirror=server.base)
    assert (tmp_path / "benchmark" / "Set14" / "HR" / "im1.png").is_file()
    assert len(server.requests) == n_requests


def test_checksum_mismatch_is_refused_and_the_file_moved_aside(server, tmp_path):
    server.files["/benchmark.tar"] = _benchmark_tar()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"version": 1, "archives": {
        "benchmark.tar": {"sha256": "0" * 64, "size": 1, "url": "x", "recorded_utc": "x"}}}))
    with pytest.raises(ChecksumError, match="SHA-256 mismatch for benchmark.tar.*expected 0000"):
        fetch("Set5", tmp_path, mirror=server.base)
    assert not (tmp_path / "downloads" / "benchmark.tar").exists()
    assert (tmp_path / "downloads" / "benchmark.tar.sha256-mismatch").is_file()
    assert not (tmp_path / "benchmark").exists()


def test_changed_upstream_file_fails_against_the_lock(server, tmp_path):
    server.files["/benchmark.tar"] = _benchmark_tar()
    fetch("Set5", tmp_path, mirror=server.base, remove_archives=True)
    assert not (tmp_path / "downloads" / "benchmark.tar").exists()
    server.files["/benchmark.tar"] = _tar({"benchmark/Set14/HR/x.png": _png_bytes(99)})
    with pytest.raises(ChecksumError):
        fetch("Set14", tmp_path, mirror=server.base)
    assert not (tmp_path / "benchmark" / "Set14").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    archive = _benchmark_tar()
    server.files["/benchmark.tar"] = archive
    server.truncate_next.add("/benchmark.tar")
    records = fetch("Set5", tmp_path, mirror=server.base)
    assert records[0]["action"] == "extracted"
    assert server.requests[0] == ("/benchmark.tar", None)
    assert server.requests[1] == ("/benchmark.tar", f"bytes={len(archive) // 2}-")
    assert server.bytes_sent == len(archive)  # nothing was sent twice
    assert (tmp_path / "downloads" / "benchmark.tar").read_bytes() == archive


def test_partial_file_of_a_killed_run_is_resumed(server, tmp_path):
    archive = _benchmark_tar()
    server.files["/benchmark.tar"] = archive
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "benchmark.tar.part").write_bytes(archive[:1000])
    fetch("Set5", tmp_path, mirror=server.base)
    assert server.requests == [("/benchmark.tar", "bytes=1000-")]
    assert server.bytes_sent == len(archive) - 1000
    assert not (downloads / "benchmark.tar.part").exists()


def test_offline_fails_at_once_naming_url_and_folder(tmp_path, capsys):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/benchmark.tar"
    start = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        fetch("Set5", tmp_path, url=url, timeout=5)
    assert time.monotonic() - start < 5
    assert url in str(err.value) and str(tmp_path / "downloads") in str(err.value)
    assert main(["data", "fetch", "Set5", "--root", str(tmp_path), "--url", url]) == 2
    assert "suite data: error: cannot download" in capsys.readouterr().err


def test_archive_with_parent_member_is_refused(server, tmp_path):
    server.files["/evil.tar"] = _tar({"benchmark/Set5/HR/ok.png": _png_bytes(1), "../evil.txt": b"pwned"})
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=r"refusing to extract .*'\.\./evil\.txt'"):
        fetch("benchmark", root, url=server.base + "/evil.tar")
    assert not (tmp_path / "evil.txt").exists()
    assert not (root / "benchmark").exists()  # nothing of the archive was written


@pytest.mark.parametrize("kind, members, links, why", [
    ("tar", {"/abs.txt": b"x"}, None, "absolute path"),
    ("tar", {"a/../../up.txt": b"x"}, None, r"contains '\.\.'"),
    ("tar", {"ok.txt": b"x"}, {"link": "../../outside"}, "links outside"),
    ("zip", {"../up.txt": b"x"}, None, r"contains '\.\.'"),
    ("zip", {"/abs.txt": b"x"}, None, "absolute path"),
])
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, kind, members, links, why):
    archive = tmp_path / f"bad.{kind}"
    archive.write_bytes(_tar(members, links) if kind == "tar" else _zip(members))
    dest = tmp_path / "a" / "dest"
    with pytest.raises(ValueError, match=why):
        safe_extract(archive, dest, tmp_path / "staging")
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "up.txt").exists() and not (tmp_path / "staging").exists()


def test_div2k_zip_part_through_the_cli(server, tmp_path, capsys):
    hr = {f"DIV2K_valid_HR/08{i:02d}.png": _png_bytes(i, 16) for i in (1, 2)}
    server.files["/DIV2K_valid_HR.zip"] = _zip(hr)
    argv = ["data", "fetch", "DIV2K", "--root", str(tmp_path), "--parts", "valid_HR", "--mirror", server.base]
    assert main(argv) == 0
    assert f"use --data {tmp_path / 'DIV2K'}" in capsys.readouterr().out
    ds = open_paired(tmp_path / "DIV2K", 2)
    assert (ds.name, len(ds), ds.lr_source) == ("DIV2K_valid", 2, "matlab-bicubic")
    assert main(argv) == 0 and len(server.requests) == 1


def test_http_error_names_url_and_manual_placement(server, tmp_path):
    with pytest.raises(RuntimeError, match=r"benchmark\.tar failed: HTTP 404.*placed as .*downloads"):
        fetch("Set5", tmp_path, mirror=server.base)
    assert not (tmp_path / "benchmark").exists()


def test_bad_requests_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'Set6'"):
        fetch("Set6", tmp_path)
    with pytest.raises(ValueError, match="unknown part"):
        fetch("DIV2K", tmp_path, parts=["test_HR"])
    with pytest.raises(ValueError, match="--url names one archive"):
        fetch("DIV2K", tmp_path, url="http://127.0.0.1:9/x.zip")


def test_archive_placed_by_hand_is_used_without_network(tmp_path):
    archive = _benchmark_tar()
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "benchmark.tar").write_bytes(archive)
    records = fetch("Set5", tmp_path, url="http://127.0.0.1:9/unreachable.tar")
    assert records[0]["downloaded_bytes"] == 0
    assert (tmp_path / "benchmark" / "Set5" / "HR" / "im0.png").is_file()
