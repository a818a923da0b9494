"""Helpers shared by the workflow tests: manifests, waiting on the real store."""

from __future__ import annotations

import asyncio
from typing import Any

from eventbridge.store.base import Store

Obj = dict[str, Any]


def wf(templates: list[Obj], entrypoint: str = "main", **spec: Any) -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "test-", "namespace": "default"},
        "spec": {"entrypoint": entrypoint, "templates": templates, **spec},
    }


def sh(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "container": {"image": "alpine", "command": ["sh", "-c", script]}, **extra}


def steps(name: str, *groups: list[Obj], **extra: Any) -> Obj:
    return {"name": name, "steps": [list(g) for g in groups], **extra}


def step(name: str, template: str, **extra: Any) -> Obj:
    return {"name": name, "template": template, **extra}


def by_display(obj: Obj) -> dict[str, Obj]:
    return {n["displayName"]: n for n in (obj.get("status") or {}).get("nodes", {}).values()}


def phase(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


async def wait_for(store: Store, name: str, predicate: Any, within: float = 10.0, kind: str = "Workflow") -> Obj:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        obj = await store.get(kind, "default", name)
        if predicate(obj):
            return obj
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; last status: {obj.get('status')}")
        await asyncio.sleep(0.02)


def finished(obj: Obj) -> bool:
    return phase(obj) in ("Succeeded", "Failed", "Error")


def node_running(display: str) -> Any:
    def check(obj: Obj) -> bool:
        node = by_display(obj).get(display)
        return node is not None and node.get("phase") == "Running"

    return check
