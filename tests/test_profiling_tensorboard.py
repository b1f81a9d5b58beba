"""Every trace `suite profile` writes loads in TensorBoard's PyTorch profiler plugin: a real
`tensorboard` server on 127.0.0.1, queried over HTTP, stopped at the end."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from suite.profiling import kernels
from suite.profiling.measure import PointSpec, measure

PLUGIN = "/data/plugin/pytorch_profiler"
LOAD_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tensorboard_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("tensorboard")
    found = str(beside_python) if beside_python.exists() else shutil.which("tensorboard")
    assert found, "the tensorboard command (a dependency of the suite) is not installed"
    return [found]


def get_json(base: str, route: str, **params: str):
    url = f"{base}{PLUGIN}{route}" + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=30) as response:
        raw = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            import gzip

            raw = gzip.decompress(raw)
        return json.loads(raw)


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> tuple[Path, list[str]]:
    """Three real runs: RPB training, RIB inference, no-bias training (tiny shapes, CPU)."""
    root = tmp_path_factory.mktemp("profile") / "traces"
    names = []
    for bias, backend, phase in [("rpb", "sdpa", "train"), ("rib", "auto", "infer"), ("none", "auto", "train")]:
        spec = PointSpec(
            preset="tiny",
            bias=bias,
            backend=backend,
            phase=phase,
            window=8,
            patch=16,
            batch=1,
            device="cpu",
            warmup=0,
            steps=1,
            profile_warmup=1,
            profile_active=1,
            threads=1,
            overrides={"dim": 16, "n_blocks": 1, "ranks": [4, 4]},
        )
        row = measure(spec, root)
        assert row["status"] == "ok"
        names.append(row["name"])
    return root, names


def test_every_trace_loads_in_the_tensorboard_profiler_plugin(traces, tmp_path):
    root, names = traces
    written = sorted(str(p.parent.relative_to(root)) for p in root.rglob("*.pt.trace.json*"))
    assert written == sorted(names)  # one trace per run, nothing else in the log dir

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, TMPDIR=str(tmp_path))  # the plugin's cache folder goes to the test's tmp
    server = subprocess.Popen(
        tensorboard_command() + ["--logdir", str(root), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        listed: dict = {}
        while time.monotonic() < deadline:
            assert server.poll() is None, f"tensorboard exited: {server.stderr.read()[-2000:]}"
            try:
                listed = get_json(base, "/runs")
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                listed = {}
            if sorted(listed.get("runs", [])) == sorted(names) and not listed.get("loading"):
                break
            time.sleep(1.0)
        assert sorted(listed.get("runs", [])) == sorted(names), f"plugin lists {listed} after {LOAD_TIMEOUT_S} s"

        for name in names:
            views = get_json(base, "/views", run=name)
            assert {"Overview", "Operator", "Trace"} <= set(views), (name, views)
            [worker] = get_json(base, "/workers", run=name, view="Overview")
            [span] = get_json(base, "/spans", run=name, worker=worker)
            overview = get_json(base, "/overview", run=name, worker=worker, span=span)
            assert overview["environments"][1]["value"] == "CPU"
            table = get_json(base, "/operation/table", run=name, worker=worker, span=span, group_by="Operation")
            listed_ops = {row["name"] for row in table["data"]}
            trace_ops, _ = kernels.read_trace_names(kernels.trace_files(root / name)[0])
            assert "aten::addmm" in listed_ops and listed_ops <= trace_ops
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stderr.close()
