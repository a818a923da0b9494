"""Argo Events EventSource."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from eventbridge.models.base import ArgoModel, Manifest


class EventSourceSpec(ArgoModel):
    """Argo's EventSourceSpec (filled in by the event source models)."""


class EventSource(Manifest):
    kind: Literal["EventSource"] = "EventSource"
    spec: EventSourceSpec = Field(default_factory=EventSourceSpec)
    status: dict[str, Any] | None = None
