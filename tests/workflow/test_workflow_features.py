"""Controller features: expressions, lifecycle hooks, retries of steps/dag, templateDefaults,
parallelism, step-level exit handlers. Real store, real host processes."""

from __future__ import annotations

from pathlib import Path

from workflow_helpers import by_display, finished, phase, sh, step, steps, wait_for, wf

from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller


async def run(store: SqliteStore, manifest: dict[str, object]) -> dict[str, object]:
    name = (await store.create(manifest))["metadata"]["name"]
    return await wait_for(store, name, finished, within=20)


async def test_expression_tags_and_output_expression(controller: Controller, store: SqliteStore) -> None:
    manifest = wf(
        [
            steps(
                "main",
                [step("flip-coin", "emit", arguments={"parameters": [{"name": "v", "value": "heads"}]})],
                [
                    step(
                        "heads",
                        "emit",
                        when="{{steps.flip-coin.outputs.result}} == heads",
                        arguments={"parameters": [{"name": "v", "value": "{{=sprig.upper('h') + 'eads'}}"}]},
                    ),
                    step("tails", "emit", when="{{steps.flip-coin.outputs.result}} == tails"),
                ],
                outputs={
                    "parameters": [
                        {
                            "name": "stepresult",
                            "valueFrom": {
                                "expression": "steps['flip-coin'].outputs.result == 'heads'"
                                " ? steps.heads.outputs.result : steps.tails.outputs.result"
                            },
                        }
                    ]
                },
            ),
            sh(
                "emit",
                "echo {{inputs.parameters.v}}",
                inputs={"parameters": [{"name": "v", "default": "none"}]},
            ),
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", done["status"]
    nodes = by_display(done)
    assert nodes["heads"]["outputs"]["result"] == "Heads"
    assert nodes["tails"]["phase"] == "Skipped"
    assert nodes[done["metadata"]["name"]]["outputs"]["parameters"] == [{"name": "stepresult", "value": "Heads"}]


async def test_lifecycle_hooks_workflow_and_step_level(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    log = shared_dir / "hooks"
    manifest = wf(
        [
            steps(
                "main",
                [
                    step(
                        "step-1",
                        "work",
                        hooks={
                            "running": {
                                "expression": 'steps["step-1"].status == "Running"',
                                "template": "note",
                                "arguments": {"parameters": [{"name": "m", "value": "s1-running"}]},
                            },
                            "success": {
                                "expression": 'steps["step-1"].status == "Succeeded"',
                                "template": "note",
                                "arguments": {"parameters": [{"name": "m", "value": "s1-succeeded"}]},
                            },
                            "failed": {
                                "expression": 'steps["step-1"].status == "Failed"',
                                "template": "note",
                                "arguments": {"parameters": [{"name": "m", "value": "s1-failed"}]},
                            },
                            "exit": {
                                "template": "note",
                                "arguments": {"parameters": [{"name": "m", "value": "s1-exit"}]},
                            },
                        },
                    )
                ],
            ),
            sh("work", "sleep 0.3"),
            sh("note", f"echo {{{{inputs.parameters.m}}}} >> {log}", inputs={"parameters": [{"name": "m"}]}),
        ],
        hooks={
            "exit": {
                "template": "note",
                "arguments": {"parameters": [{"name": "m", "value": "wf-exit-{{workflow.status}}"}]},
            },
            "running": {
                "expression": 'workflow.status == "Running"',
                "template": "note",
                "arguments": {"parameters": [{"name": "m", "value": "wf-running"}]},
            },
        },
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", done["status"]
    lines = log.read_text().split()
    assert sorted(lines) == sorted(["wf-running", "s1-running", "s1-succeeded", "s1-exit", "wf-exit-Succeeded"])
    assert lines[-1] == "wf-exit-Succeeded"
    names = {n["name"] for n in done["status"]["nodes"].values()}
    wf_name = done["metadata"]["name"]
    assert f"{wf_name}.hooks.running" in names
    assert f"{wf_name}[0].step-1.hooks.success" in names


async def test_retry_strategy_on_steps_template_and_retry_expression(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    counter = shared_dir / "tries"
    manifest = wf(
        [
            steps(
                "main",
                [step("inner", "flaky-steps")],
                [step("stopper", "exit-3")],
            ),
            steps("flaky-steps", [step("try", "flaky")], retryStrategy={"limit": "3"}),
            sh("flaky", f"echo x >> {counter}; test $(wc -l < {counter}) -ge 3"),
            sh(
                "exit-3",
                "exit 3",
                retryStrategy={"limit": "5", "expression": "asInt(lastRetry.exitCode) != 3"},
            ),
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Failed"
    nodes = by_display(done)
    assert nodes["inner"]["type"] == "Retry" and nodes["inner"]["phase"] == "Succeeded"
    assert [n for n in nodes if n.startswith("inner(")] == ["inner(0)", "inner(1)", "inner(2)"]
    assert counter.read_text().count("x") == 3
    # the expression stopped the retries after the first attempt
    assert [n for n in nodes if n.startswith("stopper(")] == ["stopper(0)"]


async def test_template_defaults_and_workflow_parallelism(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    trace = shared_dir / "trace"
    manifest = wf(
        [
            steps("main", [step("a", "slow"), step("b", "slow"), step("c", "slow"), step("d", "fails-once")]),
            sh("slow", f"echo start >> {trace}; sleep 0.15; echo end >> {trace}"),
            sh("fails-once", f"test -e {shared_dir}/once || {{ touch {shared_dir}/once; exit 1; }}"),
        ],
        parallelism=1,
        templateDefaults={"retryStrategy": {"limit": "1"}, "container": {"env": [{"name": "X", "value": "1"}]}},
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", done["status"]
    assert trace.read_text().split() == ["start", "end"] * 3
    nodes = by_display(done)
    assert nodes["d"]["type"] == "Retry" and "d(1)" in nodes


async def test_step_level_on_exit_and_continue_on(controller: Controller, store: SqliteStore, shared_dir: Path) -> None:
    manifest = wf(
        [
            steps(
                "main",
                [step("bad", "fail", onExit="cleanup", continueOn={"failed": True})],
                [step("after", "ok")],
            ),
            sh("fail", "exit 1"),
            sh("ok", "echo ok"),
            sh("cleanup", f"touch {shared_dir}/cleaned"),
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", done["status"]
    assert (shared_dir / "cleaned").exists()
    assert by_display(done)["bad.onExit"]["phase"] == "Succeeded"


async def test_fail_fast_on_steps_stops_starting_siblings(controller: Controller, store: SqliteStore) -> None:
    manifest = wf(
        [
            steps(
                "main",
                [
                    step(
                        "item",
                        "check",
                        withItems=[1, 2, 3, 4],
                        arguments={"parameters": [{"name": "n", "value": "{{item}}"}]},
                    )
                ],
                parallelism=1,
                failFast=True,
            ),
            sh("check", "test {{inputs.parameters.n}} -ne 2", inputs={"parameters": [{"name": "n"}]}),
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Failed"
    phases = {k: v["phase"] for k, v in by_display(done).items() if k.startswith("item(")}
    assert phases == {"item(0:1)": "Succeeded", "item(1:2)": "Failed", "item(2:3)": "Omitted", "item(3:4)": "Omitted"}
