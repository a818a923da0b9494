"""Helpers for the server tests: manifests and waiting on the real store."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient

from eventbridge.store.base import Store

Obj = dict[str, Any]


def workflow(name: str = "", *, script: str = "echo hello", labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    """A one-step workflow (or the given spec) named ``name`` (generateName ``test-`` when empty)."""
    meta: Obj = {"namespace": "default"}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = "test-"
    if labels:
        meta["labels"] = labels
    body: Obj = {
        "entrypoint": "main",
        "templates": [{"name": "main", "container": {"image": "alpine", "command": ["sh", "-c", script]}}],
    }
    body.update(spec)
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta, "spec": body}


def steps_workflow(name: str) -> Obj:
    """Two sequential steps, then two parallel ones: a graph with layers."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "steps": [
                        [
                            {
                                "name": "first",
                                "template": "say",
                                "arguments": {"parameters": [{"name": "m", "value": "one"}]},
                            }
                        ],
                        [
                            {
                                "name": "left",
                                "template": "say",
                                "arguments": {"parameters": [{"name": "m", "value": "l"}]},
                            },
                            {
                                "name": "right",
                                "template": "say",
                                "arguments": {"parameters": [{"name": "m", "value": "r"}]},
                            },
                        ],
                    ],
                },
                {
                    "name": "say",
                    "inputs": {"parameters": [{"name": "m"}]},
                    "container": {"image": "alpine", "command": ["sh", "-c", "echo said {{inputs.parameters.m}}"]},
                },
            ],
        },
    }


def phase(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


async def wait_phase(
    store: Store, name: str, phases: set[str], seconds: float = 20.0, namespace: str = "default"
) -> Obj:
    """Poll the store until workflow ``name`` is in one of ``phases``."""
    async with asyncio.timeout(seconds):
        while True:
            obj = await store.get("Workflow", namespace, name)
            if phase(obj) in phases:
                return obj
            await asyncio.sleep(0.05)


async def read_sse(client: TestClient, path: str, count: int, seconds: float = 10.0) -> list[Obj]:
    """The first ``count`` ``data:`` messages of an event stream."""
    messages: list[Obj] = []
    async with asyncio.timeout(seconds):
        async with client.get(path, headers={"Accept": "text/event-stream"}) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    messages.append(json.loads(line[len("data: ") :]))
                    if len(messages) == count:
                        break
    return messages
