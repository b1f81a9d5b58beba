"""Worker process (internal) of `suite profile run` and `suite profile sweep`: `python -m
suite.profiling.worker REQUEST.json` runs one task (a profiled setting or an attention benchmark) in a
fresh interpreter, under the sweep's memory cap if it has one, and writes its rows atomically to the
result file the request names. Not a user entry point: `suite profile` writes the requests."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

from suite.files import write_text_atomic
from suite.profiling.attention import AttentionSpec, bench
from suite.profiling.measure import PointSpec, measure

GIB = 2**30


def run_task(kind: str, spec: dict[str, Any], trace_root: Path, process: str, command: str) -> list[dict[str, Any]]:
    """Rows of one task, run in this process ("worker" or "shared", see suite.profiling.memory)."""
    if kind == "profile":
        return [measure(PointSpec(**spec), trace_root, process=process, command=command)]
    if kind == "attention":
        return bench(AttentionSpec(**spec))
    raise ValueError(f"unknown task kind {kind!r}")


def main(request_path: str) -> int:
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    cap = request.get("memory_cap_gb")
    if cap:
        limit = int(cap * GIB)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))  # an allocation beyond it fails: an oom row
    rows = run_task(request["kind"], request["spec"], Path(request["trace_root"]), "worker", request["command"])
    if cap:
        for row in rows:
            if row.get("status") == "oom":
                row["error"] = f"over the sweep's memory_cap_gb={cap} per point: {row['error']}"
    document = {"kind": request["kind"], "spec": request["spec"], "rows": rows}
    write_text_atomic(Path(request["result"]), json.dumps(document, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m suite.profiling.worker REQUEST.json")
    sys.exit(main(sys.argv[1]))
