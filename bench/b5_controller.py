"""B5: controller throughput with the host executor and no-op steps (``true``).

* Candidate ``controller``: ``SqliteStore`` + ``HostExecutor`` + ``Controller``; N Workflows are
  created in the store at once and the run ends when every one is Succeeded (seen on the store's
  watch). Two cases: (a) one-step workflows, (b) ten-step workflows (a ``steps`` template with
  ten sequential steps).
* Baseline ``executor``: the same ``HostExecutor`` running the same processes with
  ``asyncio.gather`` and the controller's default 32 parallel steps (sequential inside a
  ten-step workflow), without controller or store.

Store writes are the store's own commit counter (creates included).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Row, fmt, median, pick, ratio

NAMESPACE = "bench"
PARALLEL = 32


def workflow(name: str, steps: int) -> dict[str, Any]:
    noop: dict[str, Any] = {"name": "noop", "container": {"image": "alpine", "command": ["true"]}}
    if steps == 1:
        templates: list[dict[str, Any]] = [{"name": "main", "container": {"image": "alpine", "command": ["true"]}}]
    else:
        groups = [[{"name": f"s{i}", "template": "noop"}] for i in range(steps)]
        templates = [{"name": "main", "steps": groups}, noop]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"entrypoint": "main", "templates": templates},
    }


class B5:
    id = "B5"
    title = "controller: one-step and ten-step no-op workflows, host executor"
    worker_timeout = 300.0

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        one = {"workflows": 100 if quick else 1000, "steps": 1}
        ten = {"workflows": 10 if quick else 100, "steps": 10}
        return (1 if quick else 3), [
            ("executor-1", one),
            ("controller-1", one),
            ("executor-10", ten),
            ("controller-10", ten),
        ]

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        from eventbridge.executors.host import HostExecutor

        count, steps = int(params["workflows"]), int(params["steps"])
        with tempfile.TemporaryDirectory(prefix="bench-b5-") as folder:
            executor = HostExecutor(Path(folder) / "steps")
            if variant.startswith("executor"):
                return await self._executor(executor, count, steps)
            return await self._controller(Path(folder), executor, count, steps)

    async def _executor(self, executor: Any, count: int, steps: int) -> dict[str, Any]:
        from eventbridge.executors.base import StepSpec

        slots = asyncio.Semaphore(PARALLEL)
        phases: dict[str, int] = {}

        async def one_workflow(index: int) -> None:
            for step in range(steps):
                spec = StepSpec(
                    namespace=NAMESPACE,
                    workflow=f"wf-{index}",
                    node_id=f"wf-{index}-{step}",
                    pod_name=f"wf-{index}-{step}",
                    argv=["true"],
                    image="alpine",
                )
                async with slots:
                    result = await executor.run(spec)
                phases[result.phase] = phases.get(result.phase, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(one_workflow(i) for i in range(count)))
        wall = time.monotonic() - started
        return {
            "wall": wall,
            "workflows": count,
            "steps": count * steps,
            "phases": phases,
            "private_tmp": executor.private_tmp,
        }

    async def _controller(self, folder: Path, executor: Any, count: int, steps: int) -> dict[str, Any]:
        from eventbridge.store.sqlite import SqliteStore
        from eventbridge.workflow.controller import Controller

        store = SqliteStore(folder / "store.db")
        await store.start()
        controller = Controller(store, executor)
        await controller.start()
        watch = store.watch("Workflow", NAMESPACE)
        phases: dict[str, str] = {}
        finished = asyncio.Event()

        async def follow() -> None:
            async for change in watch:
                phase = (change.object.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed", "Error"):
                    phases[change.object["metadata"]["name"]] = phase
                    if len(phases) >= count:
                        finished.set()

        follower = asyncio.create_task(follow())
        try:
            writes_before = store.writes
            started = time.monotonic()
            await asyncio.gather(*(store.create(workflow(f"wf-{i}", steps)) for i in range(count)))
            created = time.monotonic()
            await asyncio.wait_for(finished.wait(), 240)
            wall = time.monotonic() - started
            writes = store.writes - writes_before
        finally:
            follower.cancel()
            await controller.stop()
            await store.stop()
        outcome: dict[str, int] = {}
        for phase in phases.values():
            outcome[phase] = outcome.get(phase, 0) + 1
        return {
            "wall": wall,
            "create_seconds": created - started,
            "workflows": count,
            "steps": count * steps,
            "phases": outcome,
            "store_writes": writes,
            "writes_per_workflow": writes / count,
        }

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        rows: list[Row] = []
        for steps in (1, 10):
            cand, base = runs[f"controller-{steps}"], runs[f"executor-{steps}"]
            wall_c, wall_b = median(pick(cand, "wall")), median(pick(base, "wall"))
            count = int(cand[0]["workflows"]) if cand else 0
            per_min = count / wall_c * 60 if wall_c == wall_c and wall_c else float("nan")
            succeeded = all(r["phases"].get("Succeeded", 0) == count for r in cand) if cand else False
            wall_ratio = ratio(wall_c, wall_b)
            label = "one-step" if steps == 1 else "ten-step"
            rows.append(
                Row(
                    "B5",
                    f"{count} {label} workflows: wall time",
                    f"executor alone {fmt(wall_b, ' s', 2)}",
                    f"{fmt(wall_c, ' s', 2)} ({fmt(per_min, ' wf/min')}, {fmt(count * steps / wall_c, ' steps/s')})",
                    wall_ratio,
                    "<= 2x executor; all Succeeded",
                    None if wall_ratio is None else wall_ratio <= 2.0 and succeeded,
                    {
                        "wall": {"controller": pick(cand, "wall"), "executor": pick(base, "wall")},
                        "phases": [r["phases"] for r in cand],
                    },
                )
            )
            if steps == 1:
                rows.append(
                    Row(
                        "B5",
                        f"{count} one-step workflows: throughput",
                        "Argo at defaults 270 wf/min",
                        fmt(per_min, " wf/min"),
                        ratio(per_min, 270.0),
                        ">= 600 wf/min",
                        None if per_min != per_min else per_min >= 600,
                    )
                )
                writes = median(pick(cand, "writes_per_workflow"))
                rows.append(
                    Row(
                        "B5",
                        "store writes per one-step workflow",
                        "Argo ~40 API writes",
                        fmt(writes, "", 1),
                        ratio(writes, 40.0),
                        "<= 10",
                        None if writes != writes else writes <= 10,
                    )
                )
        return rows
