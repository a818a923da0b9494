"""Memoization: template ``memoize`` with its cache kept as a ConfigMap in the (real SQLite) store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workflow_helpers import by_display, finished, phase, step, steps, wait_for, wf

from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller


def memoized(log: Path, key: str = "{{inputs.parameters.who}}", max_age: str | None = "1h") -> dict[str, Any]:
    memo: dict[str, Any] = {"key": key, "cache": {"configMap": {"name": "my-cache"}}}
    if max_age:
        memo["maxAge"] = max_age
    return {
        "name": "work",
        "memoize": memo,
        "inputs": {"parameters": [{"name": "who"}]},
        "container": {
            "image": "alpine",
            "command": [
                "sh",
                "-c",
                f'echo "ran $1" >> {log}; echo "hello $1" > /tmp/out',
                "sh",
                "{{inputs.parameters.who}}",
            ],
        },
        "outputs": {"parameters": [{"name": "greeting", "valueFrom": {"path": "/tmp/out"}}]},
    }


def manifest(log: Path, who: str, **memo: Any) -> dict[str, Any]:
    return wf(
        [
            steps(
                "main",
                [step("work", "work", arguments={"parameters": [{"name": "who", "value": who}]})],
                [
                    step(
                        "show",
                        "show",
                        arguments={
                            "parameters": [{"name": "text", "value": "{{steps.work.outputs.parameters.greeting}}"}]
                        },
                    )
                ],
            ),
            memoized(log, **memo),
            {
                "name": "show",
                "inputs": {"parameters": [{"name": "text"}]},
                "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.text}}"]},
            },
        ]
    )


async def run(store: SqliteStore, obj: dict[str, Any]) -> dict[str, Any]:
    name = (await store.create(obj))["metadata"]["name"]
    return await wait_for(store, name, finished, within=20)


async def test_a_second_run_with_the_same_key_reuses_the_outputs(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "log"
    first = await run(store, manifest(log, "ann"))
    assert phase(first) == "Succeeded"
    work = by_display(first)["work"]
    assert work["memoizationStatus"] == {"hit": False, "key": "ann", "cacheName": "my-cache"}
    cache = await store.get("ConfigMap", "default", "my-cache")
    assert cache["metadata"]["labels"] == {"workflows.argoproj.io/configmap-type": "Cache"}
    entry = json.loads(cache["data"]["ann"])
    assert entry["nodeID"] == work["id"]
    assert entry["outputs"]["parameters"][0]["value"] == "hello ann"

    second = await run(store, manifest(log, "ann"))
    assert phase(second) == "Succeeded"
    hit = by_display(second)["work"]
    assert hit["memoizationStatus"] == {"hit": True, "key": "ann", "cacheName": "my-cache"}
    assert hit["phase"] == "Succeeded"
    assert hit["outputs"]["parameters"][0]["value"] == "hello ann"
    assert by_display(second)["show"]["inputs"]["parameters"][0]["value"] == "hello ann"
    assert log.read_text().splitlines() == ["ran ann"]  # the step did not run again

    other = await run(store, manifest(log, "bob"))
    assert by_display(other)["work"]["memoizationStatus"]["hit"] is False
    assert log.read_text().splitlines() == ["ran ann", "ran bob"]


async def test_an_entry_older_than_max_age_is_a_miss(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "log"
    assert phase(await run(store, manifest(log, "old", max_age="10s"))) == "Succeeded"
    cache = await store.get("ConfigMap", "default", "my-cache")
    entry = json.loads(cache["data"]["old"])
    entry["creationTimestamp"] = "2020-01-01T00:00:00Z"
    cache["data"]["old"] = json.dumps(entry)
    await store.update(cache)
    again = await run(store, manifest(log, "old", max_age="10s"))
    assert by_display(again)["work"]["memoizationStatus"]["hit"] is False
    assert log.read_text().splitlines() == ["ran old", "ran old"]
    refreshed = json.loads((await store.get("ConfigMap", "default", "my-cache"))["data"]["old"])
    assert refreshed["creationTimestamp"] != "2020-01-01T00:00:00Z"  # the new outputs replaced it


async def test_an_unlabelled_configmap_and_a_bad_key_are_refused(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "log"
    bad_key = await run(store, manifest(log, "not a key"))
    work = by_display(bad_key)["work"]
    assert work["phase"] == "Error"
    assert "invalid cache key" in work["message"]
    await store.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "my-cache", "namespace": "default"}, "data": {}}
    )
    refused = await run(store, manifest(log, "ann"))
    assert by_display(refused)["work"]["phase"] == "Error"
    assert "refusing to use it" in by_display(refused)["work"]["message"]
    assert not log.exists()
