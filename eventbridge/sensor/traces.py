"""Traces: why a sensor did or did not fire, per event, bounded by count and age.

The engine records one trace per event a sensor considered, and one per deferred firing
(debounce, a ``dlqTrigger``). :meth:`TraceLog.traces` returns them newest first as JSON-ready
dicts; the API serves them at ``GET /api/v1/sensors/{namespace}/{name}/traces``.

Shape of an event trace::

    {"sensor": "ns/name", "time": "2024-05-01T12:00:00.000000Z", "kind": "event",
     "event": {"id", "source", "subject", "type", "time"},
     "dependencies": [{"name", "matched": bool, "reason",
                       "filters": [{"kind": "data|exprs|context|time|script|transform",
                                    "passed": bool, "reason", "error"?}]}],
     "triggers": [{"name", "conditions": "a && b",
                   "state": {"a": "event-id" | null, ...},     # held events after this event
                   "status": "fired|failed|waiting|debounced|skipped|forwarded",
                   "result": "created Workflow ns/x" | "why it failed or waits",
                   "objects": ["Workflow ns/x"], "events": ["id", ...], "replayed": bool}]}

``forwarded``: stage 1 of an ``&&`` trigger in cluster mode sent the event to the sensor's
conditions topic (see :mod:`eventbridge.sensor.manager`). A ``"kind": "firing"`` trace (debounced
or dead-letter firing) has no ``dependencies`` and one entry in ``triggers``. A dependency whose
event source/name does not match the event is left out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

DEFAULT_MAX_PER_SENSOR = 1000
DEFAULT_MAX_AGE_SECONDS = 24 * 3600.0


class TraceLog:
    """A ring of traces per sensor: at most ``max_per_sensor`` entries, none older than
    ``max_age_seconds``. Thread-safe; cheap enough to call on every event."""

    def __init__(
        self, max_per_sensor: int = DEFAULT_MAX_PER_SENSOR, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    ) -> None:
        self.max_per_sensor = max_per_sensor
        self.max_age_seconds = max_age_seconds
        self._rings: dict[str, deque[tuple[float, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def record(self, namespace: str, sensor: str, trace: dict[str, Any]) -> None:
        key = f"{namespace}/{sensor}"
        now = time.monotonic()
        with self._lock:
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = deque(maxlen=self.max_per_sensor)
            ring.append((now, trace))
            self._expire(ring, now)

    def _expire(self, ring: deque[tuple[float, dict[str, Any]]], now: float) -> None:
        while ring and now - ring[0][0] > self.max_age_seconds:
            ring.popleft()

    def traces(self, namespace: str, sensor: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` traces of a sensor, newest first (empty for an unknown sensor)."""
        with self._lock:
            ring = self._rings.get(f"{namespace}/{sensor}")
            if ring is None:
                return []
            self._expire(ring, time.monotonic())
            items = list(ring)
        chosen = items[-limit:] if limit > 0 else []
        return [trace for _, trace in reversed(chosen)]

    def forget(self, namespace: str, sensor: str) -> None:
        """Drop a deleted sensor's traces."""
        with self._lock:
            self._rings.pop(f"{namespace}/{sensor}", None)
