"""Kubernetes core kinds read in embedded mode (v1 Secret and ConfigMap) and the key selectors
Argo's specs use to point at them (``{name, key}``)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from eventbridge.models.base import ArgoModel, Finding, Manifest


class SecretKeySelector(ArgoModel):
    """Kubernetes ``SecretKeySelector``: one key of a Secret in the object's namespace."""

    name: str = ""
    key: str
    optional: bool | None = None


class ConfigMapKeySelector(ArgoModel):
    """Kubernetes ``ConfigMapKeySelector``: one key of a ConfigMap in the object's namespace."""

    name: str = ""
    key: str
    optional: bool | None = None


def decode_secret_value(encoded: str) -> str | None:
    """Decode one base64 ``data`` value of a Secret; ``None`` when it is not valid base64/UTF-8."""
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


class Secret(Manifest):
    """v1 Secret. ``data`` values are base64; ``stringData`` values are plain and win over ``data``."""

    api_version: str = "v1"
    kind: Literal["Secret"] = "Secret"
    API_VERSION = "v1"
    type: str | None = None
    immutable: bool | None = None
    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None

    def check(self) -> list[Finding]:
        # The message never contains the value.
        return [
            Finding(f"data.{key}", "not valid base64 (or not UTF-8 once decoded)")
            for key, encoded in (self.data or {}).items()
            if decode_secret_value(encoded) is None
        ]

    def decoded_data(self) -> dict[str, str]:
        """Decoded key -> value map (``stringData`` over ``data``); undecodable keys are left out."""
        merged: dict[str, str] = {}
        for key, encoded in (self.data or {}).items():
            decoded = decode_secret_value(encoded)
            if decoded is not None:
                merged[key] = decoded
        merged.update(self.string_data or {})
        return merged


class ConfigMap(Manifest):
    """v1 ConfigMap (``data`` only; ``binaryData`` is carried but not resolvable as text)."""

    api_version: str = "v1"
    kind: Literal["ConfigMap"] = "ConfigMap"
    API_VERSION = "v1"
    immutable: bool | None = None
    data: dict[str, str] | None = None
    binary_data: dict[str, Any] | None = None
