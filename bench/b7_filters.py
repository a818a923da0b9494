"""B7: the cost of a sensor dependency's filter chain on a 2 KB GitHub push event.

* Baseline: ``json.loads`` of the event's bytes (the floor of any work on the event).
* Candidate ``chain``: :meth:`eventbridge.sensor.filters.DependencyFilter.apply` with a data filter
  (regex on ``body.ref``), a number data filter, an ``exprs`` filter over two fields and a context
  filter (the shape of a typical CI sensor). The filters are compiled once, as a running sensor
  compiles them when it starts; the event is already parsed (as the sensor gets it).
* Extra figures: ``envelope`` = ``Event.from_bytes`` (the bus read: JSON + CloudEvent envelope),
  ``lookup`` = one gjson-style path lookup.

Each worker times every operation in batches (median of the batch means, in microseconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from bench.common import Row, fmt, median, pick, ratio
from bench.payloads import event_data

DEPENDENCY: dict[str, Any] = {
    "name": "push",
    "eventSourceName": "github",
    "eventName": "repo",
    "filters": {
        "context": {"type": "github", "source": "github"},
        "data": [
            {"path": "body.ref", "type": "string", "value": ["^refs/heads/(main|release-.*)$"]},
            {"path": "body.stats.additions", "type": "number", "comparator": ">", "value": ["0"]},
        ],
        "exprs": [
            {
                "expr": 'branch == "refs/heads/main" && repo =~ "Codertocat/.*"',
                "fields": [
                    {"name": "branch", "path": "body.ref"},
                    {"name": "repo", "path": "body.repository.full_name"},
                ],
            }
        ],
    },
}


def _time_per_op(fn: Callable[[], Any], seconds: float) -> float:
    """Median of batch means, in microseconds."""
    for _ in range(200):  # warm caches (compiled regexes and expressions)
        fn()
    batch = 200
    means: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(means) < 5:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        means.append((time.perf_counter() - start) / batch * 1e6)
    return median(means)


class B7:
    id = "B7"
    title = "filter chain on a 2 KB payload vs json.loads"
    worker_timeout = 60.0

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        seconds = 0.3 if quick else 1.0
        return (1 if quick else 3), [("json", {"seconds": seconds}), ("chain", {"seconds": seconds})]

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        from eventbridge.events import Event
        from eventbridge.expr.paths import lookup
        from eventbridge.models.sensor import EventDependency
        from eventbridge.sensor.filters import DependencyFilter

        event = Event(id="d-1", source="github", subject="repo", type="github", namespace="ci", data=event_data(1))
        raw = event.to_bytes()
        body = json.dumps(event.data).encode()
        seconds = float(params["seconds"])
        if variant == "json":
            return {"bytes": len(body), "us": _time_per_op(lambda: json.loads(body), seconds)}
        compiled = DependencyFilter(EventDependency.model_validate(DEPENDENCY))
        result = compiled.apply(event)
        if not result.passed:
            raise RuntimeError(f"the benchmark filter does not pass: {result.reason}")
        return {
            "bytes": len(body),
            "us": _time_per_op(lambda: compiled.apply(event), seconds),
            "envelope_us": _time_per_op(lambda: Event.from_bytes(raw), seconds / 2),
            "lookup_us": _time_per_op(lambda: lookup(event.data, "body.repository.full_name"), seconds / 2),
        }

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        base = median(pick(runs["json"], "us"))
        chain = median(pick(runs["chain"], "us"))
        envelope = median(pick(runs["chain"], "envelope_us"))
        lookup = median(pick(runs["chain"], "lookup_us"))
        chain_ratio = ratio(chain, base)
        size = runs["json"][0]["bytes"] if runs["json"] else 0
        rows = [
            Row(
                "B7",
                f"filter chain (context + 2 data + exprs) on a {size} B event",
                f"json.loads {fmt(base, ' µs', 2)}",
                f"{fmt(chain, ' µs', 2)} ({fmt(1e6 / chain if chain else None, '/s', 0)} per core)",
                chain_ratio,
                "<= 2x",
                None if chain_ratio is None else chain_ratio <= 2.0,
                {"json_us": pick(runs["json"], "us"), "chain_us": pick(runs["chain"], "us")},
            ),
            Row(
                "B7",
                "bus read: Event.from_bytes (JSON + envelope)",
                f"json.loads {fmt(base, ' µs', 2)}",
                fmt(envelope, " µs", 2),
                ratio(envelope, base),
                "info",
                None,
                {"lookup_us": lookup},
            ),
        ]
        return rows
