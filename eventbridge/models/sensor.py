"""Argo Events Sensor."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from eventbridge.models.base import ArgoModel, Manifest


class SensorSpec(ArgoModel):
    """Argo's SensorSpec (filled in by the sensor models)."""


class Sensor(Manifest):
    kind: Literal["Sensor"] = "Sensor"
    spec: SensorSpec = Field(default_factory=SensorSpec)
    status: dict[str, Any] | None = None
