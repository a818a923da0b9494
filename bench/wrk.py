"""Closed-loop load with wrk (the C load generator) where it is installed.

The aiohttp client (:mod:`bench.loadgen`) saturates a core at about 7,000 requests/s here, so
against a bare aiohttp handler it measured the client, not the server (its ``cpu_percent`` was
~100). wrk, one thread, drives the same handler at ~16,000 requests/s. :func:`run` takes a
``closed`` spec of :mod:`bench.loadgen` (url, method, headers, body_file, unique_header,
connections, warmup, duration) and returns the same summary keys; a warm-up run is made and
discarded first. ``EVENTBRIDGE_BENCH_CLIENT=aiohttp`` keeps the Python client.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

#: wrk's summary as one JSON line (latencies in microseconds).
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRK-JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def available(spec: dict[str, Any]) -> bool:
    """Whether wrk runs this spec: a closed loop without per-request records, wrk on PATH."""
    if os.environ.get("EVENTBRIDGE_BENCH_CLIENT", "") == "aiohttp":
        return False
    simple = spec.get("mode") == "closed" and not spec.get("records") and not spec.get("acked_file")
    return simple and shutil.which("wrk") is not None


def _script(spec: dict[str, Any], body_file: Path) -> str:
    lines = [f"wrk.method = {json.dumps(spec.get('method', 'POST'))}"]
    lines.append(f"local f = io.open({json.dumps(str(body_file))}, 'rb'); wrk.body = f:read('*a'); f:close()")
    for name, value in (spec.get("headers") or {}).items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    unique = spec.get("unique_header")
    if unique:
        prefix = f"wrk-{uuid.uuid4().hex[:12]}"  # a fresh prefix per run: the warm-up's ids are not reused
        lines += [
            "local counter = 0",
            "request = function()",
            "  counter = counter + 1",
            f"  wrk.headers[{json.dumps(unique)}] = {json.dumps(prefix)} .. '-' .. counter",
            "  return wrk.format()",
            "end",
        ]
    return "\n".join(lines) + _DONE


def _wrk(spec: dict[str, Any], seconds: float, folder: Path) -> dict[str, Any]:
    if "body_file" in spec:
        body_file = Path(spec["body_file"])
    else:
        body_file = folder / "body"
        body_file.write_text(str(spec.get("body", "")))
    script = folder / f"load-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(_script(spec, body_file))
    command = ["wrk", "-t1", f"-c{int(spec['connections'])}", f"-d{max(1, round(seconds))}s", "--latency",
               "-s", str(script), spec["url"]]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRK-JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("WRK-JSON "))
            return result
    raise RuntimeError(f"wrk gave no summary (exit {done.returncode}): {done.stderr[-1000:] or done.stdout[-1000:]}")


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """A warm-up run, then the measured one; :mod:`bench.loadgen`'s summary keys."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        if float(spec.get("warmup", 0)) > 0:
            _wrk(spec, float(spec["warmup"]), Path(folder))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        measured = _wrk(spec, float(spec["duration"]), Path(folder))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = measured["duration_us"] / 1e6
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    failed = measured["connect"] + measured["read"] + measured["write"] + measured["timeout"]
    return {
        "client": "wrk",
        "requests": measured["requests"],
        "measured": measured["requests"],
        "ok": measured["requests"] - measured["status"],
        "errors": failed,
        "error_samples": [],
        "statuses": {},
        "retry_after": 0,
        "elapsed": elapsed,
        "rps": measured["requests"] / max(elapsed, 1e-9),
        "p50_ms": measured["p50_us"] / 1000.0,
        "p90_ms": measured["p90_us"] / 1000.0,
        "p99_ms": measured["p99_us"] / 1000.0,
        "max_ms": measured["max_us"] / 1000.0,
        "cpu_percent": 100.0 * cpu / max(elapsed, 1e-9),
    }
