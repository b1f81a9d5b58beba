"""`suite data fetch` against an HTTP server started here on 127.0.0.1 serving archives built here."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from suite.cli import main
from suite.data.archives import ArchiveError, safe_extract
from suite.data.datasets import open_paired
from suite.data.fetch import FETCH_NAMES, LOCK_NAME, ChecksumError, fetch, fetch_file


class ArchiveServer:
    """Serves `files` (URL path -> bytes) with Range support; can break a response off half-way."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate_next: set[str] = set()  # paths whose next response stops after half the bytes
        self.no_length: set[str] = set()  # paths served without Content-Length (a cut then looks complete)
        self.headers: dict[str, dict[str, str]] = {}  # extra response headers by path
        # path -> (head, piece, pause): the first `head` bytes at once, then `piece` bytes every `pause` s
        self.pace: dict[str, tuple[int, int, float]] = {}
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
                if self.path in server.no_length:
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body) - start))
                for name, value in server.headers.get(self.path, {}).items():
                    self.send_header(name, value)
                self.end_headers()
                chunk = body[start:]
                if self.path in server.truncate_next:
                    server.truncate_next.discard(self.path)
                    chunk = chunk[: len(chunk) // 2]
                    self.close_connection = True
                if self.path in server.pace:
                    self._paced(chunk, *server.pace[self.path])
                    return
                self.wfile.write(chunk)
                server.bytes_sent += len(chunk)

            def _paced(self, chunk: bytes, head: int, piece: int, pause: float) -> None:
                self.close_connection = True
                try:
                    self.wfile.write(chunk[:head])
                    self.wfile.flush()
                    for offset in range(head, len(chunk), piece):
                        time.sleep(pause)
                        self.wfile.write(chunk[offset : offset + piece])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: what the tests want
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

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
    for subset in ("Set5", "Set14", "B100", "Urban100"):
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
    (tmp_path / LOCK_NAME).write_text(
        json.dumps(
            {
                "version": 1,
                "archives": {"benchmark.tar": {"sha256": "0" * 64, "size": 1, "url": "x", "recorded_utc": "x"}},
            }
        )
    )
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


@pytest.mark.parametrize(
    "kind, members, links, why",
    [
        ("tar", {"/abs.txt": b"x"}, None, "absolute path"),
        ("tar", {"a/../../up.txt": b"x"}, None, r"contains '\.\.'"),
        ("tar", {"ok.txt": b"x"}, {"link": "../../outside"}, "is a link"),
        ("tar", {"ok.txt": b"x"}, {"link": "ok.txt"}, "is a link"),
        ("zip", {"../up.txt": b"x"}, None, r"contains '\.\.'"),
        ("zip", {"/abs.txt": b"x"}, None, "absolute path"),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, kind, members, links, why):
    archive = tmp_path / f"bad.{kind}"
    archive.write_bytes(_tar(members, links) if kind == "tar" else _zip(members))
    dest = tmp_path / "a" / "dest"
    with pytest.raises(ValueError, match=why):
        safe_extract(archive, dest, tmp_path / "staging")
    assert not dest.exists() or list(dest.iterdir()) == []
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


# ---- archives are checked before anything is pinned or written (issue 10 items 8 and 9) ----


def _lock(root) -> dict:
    path = root / LOCK_NAME
    return json.loads(path.read_text())["archives"] if path.exists() else {}


@pytest.mark.parametrize("broken", ["html", "cut-without-length", "partial-copy"])
def test_broken_download_is_not_pinned_and_the_right_archive_then_works(server, tmp_path, broken):
    archive = _benchmark_tar()
    if broken == "html":
        server.files["/benchmark.tar"] = b"<!DOCTYPE html><html><body>Please log in</body></html>\n"
        why = "HTML page"
    elif broken == "cut-without-length":
        server.files["/benchmark.tar"] = archive
        server.no_length.add("/benchmark.tar")
        server.truncate_next.add("/benchmark.tar")
        why = "truncated|damaged"
    else:
        (tmp_path / "downloads").mkdir()
        (tmp_path / "downloads" / "benchmark.tar").write_bytes(archive[: len(archive) // 3])
        why = "truncated|damaged"
    with pytest.raises(ValueError, match=why) as err:
        fetch("Set5", tmp_path, mirror=server.base)
    assert "benchmark.tar" in str(err.value) and "moved aside" in str(err.value)
    assert _lock(tmp_path) == {}  # nothing pinned
    assert not (tmp_path / "benchmark").exists()

    server.files["/benchmark.tar"] = archive
    server.no_length.clear()
    records = fetch("Set5", tmp_path, mirror=server.base)
    assert records[0]["action"] == "extracted"
    assert _lock(tmp_path)["benchmark.tar"]["sha256"] == hashlib.sha256(archive).hexdigest()
    assert len(open_paired(tmp_path / "benchmark" / "Set5", 2)) == 2


def test_a_tar_ending_in_a_zip_member_is_read_as_the_tar(server, tmp_path):
    inner = _zip({"benchmark/Set5/HR/zipped.png": _png_bytes(7)})
    members = {f"benchmark/Set5/HR/im{i}.png": _png_bytes(i) for i in range(2)}
    members["benchmark/Set5/extra.zip"] = inner  # last member: the zip's end record sits near the tar's end
    server.files["/benchmark.tar"] = _tar(members)
    fetch("Set5", tmp_path, mirror=server.base)
    hr = tmp_path / "benchmark" / "Set5" / "HR"
    assert sorted(p.name for p in hr.iterdir()) == ["im0.png", "im1.png"]
    assert (tmp_path / "benchmark" / "Set5" / "extra.zip").read_bytes() == inner


def test_a_tar_cut_at_a_member_boundary_is_incomplete(tmp_path):
    whole = _tar({f"benchmark/Set5/HR/im{i}.png": _png_bytes(i) for i in range(3)})
    cut = whole[: 512 + (len(_png_bytes(0)) + 511) // 512 * 512]  # header + data of member 0, nothing more
    archive = tmp_path / "cut.tar"
    archive.write_bytes(cut)
    with tarfile.open(archive) as tar:  # the standard library reads it as a complete one-member tar
        assert tar.getnames() == ["benchmark/Set5/HR/im0.png"]
    with pytest.raises(ArchiveError, match=r"cut\.tar is truncated"):
        safe_extract(archive, tmp_path / "dest", tmp_path / "staging")
    assert not (tmp_path / "dest" / "benchmark").exists()


def test_a_zip_bomb_is_refused_before_inflating(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.bin", bytes(80 * 2**20))
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(buffer.getvalue())
    assert archive.stat().st_size < 2**20
    with pytest.raises(ValueError, match=r"refusing to extract .*bomb\.zip: its members expand to 83886080 bytes"):
        safe_extract(archive, tmp_path / "dest", tmp_path / "staging")
    assert not (tmp_path / "dest" / "bomb.bin").exists()


def test_an_archive_cannot_write_the_suites_own_files(server, tmp_path):
    members = {f"benchmark/{s}/HR/im0.png": _png_bytes(0) for s in ("Set5", "Set14", "B100", "Urban100")}
    members[LOCK_NAME] = b'{"version": 1, "archives": {}}'
    server.files["/benchmark.tar"] = _tar(members)
    with pytest.raises(ValueError, match=LOCK_NAME):
        fetch("benchmark", tmp_path, mirror=server.base)
    assert not (tmp_path / LOCK_NAME).exists() and not (tmp_path / "benchmark").exists()
    # without the dataset's member list, the explicit guard still holds
    archive = tmp_path / "x.tar"
    archive.write_bytes(_tar({"data/ok.png": _png_bytes(1), "downloads/benchmark.tar": b"swap"}))
    with pytest.raises(ArchiveError, match=r"would write the suite's own .*downloads"):
        safe_extract(archive, tmp_path, tmp_path / "staging", protected=(tmp_path / "downloads",))


def test_members_outside_the_datasets_folders_are_refused(server, tmp_path):
    server.files["/DIV2K_valid_HR.zip"] = _zip({"DIV2K_valid_HR/0801.png": _png_bytes(1), "other/x.png": _png_bytes(2)})
    with pytest.raises(ValueError, match=r"not the expected archive: member 'other/x\.png'"):
        fetch("DIV2K", tmp_path, parts=["valid_HR"], mirror=server.base)
    server.files["/DIV2K_valid_HR.zip"] = _zip({"DIV2K_valid_HR/readme.txt": b"no images"})
    with pytest.raises(ValueError, match=r"holds no image under DIV2K_valid_HR/"):
        fetch("DIV2K", tmp_path, parts=["valid_HR"], mirror=server.base)
    assert _lock(tmp_path) == {}


def _absurd_size_tar() -> bytes:
    data = bytearray(_tar({"benchmark/Set5/HR/im0.png": b"x" * 100}))
    info = tarfile.TarInfo("benchmark/Set5/HR/im0.png")
    info.size = 8**11 - 1  # 8 GiB declared in a 10 kB file
    data[:512] = info.tobuf(format=tarfile.USTAR_FORMAT)
    return bytes(data)


def _bad_crc_zip() -> bytes:
    name = "DIV2K_valid_HR/0801.png"
    data = bytearray(_zip({name: _png_bytes(1)}))
    data[30 + len(name) + 10] ^= 0xFF  # a byte of the stored member data, after its 30-byte local header
    return bytes(data)


@pytest.mark.parametrize("kind", ["truncated-tar", "absurd-size", "symlink-chain", "bad-crc", "truncated-zip"])
def test_damaged_archives_are_one_line_errors_naming_the_file(tmp_path, capsys, kind):
    tar = _tar({f"benchmark/Set5/HR/im{i}.png": _png_bytes(i) for i in range(2)})
    body, name, part = {
        "truncated-tar": (tar[:700], "benchmark.tar", "Set5"),
        "absurd-size": (_absurd_size_tar(), "benchmark.tar", "Set5"),
        "symlink-chain": (
            _tar(
                {"benchmark/Set5/HR/im0.png": _png_bytes(0)},
                {"benchmark/Set5/HR/a.png": "b.png", "benchmark/Set5/HR/b.png": "im0.png"},
            ),
            "benchmark.tar",
            "Set5",
        ),
        "bad-crc": (_bad_crc_zip(), "DIV2K_valid_HR.zip", "DIV2K"),
        "truncated-zip": (_zip({"DIV2K_valid_HR/0801.png": _png_bytes(1)})[:-30], "DIV2K_valid_HR.zip", "DIV2K"),
    }[kind]
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / name).write_bytes(body)
    argv = ["data", "fetch", part, "--root", str(tmp_path), "--url", "http://127.0.0.1:9/unused"]
    if part == "DIV2K":
        argv += ["--parts", "valid_HR"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # progress lines come first
    assert err.startswith("suite data: error: ")
    if kind == "bad-crc":
        assert "Bad CRC-32" in err
    assert str(tmp_path / "downloads" / name) in err
    assert _lock(tmp_path) == {}
    assert not (tmp_path / "benchmark").exists() and not (tmp_path / "DIV2K").exists()


@pytest.mark.parametrize("entry", ['"abc"', '{"sha256": 5}', '{"size": 3}', '["x"]'])
def test_a_lock_entry_of_the_wrong_type_is_a_one_line_error(tmp_path, capsys, entry):
    (tmp_path / LOCK_NAME).write_text('{"version": 1, "archives": {"benchmark.tar": %s}}' % entry)
    assert main(["data", "fetch", "Set5", "--root", str(tmp_path), "--url", "http://127.0.0.1:9/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("suite data: error: ") and "\n" not in err
    assert f"lock file {tmp_path / LOCK_NAME} is not valid" in err and "benchmark.tar" in err


# ---- Manga109, Flickr2K, DF2K (issue 9.4, 12.2, 12.4) ----


def test_fetch_accepts_the_names_the_workflow_uses():
    assert {"DIV2K", "Flickr2K", "DF2K", "benchmark", "Set5", "Set14", "B100", "Urban100", "Manga109"} <= set(
        FETCH_NAMES
    )


def test_manga109_from_an_explicit_url_or_placed_by_hand(server, tmp_path, capsys):
    members = {f"Manga109/HR/Title{i}.png": _png_bytes(i, 16) for i in range(2)}
    members.update({f"Manga109/LR_bicubic/X2/Title{i}x2.png": _png_bytes(10 + i, 8) for i in range(2)})
    server.files["/mirror/manga.tar"] = _tar(members)
    argv = ["data", "fetch", "Manga109", "--root", str(tmp_path / "a"), "--url", server.base + "/mirror/manga.tar"]
    assert main(argv) == 0
    assert f"use --data {tmp_path / 'a' / 'Manga109'}" in capsys.readouterr().out
    ds = open_paired(tmp_path / "a" / "Manga109", 2)
    assert (len(ds), ds.lr_source) == (2, "stored")

    # no URL: one line naming the file to place by hand; placed, it is used
    assert main(["data", "fetch", "Manga109", "--root", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "no public download URL" in err and str(tmp_path / "b" / "downloads" / "Manga109.zip") in err
    (tmp_path / "b" / "downloads").mkdir(parents=True, exist_ok=True)
    (tmp_path / "b" / "downloads" / "Manga109.zip").write_bytes(_zip(members))
    assert main(["data", "fetch", "Manga109", "--root", str(tmp_path / "b")]) == 0
    assert len(open_paired(tmp_path / "b" / "Manga109", 2)) == 2


def test_df2k_links_div2k_train_and_flickr2k_hr(server, tmp_path):
    server.files["/DIV2K_train_HR.zip"] = _zip({f"DIV2K_train_HR/000{i}.png": _png_bytes(i, 24) for i in (1, 2)})
    server.files["/Flickr2K.tar"] = _tar(
        {
            "Flickr2K/Flickr2K_HR/000001.png": _png_bytes(5, 24),
            "Flickr2K/Flickr2K_LR_bicubic/X2/000001x2.png": _png_bytes(6, 12),
        }
    )
    records = fetch("DF2K", tmp_path, mirror=server.base)
    assert [r["archive"] for r in records] == ["DIV2K_train_HR.zip", "Flickr2K.tar"]
    df2k = tmp_path / "DF2K"
    assert sorted(p.name for p in df2k.iterdir()) == ["000001.png", "0001.png", "0002.png"]
    assert (df2k / "000001.png").read_bytes() == _png_bytes(5, 24)
    assert not (tmp_path / "Flickr2K" / "Flickr2K_LR_bicubic").exists()  # HR only
    assert len(open_paired(df2k, 2)) == 3
    n = len(server.requests)
    fetch("DF2K", tmp_path, mirror=server.base)  # idempotent, no download
    fetch("Flickr2K", tmp_path, mirror=server.base)
    assert len(server.requests) == n


# ---- single files: released checkpoints (issue 12.2) ----


def _checkpoint_bytes() -> bytes:
    # a torch checkpoint's layout (one folder, data.pkl a pickle, members stored); the payload does not matter
    return _zip({"archive/data.pkl": b"\x80\x02" + bytes(range(256)) * 4000, "archive/version": b"3\n"})


def test_fetch_file_resumes_pins_and_reuses(server, tmp_path, capsys):
    body = _checkpoint_bytes()
    server.files["/models/SST_DF2K_X2.pth"] = body
    server.truncate_next.add("/models/SST_DF2K_X2.pth")
    out = tmp_path / "released" / "SST_DF2K_X2.pth"
    argv = ["data", "fetch-file", server.base + "/models/SST_DF2K_X2.pth", "--out", str(out)]
    assert main(argv) == 0
    assert out.read_bytes() == body
    assert server.requests[1] == ("/models/SST_DF2K_X2.pth", f"bytes={len(body) // 2}-")
    assert _lock(out.parent)["SST_DF2K_X2.pth"]["sha256"] == hashlib.sha256(body).hexdigest()
    n = len(server.requests)
    assert main(argv) == 0 and len(server.requests) == n  # present: verified, not downloaded
    assert "present" in capsys.readouterr().out
    # a changed upstream file fails against the pin
    out.unlink()
    server.files["/models/SST_DF2K_X2.pth"] = _zip({"archive/data.pkl": b"other"})
    assert main(argv) == 2
    assert "SHA-256 mismatch for SST_DF2K_X2.pth" in capsys.readouterr().err


def test_fetch_file_with_sha256_and_broken_downloads(server, tmp_path):
    body = _checkpoint_bytes()
    digest = hashlib.sha256(body).hexdigest()
    server.files["/m.pth"] = body
    out = tmp_path / "m.pth"
    with pytest.raises(ChecksumError, match="expected " + "1" * 64):
        fetch_file(server.base + "/m.pth", out, sha256="1" * 64)
    assert not out.exists() and (tmp_path / "m.pth.sha256-mismatch").is_file()
    assert fetch_file(server.base + "/m.pth", out, sha256=digest.upper())["sha256"] == digest
    with pytest.raises(ValueError, match="not 64 hexadecimal digits"):
        fetch_file(server.base + "/m.pth", out, sha256="abc")

    # a cut-short container (no Content-Length) and an HTML page are refused and not pinned
    server.files["/n.pth"] = body
    server.no_length.add("/n.pth")
    server.truncate_next.add("/n.pth")
    with pytest.raises(ValueError, match=r"n\.pth is a damaged or incomplete zip"):
        fetch_file(server.base + "/n.pth", tmp_path / "n.pth")
    server.files["/h.pth"] = b"<html>Not found</html>"
    with pytest.raises(ValueError, match=r"h\.pth is an HTML page .*, not a torch checkpoint"):
        fetch_file(server.base + "/h.pth", tmp_path / "h.pth")
    assert set(_lock(tmp_path)) == {"m.pth"}
    server.no_length.clear()
    assert fetch_file(server.base + "/n.pth", tmp_path / "n.pth")["action"] == "downloaded"


def test_fetch_file_offline_names_the_file_and_folder(tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ckpt" / "SSTLarge_Plus_DFLIP_X2.pth"
    assert main(["data", "fetch-file", f"http://127.0.0.1:{port}/x.pth", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("suite data: error: cannot download") and f"place it as {out} (folder {out.parent})" in err
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_checkpoint_bytes())  # placed by hand: verified and pinned without network
    assert main(["data", "fetch-file", f"http://127.0.0.1:{port}/x.pth", "--out", str(out)]) == 0
    assert "SSTLarge_Plus_DFLIP_X2.pth" in _lock(out.parent)


def test_fetch_file_copies_a_local_file_or_file_url_and_leaves_it(tmp_path):
    body = _checkpoint_bytes()
    mine = tmp_path / "my downloads" / "SST_DF2K_X2.pth"
    mine.parent.mkdir()
    mine.write_bytes(body)
    out = tmp_path / "released" / "a.pth"
    record = fetch_file(str(mine), out)
    assert record["action"] == "downloaded" and out.read_bytes() == body and mine.read_bytes() == body
    assert _lock(out.parent)["a.pth"]["sha256"] == hashlib.sha256(body).hexdigest()
    out2 = tmp_path / "released" / "b.pth"
    assert fetch_file(mine.as_uri(), out2)["sha256"] == hashlib.sha256(body).hexdigest()
    with pytest.raises(FileNotFoundError, match=r"source file not found: .*missing\.pth"):
        fetch_file(str(tmp_path / "missing.pth"), tmp_path / "released" / "c.pth")
    with pytest.raises(FileNotFoundError, match=r"source file .*my downloads is a folder, not a file$"):
        fetch_file(str(mine.parent), tmp_path / "released" / "c.pth")
    # an archive fetch from a file:// URL works too
    (tmp_path / "benchmark.tar").write_bytes(_benchmark_tar())
    assert fetch("Set5", tmp_path / "root", url=(tmp_path / "benchmark.tar").as_uri())[0]["action"] == "extracted"


def test_bench_resize_left_suite_data(capsys):
    with pytest.raises(SystemExit):
        main(["data", "bench-resize", "--images", "1"])
    assert "invalid choice: 'bench-resize'" in capsys.readouterr().err


def test_parallel_fetches_into_one_root_take_turns(server, tmp_path):
    from suite.data.fetch import _folder_lock

    server.files["/benchmark.tar"] = _benchmark_tar()
    waiting = threading.Event()
    result = {}

    def log(message):
        if message.startswith("waiting for another fetch"):
            waiting.set()

    def second():
        result["records"] = fetch("Set14", tmp_path, mirror=server.base, log=log)

    with _folder_lock(tmp_path, log):  # a first job holds the root
        worker = threading.Thread(target=second)
        worker.start()
        assert waiting.wait(10)
        assert server.requests == [] and not (tmp_path / "downloads").exists()  # nothing touched meanwhile
    worker.join(30)
    assert result["records"][0]["action"] == "extracted"


# ---- what gets pinned, timeouts, partial data, the folder's own files (issue 22 item 2) ----


RELEASED = Path(__file__).parent / "fixtures" / "official" / "rib_pixelshuffle_x2.pth"


def test_a_real_torch_checkpoint_is_pinned_and_a_zip_of_another_layout_is_not(server, tmp_path):
    server.files["/real.pth"] = RELEASED.read_bytes()
    assert fetch_file(server.base + "/real.pth", tmp_path / "real.pth")["action"] == "downloaded"
    assert _lock(tmp_path)["real.pth"]["sha256"] == hashlib.sha256(RELEASED.read_bytes()).hexdigest()
    cases = {
        "/loose.pth": _zip({"data.pkl": b"\x80\x02.", "other/version": b"3"}),  # no common folder
        "/notes.pth": _zip({"archive/notes.txt": b"hello"}),
        "/text.pth": _zip({"archive/data.pkl": b"not a pickle"}),
    }
    server.files.update(cases)
    for path in cases:
        with pytest.raises(ValueError, match=r"is a zip archive but not a torch checkpoint") as err:
            fetch_file(server.base + path, tmp_path / path[1:])
        assert f"received from {server.base + path}" in str(err.value)
    assert set(_lock(tmp_path)) == {"real.pth"}


UTF8_BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    "body, headers, error, why",
    [
        (UTF8_BOM + b"<!DOCTYPE html><html>Sign in</html>", {}, ValueError, "is an HTML page"),
        (b'  {"error": "file not found", "status": 404}', {}, ValueError, "is a JSON document"),
        (
            gzip.compress(_checkpoint_bytes()),
            {"Content-Encoding": "gzip"},
            RuntimeError,
            "sent the file gzip-encoded \\(Content-Encoding: gzip\\)",
        ),
    ],
    ids=["html-with-bom", "json-error-body", "gzip-encoded"],
)
def test_a_body_that_is_not_the_file_is_refused_naming_the_url_and_nothing_is_pinned(
    server, tmp_path, body, headers, error, why
):
    url = server.base + "/models/x.pth"
    server.files["/models/x.pth"] = body
    server.headers["/models/x.pth"] = headers
    with pytest.raises(error, match=why) as err:
        fetch_file(url, tmp_path / "x.pth")
    assert url in str(err.value) and _lock(tmp_path) == {} and not (tmp_path / "x.pth").exists()
    # the same bodies as a dataset archive
    server.files["/benchmark.tar"] = body
    server.headers["/benchmark.tar"] = headers
    with pytest.raises(error, match=why) as err:
        fetch("Set5", tmp_path / "root", mirror=server.base)
    assert f"{server.base}/benchmark.tar" in str(err.value)
    assert _lock(tmp_path / "root") == {} and not (tmp_path / "root" / "benchmark").exists()


def test_a_trickling_server_trips_the_read_timeout_and_the_data_so_far_is_resumed(server, tmp_path):
    body = _checkpoint_bytes()
    url = server.base + "/slow.pth"
    server.files["/slow.pth"] = body
    server.pace["/slow.pth"] = (300_000, 1, 0.05)  # then one byte every 0.05 s: each read is in time, the data not
    out = tmp_path / "slow.pth"
    with pytest.raises(RuntimeError, match=r"too slow: .* fewer than 65536 within 0\.5 s \(--timeout\)") as err:
        fetch_file(url, out, timeout=0.5)
    part = tmp_path / "slow.pth.part"
    kept = part.stat().st_size
    assert url in str(err.value) and f"kept in {part}" in str(err.value)
    assert kept >= 300_000 and part.read_bytes() == body[:kept]  # written as it arrived
    assert not out.exists() and _lock(tmp_path) == {}
    server.pace.clear()
    assert fetch_file(url, out, timeout=0.5)["downloaded_bytes"] == len(body) - kept
    assert server.requests[-1] == ("/slow.pth", f"bytes={kept}-")
    assert out.read_bytes() == body and not part.exists() and "slow.pth" in _lock(tmp_path)


def test_the_deadline_bounds_the_whole_download(server, tmp_path):
    server.files["/benchmark.tar"] = _benchmark_tar()
    server.pace["/benchmark.tar"] = (0, 1 << 16, 0.1)  # every 64 KiB in time, the whole far slower
    with pytest.raises(RuntimeError, match=r"benchmark\.tar passed its deadline of 0\.3 s \(--deadline\)"):
        fetch("Set5", tmp_path, mirror=server.base, timeout=5, deadline=0.3)
    assert (tmp_path / "downloads" / "benchmark.tar.part").stat().st_size > 0
    assert not (tmp_path / "benchmark").exists() and _lock(tmp_path) == {}


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "soon"])
@pytest.mark.parametrize("option", ["--timeout", "--deadline"])
def test_timeout_and_deadline_must_be_finite_positive_seconds(tmp_path, capsys, option, value):
    for command in (["fetch", "Set5", "--root", str(tmp_path)], ["fetch-file", "x.pth", "--out", str(tmp_path / "x")]):
        with pytest.raises(SystemExit) as exit_:
            main(["data", *command, f"{option}={value}"])
        assert exit_.value.code == 2
        assert f"argument {option}: {value!r} is not a" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--timeout must be a finite number of seconds > 0, got inf"):
        fetch_file("x.pth", tmp_path / "x.pth", timeout=float("inf"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", [LOCK_NAME, ".suite-fetch.flock", ".suite-data", "m.pth.part", "m.pth.rejected"])
def test_fetch_file_refuses_a_target_named_like_the_folders_own_files(server, tmp_path, name):
    server.files["/m.pth"] = _checkpoint_bytes()
    with pytest.raises(ValueError, match=rf"--out .*{re.escape(name)}: '.*' is the name of a file the suite keeps"):
        fetch_file(server.base + "/m.pth", tmp_path / name)
    assert server.requests == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["symlink", "folder"])
@pytest.mark.parametrize("own", [LOCK_NAME, ".suite-fetch.flock", "m.pth.part"])
def test_a_lock_or_part_file_that_is_a_symlink_or_a_folder_is_a_one_line_error(server, tmp_path, capsys, kind, own):
    server.files["/m.pth"] = _checkpoint_bytes()
    folder, elsewhere = tmp_path / "released", tmp_path / "elsewhere.json"
    folder.mkdir()
    elsewhere.write_text("{}")
    if kind == "symlink":
        (folder / own).symlink_to(elsewhere)
    else:
        (folder / own).mkdir()
    out = folder / "m.pth"
    assert main(["data", "fetch-file", server.base + "/m.pth", "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()  # progress lines, then the error in one line
    assert (
        err[-1].startswith("suite data: error: ") and f"{folder / own}: it is a {kind}, not a regular file" in err[-1]
    )
    assert elsewhere.read_text() == "{}" and not out.exists()
    assert (folder / own).is_symlink() == (kind == "symlink")


def _safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    return save({"proj.weight": np.arange(96, dtype=np.float32).reshape(4, 24)})


def test_fetch_file_pins_a_safetensors_checkpoint_only_when_it_is_whole(server, tmp_path):
    body = _safetensors_bytes()
    server.files["/m.safetensors"] = body
    record = fetch_file(server.base + "/m.safetensors", tmp_path / "m.safetensors")
    assert record["sha256"] == hashlib.sha256(body).hexdigest() == _lock(tmp_path)["m.safetensors"]["sha256"]
    # a web page and a cut-short file (its header names more bytes than arrived) are refused and not pinned
    server.files["/h.safetensors"] = b"<!DOCTYPE html><html>Sign in</html>"
    with pytest.raises(ValueError, match=r"h\.safetensors is an HTML page .*, not a safetensors checkpoint"):
        fetch_file(server.base + "/h.safetensors", tmp_path / "h.safetensors")
    server.files["/t.safetensors"] = body[:-7]
    with pytest.raises(ValueError, match=r"t\.safetensors is not a valid safetensors file \(.*not fully covered"):
        fetch_file(server.base + "/t.safetensors", tmp_path / "t.safetensors")
    assert set(_lock(tmp_path)) == {"m.safetensors"} and (tmp_path / "t.safetensors.rejected").is_file()
