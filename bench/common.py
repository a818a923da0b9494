"""What every scenario shares: result rows, statistics, the environment, worker and load processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass
class Row:
    """One line of the table: a measured figure against its baseline and its goal."""

    id: str
    scenario: str
    baseline: str
    candidate: str
    ratio: float | None
    goal: str
    met: bool | None  # None: not measured / not applicable here
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scenario(Protocol):
    """A benchmark: variants run by workers, A B A B, then summarised into rows."""

    id: str
    title: str

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        """(pairs, [(variant, params), ...] of one round: baseline(s) first, candidate last)."""
        ...

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one variant in this (worker) process; a JSON-able result."""
        ...

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        """Rows from every run of every variant (lists in run order)."""
        ...


# -- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]  # drop NaN
    return statistics.median(clean) if clean else float("nan")


def pick(runs: list[dict[str, Any]], key: str) -> list[float]:
    return [float(run[key]) for run in runs if run.get(key) is not None]


def ratio(a: float, b: float) -> float | None:
    if b == 0 or a != a or b != b:
        return None
    return a / b


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None or value != value:
        return "n/a"
    if abs(value) >= 1000 and digits <= 1:
        return f"{value:,.0f}{unit}"
    return f"{value:.{digits}f}{unit}"


# -- environment ----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name in ("aiohttp", "pydantic", "pydantic-core", "croniter", "aiokafka", "yarl", "multidict", "uvloop"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "libraries": versions,
        "load_generator": "bench.loadgen (aiohttp client, separate process)",
    }


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from /proc."""
    path = Path(f"/proc/{pid or 'self'}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_logging() -> None:
    """Warnings only: the benchmarks measure the engines, not the log handlers."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.WARNING)


class NoReferences:
    """References with the given Secrets only (``(namespace, name, key) -> value``)."""

    def __init__(self, secrets: dict[tuple[str, str, str], str] | None = None) -> None:
        self.secrets = dict(secrets or {})

    def secret(self, namespace: str, name: str, key: str) -> str:
        from eventbridge.errors import NotFoundError

        try:
            return self.secrets[(namespace, name, key)]
        except KeyError:
            raise NotFoundError(f"secret {namespace}/{name} key {key} not found") from None

    def config_map(self, namespace: str, name: str, key: str) -> str:
        from eventbridge.errors import NotFoundError

        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


# -- processes ------------------------------------------------------------------------------------


def run_worker(scenario: str, variant: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one variant in a fresh ``python -m bench.worker`` and return its JSON result."""
    spec = json.dumps({"scenario": scenario, "variant": variant, "params": params})
    started = time.monotonic()
    # The worker's temporary files live under a folder removed here, whatever way it ended.
    scratch = tempfile.mkdtemp(prefix="bench-worker-")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.worker", spec],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "TMPDIR": scratch},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{scenario}/{variant} timed out after {timeout:.0f}s"}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        return {"error": f"{scenario}/{variant} failed (exit {done.returncode}): " + " | ".join(tail)}
    result: dict[str, Any] = json.loads(lines[-1])
    result["worker_seconds"] = round(time.monotonic() - started, 2)
    return result


async def run_loadgen(spec: dict[str, Any], limit: float) -> dict[str, Any]:
    """Run ``python -m bench.loadgen`` (a separate process) with ``spec``; its JSON summary.

    Per-request records, when asked for, come back through a temporary file (``records``).
    """
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        spec_file = Path(folder) / "spec.json"
        out_file = Path(folder) / "out.json"
        spec_file.write_text(json.dumps({**spec, "output": str(out_file)}))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loadgen",
            str(spec_file),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"load generator timed out after {limit:.0f}s") from None
        if process.returncode != 0 or not out_file.exists():
            raise RuntimeError(f"load generator failed: {stderr.decode()[-2000:]}")
        result: dict[str, Any] = json.loads(out_file.read_text())
        return result


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in the background (peak and series)."""

    def __init__(self, interval: float = 0.05, probe: Callable[[], int] = rss_bytes) -> None:
        self.interval = interval
        self.probe = probe
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None
        self.extra: Callable[[], int] | None = None
        self.peak_extra_at_peak = 0

    async def _loop(self) -> None:
        while True:
            value = self.probe()
            if value > self.peak:
                self.peak = value
                if self.extra is not None:
                    self.peak_extra_at_peak = self.extra()
            self.samples.append((time.monotonic(), value))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
