"""Synchronization: workflow- and template-level mutexes and semaphores, with real host processes.

Each step appends ``start <name>`` and ``end <name>`` lines to a log in a shared directory; the log
shows how many ran at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import by_display, finished, phase, step, steps, wait_for, wf

from eventbridge.executors.host import HostExecutor
from eventbridge.models.core import ConfigMap
from eventbridge.models.references import ManifestReferences
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller


def logged(name: str, log: Path, seconds: float = 0.4, **extra: Any) -> dict[str, Any]:
    """A step template that logs its start and end around a short sleep."""
    script = f'echo "start $1" >> {log}; sleep {seconds}; echo "end $1" >> {log}'
    return {
        "name": name,
        "inputs": {"parameters": [{"name": "who"}]},
        "container": {"image": "alpine", "command": ["sh", "-c", script, "sh", "{{inputs.parameters.who}}"]},
        **extra,
    }


def most_at_once(log: Path) -> int:
    running = most = 0
    for line in log.read_text().splitlines():
        running += 1 if line.startswith("start") else -1
        most = max(most, running)
    return most


def limits(**data: str) -> ManifestReferences:
    config = ConfigMap.model_validate({"metadata": {"name": "my-config", "namespace": "default"}, "data": data})
    return ManifestReferences([config])


@pytest.fixture
async def sync_controller(store: SqliteStore, tmp_path: Path) -> AsyncIterator[Controller]:
    c = Controller(
        store, HostExecutor(tmp_path / "state"), write_interval=0.05, references=limits(workflow="2", template="2")
    )
    await c.start()
    yield c
    await c.stop()


def one_step(log: Path, who: str, synchronization: dict[str, Any], seconds: float = 0.4, **spec: Any) -> dict[str, Any]:
    manifest = wf(
        [logged("main", log, seconds)],
        arguments={"parameters": [{"name": "who", "value": who}]},
        synchronization=synchronization,
        **spec,
    )
    manifest["spec"]["templates"][0]["inputs"]["parameters"][0]["value"] = "{{workflow.parameters.who}}"
    return manifest


async def create_all(store: SqliteStore, manifests: list[dict[str, Any]]) -> list[str]:
    return [(await store.create(m))["metadata"]["name"] for m in manifests]


async def test_workflows_sharing_a_mutex_run_one_at_a_time(
    sync_controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "log"
    names = await create_all(store, [one_step(log, f"wf{i}", {"mutexes": [{"name": "m"}]}) for i in range(3)])
    waiting = await wait_for(store, names[2], lambda o: phase(o) == "Pending" and "Waiting for" in str(o["status"]))
    assert waiting["status"]["message"] == "Waiting for default/Mutex/m lock. Lock status: 0/1"
    holder = (waiting["status"]["synchronization"]["mutex"]["waiting"])[0]
    assert holder["mutex"] == "default/Mutex/m"
    assert holder["holder"] in {f"default/{n}" for n in names[:2]}
    done = [await wait_for(store, n, finished, within=20) for n in names]
    assert [phase(d) for d in done] == ["Succeeded"] * 3
    assert most_at_once(log) == 1
    assert all("synchronization" not in d["status"] for d in done)  # released when finished


async def test_a_semaphore_of_two_lets_two_workflows_run(
    sync_controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "log"
    sync = {"semaphores": [{"configMapKeyRef": {"name": "my-config", "key": "workflow"}}]}
    names = await create_all(store, [one_step(log, f"wf{i}", sync) for i in range(4)])
    seen_holding = False
    for _ in range(200):
        current = await store.get("Workflow", "default", names[0])
        holding = ((current.get("status") or {}).get("synchronization") or {}).get("semaphore", {}).get("holding")
        if holding:
            assert holding == [
                {"semaphore": "default/ConfigMap/my-config/workflow", "holders": [f"default/{names[0]}"]}
            ]
            seen_holding = True
            break
        await asyncio.sleep(0.02)
    assert seen_holding
    done = [await wait_for(store, n, finished, within=20) for n in names]
    assert [phase(d) for d in done] == ["Succeeded"] * 4
    assert most_at_once(log) == 2


async def test_a_template_mutex_serialises_parallel_steps(
    sync_controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "log"
    manifest = wf(
        [
            steps(
                "main",
                [
                    step(
                        "a",
                        "locked",
                        arguments={"parameters": [{"name": "who", "value": "{{item}}"}]},
                        withItems=[1, 2, 3],
                    ),
                ],
            ),
            logged("locked", log, synchronization={"mutex": {"name": "tmpl"}}),
        ]
    )
    (name,) = await create_all(store, [manifest])
    pending = await wait_for(
        store, name, lambda o: any(n.get("synchronizationStatus") for n in by_display(o).values()), within=10
    )
    waiting = [n for n in by_display(pending).values() if n.get("synchronizationStatus")]
    assert waiting[0]["phase"] == "Pending"
    assert waiting[0]["synchronizationStatus"] == {"waiting": "default/Mutex/tmpl"}
    assert waiting[0]["message"] == "Waiting for default/Mutex/tmpl lock. Lock status: 0/1"
    holding = pending["status"]["synchronization"]["mutex"]["holding"]
    assert len(holding) == 1 and holding[0]["holder"].startswith(f"default/{name}/{name}-")
    done = await wait_for(store, name, finished, within=20)
    assert phase(done) == "Succeeded"
    assert most_at_once(log) == 1
    assert all(n.get("phase") == "Succeeded" for n in by_display(done).values())


async def test_a_template_semaphore_limits_steps_across_workflows(
    sync_controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "log"
    sync = {"semaphores": [{"configMapKeyRef": {"name": "my-config", "key": "template"}}]}
    manifests = [
        wf(
            [
                steps(
                    "main",
                    [
                        step(
                            "a",
                            "locked",
                            arguments={"parameters": [{"name": "who", "value": "{{item}}"}]},
                            withItems=[f"{w}-1", f"{w}-2"],
                        )
                    ],
                ),
                logged("locked", log, seconds=0.3, synchronization=sync),
            ]
        )
        for w in ("x", "y")
    ]
    names = await create_all(store, manifests)
    done = [await wait_for(store, n, finished, within=20) for n in names]
    assert [phase(d) for d in done] == ["Succeeded"] * 2
    assert most_at_once(log) == 2


async def test_higher_priority_waits_less(sync_controller: Controller, store: SqliteStore, shared_dir: Path) -> None:
    log = shared_dir / "log"
    sync = {"mutexes": [{"name": "p"}]}
    first = (await create_all(store, [one_step(log, "first", sync)]))[0]
    await wait_for(store, first, lambda o: phase(o) == "Running")
    low, high = await create_all(store, [one_step(log, "low", sync), one_step(log, "high", sync, priority=5)])
    for name in (first, low, high):
        assert phase(await wait_for(store, name, finished, within=20)) == "Succeeded"
    starts = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")]
    assert starts == ["first", "high", "low"]


async def test_an_unreadable_semaphore_limit_fails_the_workflow(
    sync_controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    sync = {"semaphores": [{"configMapKeyRef": {"name": "my-config", "key": "missing"}}]}
    (name,) = await create_all(store, [one_step(shared_dir / "log", "x", sync)])
    done = await wait_for(store, name, finished)
    assert phase(done) == "Failed"
    assert done["status"]["message"].startswith("Failed to acquire the synchronization lock. failed to get semaphore")
    assert not (shared_dir / "log").exists()


async def test_a_waiting_workflow_can_be_terminated(
    sync_controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "log"
    sync = {"mutexes": [{"name": "t"}]}
    first, second = await create_all(store, [one_step(log, "a", sync), one_step(log, "b", sync)])
    waiting = await wait_for(store, second, lambda o: phase(o) == "Pending" and "Waiting" in str(o["status"]))
    waiting["spec"]["shutdown"] = "Terminate"
    await store.update(waiting)
    done = await wait_for(store, second, finished)
    assert phase(done) == "Failed"
    assert "Terminate" in done["status"]["message"]
    assert phase(await wait_for(store, first, finished, within=20)) == "Succeeded"


async def test_locks_survive_a_controller_restart(store: SqliteStore, tmp_path: Path, shared_dir: Path) -> None:
    log = shared_dir / "log"
    sync = {"mutexes": [{"name": "r"}]}
    first_controller = Controller(store, HostExecutor(tmp_path / "state"), write_interval=0.05)
    await first_controller.start()
    holder, waiter = await create_all(store, [one_step(log, "a", sync, seconds=1.5), one_step(log, "b", sync)])
    try:
        await wait_for(store, holder, lambda o: phase(o) == "Running" and log.exists())
        await wait_for(store, waiter, lambda o: phase(o) == "Pending" and "Waiting" in str(o["status"]))
    finally:
        await first_controller.stop()  # the holder's step is killed; its status keeps the lock
    stored = await store.get("Workflow", "default", holder)
    assert stored["status"]["synchronization"]["mutex"]["holding"] == [
        {"mutex": "default/Mutex/r", "holder": f"default/{holder}"}
    ]
    # Started again, the waiter must not take the lock the stored status says is held.
    second_controller = Controller(store, HostExecutor(tmp_path / "state2"), write_interval=0.05)
    await second_controller.start()
    try:
        done = [await wait_for(store, n, finished, within=20) for n in (holder, waiter)]
    finally:
        await second_controller.stop()
    assert [phase(d) for d in done] == ["Succeeded", "Succeeded"]
    lines = log.read_text().splitlines()
    # the holder started, was killed by the stop, ran again to its end; only then the waiter ran
    last_end_a = max(i for i, line in enumerate(lines) if line == "end a")
    assert lines.index("start b") > last_end_a
    assert lines.count("start b") == 1
