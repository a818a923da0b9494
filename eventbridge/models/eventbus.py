"""Argo Events EventBus."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from eventbridge.models.base import ArgoModel, Manifest


class EventBusSpec(ArgoModel):
    """Argo's EventBusSpec."""


class EventBus(Manifest):
    kind: Literal["EventBus"] = "EventBus"
    spec: EventBusSpec = Field(default_factory=EventBusSpec)
    status: dict[str, Any] | None = None
