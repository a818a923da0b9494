"""The HTTP load generator: a separate process with an aiohttp client (closed loops run on wrk
where it is installed: :mod:`bench.wrk`).

``python -m bench.loadgen SPEC.json`` reads a spec and writes a JSON summary to ``spec["output"]``.

Spec keys:

* ``url``, ``method`` (POST), ``headers`` (dict), ``body`` (text) or ``body_file``;
* ``unique_header``: a header set to ``<prefix>-<n>`` on request n (e.g. ``X-GitHub-Delivery``);
* ``mode``:

  - ``closed``: ``connections`` loops, each sends its next request when the last one is answered,
    for ``warmup`` + ``duration`` seconds; only requests sent after the warm-up are measured;
  - ``count``: the same loops until ``count`` requests were sent;
  - ``rate``: ``count`` requests started at a fixed ``rate`` per second (open loop), at most
    ``connections`` in flight (more wait for a connection, and their latency shows it);

* ``records``: also return ``[send, reply, status, id]`` per request (``time.monotonic()``, which
  on Linux is one clock for every process of the machine; ``id`` from a JSON answer's ``id``);
* ``acked_file``: write the ``id`` of every 2xx JSON answer to this file, one per line, instead
  (the caller then never holds tens of thousands of records in its own memory).

The summary has ``requests``, ``ok`` (2xx), ``errors`` (exceptions), ``statuses``, ``retry_after``
(answers carrying a Retry-After header), ``elapsed``, ``rps``, latency percentiles in ms and the
client's own CPU use (``cpu_percent``: near 100 means the client, not the server, was the limit),
and ``client`` (``wrk`` when wrk ran it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.url: str = spec["url"]
        self.method: str = spec.get("method", "POST")
        self.headers: dict[str, str] = dict(spec.get("headers") or {})
        if "body_file" in spec:
            self.body = Path(spec["body_file"]).read_bytes()
        else:
            self.body = str(spec.get("body", "")).encode()
        self.unique_header: str | None = spec.get("unique_header")
        self.prefix = f"{spec.get('prefix', 'req')}-{os.getpid()}"
        self.keep_records = bool(spec.get("records"))
        self.acked_file: str | None = spec.get("acked_file")
        self.acked: list[str] = []
        self.records: list[list[Any]] = []
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.errors = 0
        self.error_samples: list[str] = []
        self.retry_after = 0
        self.sent = 0
        self.measure_from = 0.0

    async def one(self, session: aiohttp.ClientSession, n: int) -> None:
        headers = self.headers
        if self.unique_header:
            headers = {**headers, self.unique_header: f"{self.prefix}-{n}"}
        send = time.monotonic()
        status = 0
        event_id: Any = None
        try:
            async with session.request(self.method, self.url, data=self.body, headers=headers) as response:
                payload = await response.read()
                status = response.status
                if "Retry-After" in response.headers:
                    self.retry_after += 1
                if (self.keep_records or self.acked_file) and payload[:1] == b"{":
                    try:
                        event_id = json.loads(payload).get("id")
                    except ValueError:
                        event_id = None
        except Exception as exc:  # every failure is counted, none stops the load
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{type(exc).__name__}: {exc}")
        reply = time.monotonic()
        if status:
            key = str(status)
            self.statuses[key] = self.statuses.get(key, 0) + 1
        if send >= self.measure_from:
            self.latencies.append((reply - send) * 1000.0)
        if self.keep_records:
            self.records.append([send, reply, status, event_id])
        if self.acked_file and 200 <= status < 300 and event_id:
            self.acked.append(str(event_id))

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        mode = spec.get("mode", "closed")
        connections = int(spec.get("connections", 64))
        connector = aiohttp.TCPConnector(limit=connections, force_close=False)
        timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout", 60)))
        cpu_start = time.process_time()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started = time.monotonic()
            if mode == "closed":
                warmup = float(spec.get("warmup", 1.0))
                self.measure_from = started + warmup
                stop_at = self.measure_from + float(spec.get("duration", 5.0))

                async def loop() -> None:
                    while time.monotonic() < stop_at:
                        self.sent += 1
                        await self.one(session, self.sent)

                await asyncio.gather(*(loop() for _ in range(connections)))
                measured_from = self.measure_from
            elif mode == "count":
                total = int(spec["count"])

                async def loop_count() -> None:
                    while self.sent < total:
                        self.sent += 1
                        await self.one(session, self.sent)

                await asyncio.gather(*(loop_count() for _ in range(connections)))
                measured_from = started
            elif mode == "rate":
                total = int(spec["count"])
                rate = float(spec["rate"])
                tasks: list[asyncio.Task[None]] = []
                for n in range(total):
                    due = started + n / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    self.sent += 1
                    tasks.append(asyncio.create_task(self.one(session, n + 1)))
                await asyncio.gather(*tasks)
                measured_from = started
            else:
                raise SystemExit(f"unknown mode {mode!r}")
            finished = time.monotonic()
        elapsed = max(finished - measured_from, 1e-9)
        cpu = time.process_time() - cpu_start
        measured = len(self.latencies)
        ok = sum(count for status, count in self.statuses.items() if status.startswith("2"))
        summary: dict[str, Any] = {
            "requests": self.sent,
            "measured": measured,
            "ok": ok,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "statuses": self.statuses,
            "retry_after": self.retry_after,
            "elapsed": elapsed,
            "rps": measured / elapsed,
            "p50_ms": _percentile(self.latencies, 50),
            "p90_ms": _percentile(self.latencies, 90),
            "p99_ms": _percentile(self.latencies, 99),
            "max_ms": max(self.latencies) if self.latencies else float("nan"),
            "cpu_percent": 100.0 * cpu / max(finished - started, 1e-9),
        }
        if self.keep_records:
            summary["records"] = self.records
        if self.acked_file:
            summary["acked"] = len(self.acked)
        return summary


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    from bench import wrk

    if wrk.available(spec):
        Path(spec["output"]).write_text(json.dumps(wrk.run(spec)))
        return
    load = Load(spec)
    summary = asyncio.run(load.run())
    if load.acked_file:
        Path(load.acked_file).write_text("".join(f"{event_id}\n" for event_id in load.acked))
    Path(spec["output"]).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
