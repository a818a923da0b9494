"""Kubernetes core kinds read in embedded mode: v1 Secret and ConfigMap."""

from __future__ import annotations

from typing import Literal

from eventbridge.models.base import Manifest


class Secret(Manifest):
    api_version: str = "v1"
    kind: Literal["Secret"] = "Secret"
    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None


class ConfigMap(Manifest):
    api_version: str = "v1"
    kind: Literal["ConfigMap"] = "ConfigMap"
    data: dict[str, str] | None = None
