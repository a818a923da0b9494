"""Helpers shared by the source tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

from typing import Any

from eventbridge.errors import NotFoundError
from eventbridge.models.eventsource import EventSource


class DictReferences:
    """References answered from a dict (namespace, name, key) -> value."""

    def __init__(self, secrets: dict[tuple[str, str, str], str] | None = None) -> None:
        self.secrets = dict(secrets or {})

    def secret(self, namespace: str, name: str, key: str) -> str:
        try:
            return self.secrets[(namespace, name, key)]
        except KeyError:
            raise NotFoundError(f"secret {namespace}/{name} has no key {key!r}") from None

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} not found")


def eventsource(name: str, webhooks: dict[str, dict[str, Any]], **spec: Any) -> EventSource:
    return EventSource.model_validate(
        {"metadata": {"name": name, "namespace": "team"}, "spec": {"webhook": webhooks, **spec}}
    )


def make_eventsource(name: str, namespace: str = "team", **spec: Any) -> EventSource:
    """An EventSource with ``spec`` given by type key, e.g. ``github={"push": {...}}``."""
    return EventSource.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec})


async def wait_for(predicate: Any, within: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``predicate()`` (sync or async) until it is truthy; fail after ``within`` seconds."""
    import asyncio
    import inspect

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
