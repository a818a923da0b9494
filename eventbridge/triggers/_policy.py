"""Trigger policies shared by resource-creating triggers, and Go durations.

``policy.k8s`` (Argo's K8SResourcePolicy): after a resource is created, wait until its labels
include ``labels``, checking with ``backoff`` (Argo's Backoff; default 1 s x 1, 5 steps). When the
wait runs out: ``errorOnBackoffTimeout: true`` fails the trigger, otherwise it counts as done.
"""

from __future__ import annotations

import asyncio
import random

from eventbridge.errors import EventBridgeError, InvalidError, PermanentError
from eventbridge.models.eventsource import parse_go_duration as go_duration_seconds
from eventbridge.models.sensor import Backoff, K8SResourcePolicy
from eventbridge.store.base import Store


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (``1s``, ``500ms``, ``1h30m``, ``0``); raises InvalidError."""
    try:
        return go_duration_seconds(text.strip())
    except ValueError as exc:
        raise InvalidError(f"invalid duration {text!r}: {exc}; use Go syntax such as 1s, 500ms or 1h30m") from None


def backoff_duration(value: int | str | None, default: float = 1.0) -> float:
    """Argo's Backoff ``duration``: an integer is nanoseconds, a string a Go duration."""
    if value is None:
        return default
    if isinstance(value, int):
        return value / 1e9
    return parse_go_duration(value)


def backoff_delays(backoff: Backoff | None, *, steps: int = 5) -> list[float]:
    """The waits between attempts of a Backoff (``steps`` attempts -> ``steps - 1`` waits... plus
    one wait before the first check, as Argo's wait.ExponentialBackoff sleeps after each try)."""
    duration = backoff_duration(backoff.duration if backoff else None)
    factor = (backoff.factor if backoff and backoff.factor and backoff.factor > 0 else 1.0) or 1.0
    jitter = max(0.0, (backoff.jitter if backoff else None) or 0.0)
    count = max(1, (backoff.steps if backoff and backoff.steps else steps))
    delays = []
    for index in range(count):
        base = duration * factor**index
        delays.append(base + base * jitter * random.random())  # noqa: S311 - jitter, not security
    return delays


async def apply_k8s_policy(
    store: Store, kind: str, namespace: str, name: str, policy: K8SResourcePolicy | None
) -> str | None:
    """Wait for ``policy.labels`` on the object; ``None`` when there is no policy or it was met,
    otherwise a note (timeout without ``errorOnBackoffTimeout``). Raises PermanentError when the
    wait runs out and ``errorOnBackoffTimeout`` is set."""
    if policy is None or not policy.labels:
        return None
    wanted = policy.labels
    delays = backoff_delays(policy.backoff)
    labels: dict[str, str] = {}
    for delay in delays:
        try:
            obj = await store.get(kind, namespace, name)
        except EventBridgeError:
            obj = {}
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if all(labels.get(key) == value for key, value in wanted.items()):
            return None
        await asyncio.sleep(delay)
    message = f"{kind} {namespace}/{name} did not get labels {wanted} in time (has {labels})"
    if policy.error_on_backoff_timeout:
        raise PermanentError(f"policy: {message}")
    return f"policy: {message}; errorOnBackoffTimeout is false, so the trigger counts as successful"
