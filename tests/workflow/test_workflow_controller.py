"""The workflow controller with the real SqliteStore and the real HostExecutor."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from eventbridge.executors.host import HostExecutor
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller

Obj = dict[str, Any]


# store, shared_dir and controller fixtures come from conftest.py


def wf(templates: list[Obj], entrypoint: str = "main", **spec: Any) -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "test-", "namespace": "default"},
        "spec": {"entrypoint": entrypoint, "templates": templates, **spec},
    }


def sh(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "container": {"image": "alpine", "command": ["sh", "-c", script]}, **extra}


def by_display(obj: Obj) -> dict[str, Obj]:
    return {n["displayName"]: n for n in obj["status"]["nodes"].values()}


async def wait_for(store: SqliteStore, name: str, predicate: Any, within: float = 10.0) -> Obj:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        obj = await store.get("Workflow", "default", name)
        if predicate(obj):
            return obj
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; last status: {obj.get('status')}")
        await asyncio.sleep(0.02)


async def test_sequential_and_parallel_steps_pass_parameters(controller: Controller) -> None:
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            "name": "gen",
                            "template": "echo",
                            "arguments": {"parameters": [{"name": "m", "value": "{{workflow.parameters.greeting}}"}]},
                        }
                    ],
                    [
                        {
                            "name": "left",
                            "template": "echo",
                            "arguments": {"parameters": [{"name": "m", "value": "L-{{steps.gen.outputs.result}}"}]},
                        },
                        {
                            "name": "right",
                            "template": "write",
                            "arguments": {"parameters": [{"name": "m", "value": "R-{{steps.gen.outputs.result}}"}]},
                        },
                    ],
                    [
                        {
                            "name": "last",
                            "template": "echo",
                            "arguments": {
                                "parameters": [
                                    {
                                        "name": "m",
                                        "value": "{{steps.right.outputs.parameters.out}}+{{workflow.name}}",
                                    }
                                ]
                            },
                        }
                    ],
                ],
            },
            {
                "name": "echo",
                "inputs": {"parameters": [{"name": "m"}]},
                "container": {"image": "x", "command": ["echo", "{{inputs.parameters.m}}"]},
            },
            {
                "name": "write",
                "inputs": {"parameters": [{"name": "m"}]},
                "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out.txt"}}]},
                "script": {
                    "image": "python",
                    "command": ["python3"],
                    "source": "open('/tmp/out.txt', 'w').write('{{inputs.parameters.m}}')",
                },
            },
        ],
        arguments={"parameters": [{"name": "greeting", "value": "hello"}]},
    )
    result = await controller.run(manifest)
    status = result["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == "4/4"
    assert status["startedAt"] and status["finishedAt"]
    nodes = by_display(result)
    name = result["metadata"]["name"]
    assert nodes["gen"]["outputs"]["result"] == "hello"
    assert nodes["left"]["outputs"]["result"] == "L-hello"
    assert nodes["right"]["outputs"]["parameters"][0]["value"] == "R-hello"
    assert nodes["last"]["outputs"]["result"] == f"R-hello+{name}"
    assert nodes["gen"]["name"] == f"{name}[0].gen"
    assert nodes[name]["type"] == "Steps" and nodes[name]["id"] == name
    assert nodes["[1]"]["type"] == "StepGroup"
    assert {nodes["left"]["id"], nodes["right"]["id"]} == set(nodes["[1]"]["children"])
    assert nodes["gen"]["children"] == [nodes["[1]"]["id"]]
    assert nodes[name]["outboundNodes"] == [nodes["last"]["id"]]
    assert result["metadata"]["labels"]["workflows.argoproj.io/phase"] == "Succeeded"
    assert result["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"


async def test_parallel_steps_writing_same_tmp_path_get_their_own_values(controller: Controller) -> None:
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            "name": "a",
                            "template": "w",
                            "arguments": {"parameters": [{"name": "v", "value": "A"}]},
                        },
                        {
                            "name": "b",
                            "template": "w",
                            "arguments": {"parameters": [{"name": "v", "value": "B"}]},
                        },
                    ]
                ],
            },
            sh(
                "w",
                "echo {{inputs.parameters.v}} > /tmp/x; sleep 0.3",
                inputs={"parameters": [{"name": "v"}]},
                outputs={"parameters": [{"name": "x", "valueFrom": {"path": "/tmp/x"}}]},
            ),
        ]
    )
    result = await controller.run(manifest)
    nodes = by_display(result)
    assert nodes["a"]["outputs"]["parameters"][0]["value"] == "A"
    assert nodes["b"]["outputs"]["parameters"][0]["value"] == "B"


async def test_failing_step_fails_the_workflow(controller: Controller) -> None:
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [[{"name": "bad", "template": "bad"}], [{"name": "never", "template": "bad"}]],
            },
            sh("bad", "echo oops >&2; exit 2"),
        ]
    )
    result = await controller.run(manifest)
    status = result["status"]
    nodes = by_display(result)
    assert status["phase"] == "Failed"
    assert nodes["bad"]["phase"] == "Failed"
    assert nodes["bad"]["outputs"]["exitCode"] == "2"
    assert "exit code 2" in nodes["bad"]["message"]
    assert "never" not in nodes
    assert "failed" in status["message"]
    log = await controller.executor.read_log("default", result["metadata"]["name"], nodes["bad"]["id"])
    assert "oops" in log


async def test_command_not_found_puts_os_error_in_node_message(controller: Controller) -> None:
    manifest = wf([{"name": "main", "container": {"image": "x", "command": ["no-such-binary-eventbridge"]}}])
    result = await controller.run(manifest)
    node = by_display(result)[result["metadata"]["name"]]
    assert result["status"]["phase"] in ("Failed", "Error")
    assert "no-such-binary-eventbridge" in node["message"]
    assert "not found" in node["message"]


async def test_invalid_spec_ends_in_error(controller: Controller) -> None:
    result = await controller.run(wf([sh("main", "true")], entrypoint="missing"))
    assert result["status"]["phase"] == "Error"
    assert "missing" in result["status"]["message"]
    result = await controller.run(wf([{"name": "main", "steps": [[{"name": "s", "template": "nope"}]]}]))
    assert result["status"]["phase"] == "Error"
    assert "unknown template 'nope'" in result["status"]["message"]
    result = await controller.run(
        wf([{"name": "main", "inputs": {"parameters": [{"name": "p"}]}, "container": {"command": ["true"]}}])
    )
    assert result["status"]["phase"] in ("Error", "Failed")
    assert "inputs.parameters.p" in result["status"]["message"]


async def test_when_with_items_and_with_param(controller: Controller) -> None:
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            "name": "flip",
                            "template": "say",
                            "arguments": {"parameters": [{"name": "m", "value": "heads"}]},
                        }
                    ],
                    [
                        {
                            "name": "h",
                            "template": "say",
                            "when": "{{steps.flip.outputs.result}} == heads",
                            "arguments": {"parameters": [{"name": "m", "value": "H"}]},
                        },
                        {
                            "name": "t",
                            "template": "say",
                            "when": "{{steps.flip.outputs.result}} == tails",
                            "arguments": {"parameters": [{"name": "m", "value": "T"}]},
                        },
                        {
                            "name": "gen",
                            "template": "say",
                            "arguments": {"parameters": [{"name": "m", "value": '[{"a":"x"},{"a":"y"}]'}]},
                        },
                    ],
                    [
                        {
                            "name": "each",
                            "template": "say",
                            "withParam": "{{steps.gen.outputs.result}}",
                            "arguments": {"parameters": [{"name": "m", "value": "{{item.a}}"}]},
                        }
                    ],
                    [
                        {
                            "name": "lit",
                            "template": "say",
                            "withItems": ["p", "q"],
                            "arguments": {"parameters": [{"name": "m", "value": "{{item}}"}]},
                        }
                    ],
                    [
                        {
                            "name": "seq",
                            "template": "say",
                            "withSequence": {"count": "2", "format": "n%02d"},
                            "arguments": {"parameters": [{"name": "m", "value": "{{item}}"}]},
                        }
                    ],
                ],
            },
            {
                "name": "say",
                "inputs": {"parameters": [{"name": "m"}]},
                "container": {"command": ["echo", "{{inputs.parameters.m}}"]},
            },
        ]
    )
    result = await controller.run(manifest)
    assert result["status"]["phase"] == "Succeeded", result["status"]
    nodes = by_display(result)
    assert nodes["h"]["phase"] == "Succeeded"
    assert nodes["t"]["phase"] == "Skipped" and nodes["t"]["type"] == "Skipped"
    assert nodes["each(0:a:x)"]["outputs"]["result"] == "x"
    assert nodes["each(1:a:y)"]["outputs"]["result"] == "y"
    assert nodes["lit(1:q)"]["outputs"]["result"] == "q"
    assert nodes["seq(1:n01)"]["outputs"]["result"] == "n01"


async def test_dag_with_dependencies_and_depends(controller: Controller) -> None:
    manifest = wf(
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {
                            "name": "A",
                            "template": "say",
                            "arguments": {"parameters": [{"name": "m", "value": "a"}]},
                        },
                        {"name": "B", "template": "fail", "dependencies": ["A"]},
                        {
                            "name": "C",
                            "template": "say",
                            "dependencies": ["A"],
                            "arguments": {"parameters": [{"name": "m", "value": "{{tasks.A.outputs.result}}c"}]},
                        },
                        {
                            "name": "D",
                            "template": "say",
                            "depends": "B.Failed && C",
                            "arguments": {"parameters": [{"name": "m", "value": "d"}]},
                        },
                        {
                            "name": "E",
                            "template": "say",
                            "depends": "B.Succeeded",
                            "arguments": {"parameters": [{"name": "m", "value": "e"}]},
                        },
                    ]
                },
            },
            {
                "name": "say",
                "inputs": {"parameters": [{"name": "m"}]},
                "container": {"command": ["echo", "{{inputs.parameters.m}}"]},
            },
            sh("fail", "exit 1"),
        ]
    )
    result = await controller.run(manifest)
    nodes = by_display(result)
    assert nodes["C"]["outputs"]["result"] == "ac"
    assert nodes["B"]["phase"] == "Failed"
    assert nodes["D"]["phase"] == "Succeeded"
    assert nodes["E"]["phase"] == "Omitted"
    assert result["status"]["phase"] == "Succeeded", result["status"]
    name = result["metadata"]["name"]
    assert nodes["A"]["name"] == f"{name}.A"
    assert set(nodes["A"]["children"]) == {nodes["B"]["id"], nodes["C"]["id"]}


async def test_dag_failure_fails_the_workflow(controller: Controller) -> None:
    manifest = wf(
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "A", "template": "fail"},
                        {"name": "B", "template": "ok", "dependencies": ["A"]},
                    ]
                },
            },
            sh("fail", "exit 1"),
            sh("ok", "true"),
        ]
    )
    result = await controller.run(manifest)
    assert result["status"]["phase"] == "Failed"
    assert "B" not in by_display(result)


async def test_retry_strategy_retries_until_success(controller: Controller, shared_dir: Path) -> None:
    counter = shared_dir / "count"
    manifest = wf(
        [
            sh("main", f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 3 ]", retryStrategy={"limit": 5}),
        ]
    )
    result = await controller.run(manifest)
    assert result["status"]["phase"] == "Succeeded"
    nodes = result["status"]["nodes"]
    root = nodes[result["metadata"]["name"]]
    assert root["type"] == "Retry"
    assert len(root["children"]) == 3
    assert counter.read_text().count("x") == 3


async def test_retry_limit_exhausted(controller: Controller) -> None:
    result = await controller.run(wf([sh("main", "exit 1", retryStrategy={"limit": "1"})]))
    assert result["status"]["phase"] == "Failed"
    assert len(result["status"]["nodes"][result["metadata"]["name"]]["children"]) == 2


async def test_on_exit_handler_sees_status(controller: Controller) -> None:
    manifest = wf(
        [sh("main", "exit 1"), {"name": "bye", "container": {"command": ["echo", "{{workflow.status}}"]}}],
        onExit="bye",
    )
    result = await controller.run(manifest)
    nodes = by_display(result)
    assert result["status"]["phase"] == "Failed"
    assert nodes["onExit"]["outputs"]["result"] == "Failed"


async def test_active_deadline_fails_the_workflow(controller: Controller) -> None:
    result = await asyncio.wait_for(controller.run(wf([sh("main", "sleep 30")], activeDeadlineSeconds=1)), 10)
    assert result["status"]["phase"] == "Failed"
    assert "deadline" in result["status"]["message"]


async def test_workflow_template_ref_and_template_ref(controller: Controller, store: SqliteStore) -> None:
    await store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "lib", "namespace": "default"},
            "spec": {
                "entrypoint": "main",
                "arguments": {"parameters": [{"name": "who", "value": "template"}]},
                "templates": [
                    {
                        "name": "main",
                        "steps": [[{"name": "s", "templateRef": {"name": "lib", "template": "say"}}]],
                    },
                    {"name": "say", "container": {"command": ["echo", "hi {{workflow.parameters.who}}"]}},
                ],
            },
        }
    )
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "from-ref-", "namespace": "default"},
        "spec": {
            "workflowTemplateRef": {"name": "lib"},
            "arguments": {"parameters": [{"name": "who", "value": "wf"}]},
        },
    }
    result = await controller.run(manifest)
    assert result["status"]["phase"] == "Succeeded", result["status"]
    assert by_display(result)["s"]["outputs"]["result"] == "hi wf"


async def test_watch_runs_created_workflows_with_few_writes(controller: Controller, store: SqliteStore) -> None:
    before = store.writes
    created = await store.create(wf([sh("main", "true")]))
    name = created["metadata"]["name"]
    done = await wait_for(store, name, lambda o: o.get("status", {}).get("phase") == "Succeeded")
    assert done["status"]["progress"] == "1/1"
    await asyncio.sleep(0.2)
    assert store.writes - before <= 4  # create + Running + final (+ at most one batched update)


async def test_terminate_via_spec_shutdown(controller: Controller, store: SqliteStore) -> None:
    created = await store.create(wf([sh("main", "sleep 30")]))
    name = created["metadata"]["name"]
    obj = await wait_for(store, name, lambda o: o.get("status", {}).get("phase") == "Running")
    obj["spec"]["shutdown"] = "Terminate"
    for _ in range(5):
        try:
            await store.update(obj)
            break
        except Exception:
            obj = await store.get("Workflow", "default", name)
            obj["spec"]["shutdown"] = "Terminate"
    done = await wait_for(store, name, lambda o: o.get("status", {}).get("phase") in ("Failed", "Error"))
    assert "Terminate" in done["status"]["message"]


async def test_restart_continues_without_rerunning_succeeded_steps(
    store: SqliteStore, tmp_path: Path, shared_dir: Path
) -> None:
    first_runs = shared_dir / "first"
    marker = shared_dir / "second-started"
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [{"name": "first", "template": "first"}],
                    [{"name": "second", "template": "second"}],
                ],
            },
            sh(
                "first",
                f"echo run >> {first_runs}; echo done",
                outputs={"parameters": [{"name": "v", "valueFrom": {"path": "/tmp/v", "default": "d"}}]},
            ),
            sh("second", f"if [ -f {marker} ]; then echo again; exit 0; fi; touch {marker}; sleep 30"),
        ]
    )
    controller = Controller(store, HostExecutor(tmp_path / "state"), write_interval=0.05)
    await controller.start()
    created = await store.create(manifest)
    name = created["metadata"]["name"]

    def second_running(o: Obj) -> bool:
        nodes = (o.get("status") or {}).get("nodes") or {}
        return marker.exists() and any(
            n["displayName"] == "first" and n["phase"] == "Succeeded" for n in nodes.values()
        )

    await wait_for(store, name, second_running)
    await asyncio.sleep(0.1)
    await controller.stop()
    stopped = await store.get("Workflow", "default", name)
    assert stopped["status"]["phase"] == "Running"

    again = Controller(store, HostExecutor(tmp_path / "state"), write_interval=0.05)
    await again.start()
    try:
        done = await wait_for(store, name, lambda o: o["status"]["phase"] in ("Succeeded", "Failed", "Error"))
    finally:
        await again.stop()
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert first_runs.read_text().count("run") == 1
    nodes = by_display(done)
    assert nodes["second"]["outputs"]["result"] == "again"
    assert nodes["first"]["outputs"]["result"] == "done"
