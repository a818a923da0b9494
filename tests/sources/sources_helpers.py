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
