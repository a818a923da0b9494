"""A workflow-level ``spec.retryStrategy`` is the default retryStrategy of every template (Argo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workflow_helpers import by_display, finished, phase, sh, step, steps, wait_for, wf

from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller


def flaky(name: str, counter: Path, failures: int, **extra: Any) -> dict[str, Any]:
    """Fails its first ``failures`` runs (counted in a file), then succeeds."""
    script = f'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ "$n" -gt {failures} ]'
    return sh(name, script, **extra)


async def run(store: SqliteStore, obj: dict[str, Any]) -> dict[str, Any]:
    name = (await store.create(obj))["metadata"]["name"]
    return await wait_for(store, name, finished, within=20)


async def test_workflow_retry_strategy_applies_to_templates_without_their_own(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    manifest = wf(
        [
            # (without its own, the steps template would be retried as a whole too, as in Argo)
            steps("main", [step("a", "flaky"), step("b", "strict")], retryStrategy={"limit": "0"}),
            flaky("flaky", shared_dir / "a", failures=2),
            flaky("strict", shared_dir / "b", failures=1, retryStrategy={"limit": "0"}),
        ],
        retryStrategy={"limit": "2", "retryPolicy": "Always"},
    )
    done = await run(store, manifest)
    nodes = by_display(done)
    assert nodes["a"]["type"] == "Retry"
    assert nodes["a"]["phase"] == "Succeeded"
    assert [nodes[f"a({i})"]["phase"] for i in range(3)] == ["Failed", "Failed", "Succeeded"]
    # the template's own retryStrategy wins over the workflow's
    assert nodes["b"]["type"] == "Retry"
    assert nodes["b"]["phase"] == "Failed"
    assert "b(1)" not in nodes
    assert phase(done) == "Failed"


async def test_workflow_retry_strategy_limit_is_honoured(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    manifest = wf([flaky("main", shared_dir / "n", failures=5)], retryStrategy={"limit": 1})
    done = await run(store, manifest)
    assert phase(done) == "Failed"
    root = by_display(done)[done["metadata"]["name"]]
    assert root["type"] == "Retry"
    assert len(root["children"]) == 2
    assert (shared_dir / "n").read_text().strip() == "2"
