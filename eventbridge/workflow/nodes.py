"""Node naming, ids and small status helpers shared by the workflow operator.

Node names follow Argo: the root node is named after the workflow, step groups ``wf[0]``, steps
``wf[0].step``, DAG tasks ``wf.task``, loop items ``step(0:value)``, retry attempts ``step(0)``.
Ids are derived from names only (``<wf>-<fnv-1a 32 of the name>``, the root's id is the workflow
name), so a controller that restarts finds finished nodes again under the same ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

Node = dict[str, Any]

COMPLETED = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
SUCCESSFUL = frozenset({"Succeeded", "Skipped", "Omitted"})

PHASE_LABEL = "workflows.argoproj.io/phase"
COMPLETED_LABEL = "workflows.argoproj.io/completed"


def now() -> str:
    """An RFC 3339 UTC timestamp with second precision, as Kubernetes writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fnv32a(text: str) -> int:
    """FNV-1a, 32 bits."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def node_id(workflow: str, name: str) -> str:
    """The id of the node called ``name`` in ``workflow`` (the root node's id is the workflow name)."""
    if name == workflow:
        return workflow
    return f"{workflow}-{fnv32a(name)}"


def pod_name(workflow: str, template: str, name: str) -> str:
    """Argo's v2 pod name: ``<workflow>-<template>-<hash of the node name>`` (kept to 63 chars)."""
    suffix = str(fnv32a(name))
    prefix = f"{workflow}-{template}" if template else workflow
    if len(prefix) + 1 + len(suffix) > 63:
        prefix = prefix[: 63 - 1 - len(suffix)].rstrip("-.")
    return f"{prefix}-{suffix}"


def item_label(item: Any) -> str:
    """How a loop item appears in a node name: ``a`` for scalars, ``k:v,k2:v2`` for objects."""
    if isinstance(item, dict):
        return ",".join(f"{k}:{item_text(v)}" for k, v in sorted(item.items()))
    return item_text(item)


def item_text(item: Any) -> str:
    """A JSON value as Argo substitutes it: strings as-is, the rest as compact JSON."""
    if isinstance(item, str):
        return item
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float) and item.is_integer():
        return str(int(item))
    return json.dumps(item, separators=(",", ":"))


def parse_duration(text: str | int | float | None) -> float | None:
    """Seconds from a Go/Argo duration (``30``, ``30s``, ``1m30s``, ``2h``, ``500ms``), None if empty."""
    if text is None or text == "":
        return None
    if isinstance(text, int | float):
        return float(text)
    raw = text.strip()
    try:
        return float(raw)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    total = 0.0
    pos = 0
    while pos < len(raw):
        start = pos
        while pos < len(raw) and (raw[pos].isdigit() or raw[pos] == "."):
            pos += 1
        number = raw[start:pos]
        unit_start = pos
        while pos < len(raw) and not (raw[pos].isdigit() or raw[pos] == "."):
            pos += 1
        unit = raw[unit_start:pos]
        if not number or unit not in units:
            raise ValueError(f"invalid duration {text!r}")
        total += float(number) * units[unit]
    return total
