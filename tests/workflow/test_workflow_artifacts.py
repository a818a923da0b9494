"""Artifacts, volumes, containerSet, http, data and resource templates with real host processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from workflow_helpers import by_display, finished, phase, step, steps, wait_for, wf

from eventbridge.models.workflow import Workflow
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller


async def run(store: SqliteStore, manifest: dict[str, Any]) -> dict[str, Any]:
    name = (await store.create(manifest))["metadata"]["name"]
    return await wait_for(store, name, finished, within=20)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A small HTTP server on 127.0.0.1 (artifact downloads and http templates)."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.headers.get('X-Who', 'nobody')}")

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response({"method": request.method, "body": body}, status=201)

    async def missing(_request: web.Request) -> web.Response:
        return web.Response(status=404, text="no")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_artifacts_pass_between_steps_and_land_in_the_repository(
    controller: Controller, store: SqliteStore, server: str
) -> None:
    manifest = wf(
        [
            steps(
                "main",
                [step("generate", "make")],
                [
                    step(
                        "consume",
                        "read",
                        arguments={
                            "artifacts": [
                                {"name": "message", "from": "{{steps.generate.outputs.artifacts.hello}}"},
                                {"name": "tree", "from": "{{steps.generate.outputs.artifacts.tree}}"},
                                {"name": "raw", "raw": {"data": "raw text"}},
                                {
                                    "name": "web",
                                    "http": {"url": f"{server}/hello", "headers": [{"name": "X-Who", "value": "eb"}]},
                                },
                            ]
                        },
                    )
                ],
            ),
            {
                "name": "make",
                "container": {
                    "image": "alpine",
                    "command": ["sh", "-c", "echo hello world > /tmp/hello.txt; mkdir -p /out/d; echo x > /out/d/f"],
                },
                "outputs": {
                    "artifacts": [
                        {"name": "hello", "path": "/tmp/hello.txt", "globalName": "greeting"},
                        {"name": "tree", "path": "/out", "archive": {"none": {}}},
                        {"name": "absent", "path": "/tmp/nothing", "optional": True},
                    ]
                },
            },
            {
                "name": "read",
                "inputs": {
                    "artifacts": [
                        {"name": "message", "path": "/tmp/message"},
                        {"name": "tree", "path": "/data/tree"},
                        {"name": "raw", "path": "/tmp/raw.txt"},
                        {"name": "web", "path": "web.txt"},
                        {"name": "maybe", "path": "/tmp/maybe", "optional": True},
                    ]
                },
                "container": {
                    "image": "alpine",
                    "command": [
                        "sh",
                        "-c",
                        "cat {{inputs.artifacts.message.path}} /data/tree/d/f /tmp/raw.txt web.txt; echo; "
                        "test ! -e /tmp/maybe",
                    ],
                },
            },
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", [(n["displayName"], n.get("message")) for n in done["status"]["nodes"].values()]
    nodes = by_display(done)
    assert nodes["consume"]["outputs"]["result"] == "hello world\nx\nraw texthello eb"
    records = {a["name"]: a for a in nodes["generate"]["outputs"]["artifacts"]}
    assert set(records) == {"hello", "tree"}
    repo = controller.artifacts
    assert repo is not None
    archive = repo.root / records["hello"]["local"]["key"]
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["hello.txt"]
    assert (repo.root / records["tree"]["local"]["key"] / "d" / "f").read_text() == "x\n"
    assert done["status"]["outputs"]["artifacts"][0]["name"] == "greeting"
    await store.delete("Workflow", "default", done["metadata"]["name"])
    for _ in range(100):
        if not archive.exists():
            break
        await asyncio.sleep(0.02)
    assert not archive.exists()


async def test_missing_output_artifact_fails_and_cloud_store_is_refused(
    controller: Controller, store: SqliteStore
) -> None:
    manifest = wf(
        [
            steps("main", [step("a", "lazy"), step("b", "cloud")]),
            {
                "name": "lazy",
                "container": {"image": "alpine", "command": ["true"]},
                "outputs": {"artifacts": [{"name": "x", "path": "/tmp/x"}]},
            },
            {
                "name": "cloud",
                "inputs": {"artifacts": [{"name": "in", "path": "/tmp/in", "gcs": {"bucket": "b", "key": "k"}}]},
                "container": {"image": "alpine", "command": ["true"]},
            },
        ]
    )
    done = await run(store, manifest)
    nodes = by_display(done)
    assert nodes["a"]["phase"] == "Error"
    assert "left nothing at /tmp/x" in nodes["a"]["message"]
    assert nodes["b"]["phase"] == "Error"
    assert "gcs artifacts are not supported yet" in nodes["b"]["message"]


async def test_empty_dir_volume_is_shared_by_the_steps(controller: Controller, store: SqliteStore) -> None:
    manifest = wf(
        [
            steps("main", [step("write", "write")], [step("read", "read")]),
            {
                "name": "write",
                "container": {
                    "image": "alpine",
                    "command": ["sh", "-c", "echo shared > /mnt/vol/file"],
                    "volumeMounts": [{"name": "workdir", "mountPath": "/mnt/vol"}],
                },
            },
            {
                "name": "read",
                "container": {
                    "image": "alpine",
                    "command": ["cat", "/mnt/vol/file"],
                    "volumeMounts": [{"name": "workdir", "mountPath": "/mnt/vol"}],
                },
            },
        ],
        volumes=[{"name": "workdir", "emptyDir": {}}],
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", [(n["displayName"], n.get("message")) for n in done["status"]["nodes"].values()]
    assert by_display(done)["read"]["outputs"]["result"] == "shared"


async def test_container_set_runs_containers_in_dependency_order(controller: Controller, store: SqliteStore) -> None:
    manifest = wf(
        [
            {
                "name": "main",
                "volumes": [{"name": "workspace", "emptyDir": {}}],
                "containerSet": {
                    "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
                    "containers": [
                        {"name": "a", "image": "alpine", "command": ["sh", "-c", "echo a >> /workspace/log"]},
                        {
                            "name": "b",
                            "image": "argoproj/argosay:v2",
                            "args": ["echo", "b", "/workspace/b"],
                            "dependencies": ["a"],
                        },
                        {
                            "name": "main",
                            "image": "alpine",
                            "dependencies": ["b"],
                            "command": ["sh", "-c", "cat /workspace/log /workspace/b"],
                        },
                    ],
                },
                "outputs": {"parameters": [{"name": "log", "valueFrom": {"path": "/workspace/log"}}]},
            }
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", [(n["displayName"], n.get("message")) for n in done["status"]["nodes"].values()]
    nodes = by_display(done)
    root = nodes[done["metadata"]["name"]]
    assert root["type"] == "Pod"
    assert root["outputs"]["result"] == "a\nb"
    assert root["outputs"]["parameters"][0]["value"] == "a"
    assert {n for n, v in nodes.items() if v["type"] == "Container"} == {"a", "b", "main"}


async def test_container_set_failure_omits_dependents(controller: Controller, store: SqliteStore) -> None:
    manifest = wf(
        [
            {
                "name": "main",
                "containerSet": {
                    "containers": [
                        {"name": "a", "image": "alpine", "command": ["false"]},
                        {"name": "b", "image": "alpine", "command": ["true"], "dependencies": ["a"]},
                    ]
                },
            }
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Failed"
    nodes = by_display(done)
    assert nodes["a"]["phase"] == "Failed" and nodes["b"]["phase"] == "Omitted"


async def test_http_template_success_condition_and_result(
    controller: Controller, store: SqliteStore, server: str
) -> None:
    manifest = wf(
        [
            steps(
                "main",
                [
                    step("get", "request", arguments={"parameters": [{"name": "url", "value": f"{server}/hello"}]}),
                    step(
                        "missing",
                        "request",
                        arguments={"parameters": [{"name": "url", "value": f"{server}/missing"}]},
                        continueOn={"failed": True},
                    ),
                ],
                [
                    step(
                        "post",
                        "post",
                        arguments={"parameters": [{"name": "body", "value": "{{steps.get.outputs.result}}"}]},
                    )
                ],
            ),
            {
                "name": "request",
                "inputs": {"parameters": [{"name": "url"}]},
                "http": {"url": "{{inputs.parameters.url}}", "headers": [{"name": "X-Who", "value": "http"}]},
            },
            {
                "name": "post",
                "inputs": {"parameters": [{"name": "body"}]},
                "http": {
                    "url": f"{server}/echo",
                    "method": "POST",
                    "body": "{{inputs.parameters.body}}",
                    "successCondition": "response.statusCode == 201 && fromJSON(response.body).method == 'POST'",
                },
            },
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", [(n["displayName"], n.get("message")) for n in done["status"]["nodes"].values()]
    nodes = by_display(done)
    assert nodes["get"]["type"] == "HTTP"
    assert nodes["get"]["outputs"]["result"] == "hello http"
    assert nodes["missing"]["phase"] == "Failed" and "status 404" in nodes["missing"]["message"]
    assert json.loads(nodes["post"]["outputs"]["result"]) == {"method": "POST", "body": "hello http"}


async def test_data_template_transforms_artifact_paths(controller: Controller, store: SqliteStore) -> None:
    manifest = wf(
        [
            steps(
                "main",
                [step("make", "make")],
                [
                    step(
                        "pick",
                        "pick",
                        arguments={"artifacts": [{"name": "logs", "from": "{{steps.make.outputs.artifacts.logs}}"}]},
                    )
                ],
            ),
            {
                "name": "make",
                "container": {
                    "image": "alpine",
                    "command": ["sh", "-c", "mkdir -p /tmp/logs/a; touch /tmp/logs/a/main.log /tmp/logs/other.txt"],
                },
                "outputs": {"artifacts": [{"name": "logs", "path": "/tmp/logs"}]},
            },
            {
                "name": "pick",
                "inputs": {"artifacts": [{"name": "logs"}]},
                "data": {
                    "source": {"artifactPaths": {"name": "logs", "from": "{{inputs.artifacts.logs}}"}},
                    "transformation": [{"expression": 'filter(data, {# endsWith "main.log"})'}],
                },
            },
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", [(n["displayName"], n.get("message")) for n in done["status"]["nodes"].values()]
    assert json.loads(by_display(done)["pick"]["outputs"]["result"]) == ["a/main.log"]


async def test_resource_template_needs_cluster_mode(controller: Controller, store: SqliteStore) -> None:
    template = {"name": "main", "resource": {"action": "create", "manifest": "kind: ConfigMap"}}
    findings = Workflow.model_validate(wf([template]) | {"metadata": {"name": "x"}}).check()
    assert any("needs cluster mode" in f.message and f.severity == "warning" for f in findings)
    done = await run(store, wf([template]))
    assert phase(done) == "Error"
    assert "needs cluster mode" in done["status"]["message"]


def make_git_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "one"], ["git", "tag", "v1"]):
        if command[1] == "add":
            (repo / "VERSION").write_text("one\n")
        subprocess.run(command, cwd=repo, env=env, check=True)
    (repo / "VERSION").write_text("two\n")
    subprocess.run(["git", "commit", "-qam", "two"], cwd=repo, env=env, check=True)
    return repo


async def test_git_input_artifact_at_a_revision(controller: Controller, store: SqliteStore, shared_dir: Path) -> None:
    repo = await asyncio.to_thread(make_git_repo, shared_dir)
    manifest = wf(
        [
            {
                "name": "main",
                "inputs": {
                    "artifacts": [{"name": "src", "path": "/src", "git": {"repo": str(repo), "revision": "v1"}}]
                },
                "container": {"image": "alpine", "command": ["cat", "VERSION"], "workingDir": "/src"},
            }
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", done["status"]
    assert by_display(done)[done["metadata"]["name"]]["outputs"]["result"] == "one"
    bad = await run(
        store,
        wf(
            [
                {
                    **manifest["spec"]["templates"][0],
                    "inputs": {
                        "artifacts": [{"name": "src", "path": "/src", "git": {"repo": str(shared_dir / "nope")}}]
                    },
                }
            ]
        ),
    )
    assert phase(bad) == "Error"
    assert "git clone failed" in by_display(bad)[bad["metadata"]["name"]]["message"]


async def test_container_set_outputs_wait_for_every_container(controller: Controller, store: SqliteStore) -> None:
    """Another container writes main's output into the shared volume, later than main ends (Argo
    collects outputs once the whole set is done)."""
    manifest = wf(
        [
            {
                "name": "main",
                "volumes": [{"name": "ws", "emptyDir": {}}],
                "containerSet": {
                    "volumeMounts": [{"name": "ws", "mountPath": "/ws"}],
                    "containers": [
                        {
                            "name": "writer",
                            "image": "alpine",
                            "command": ["sh", "-c", "sleep 0.5; echo late > /ws/out"],
                        },
                        {"name": "main", "image": "alpine", "command": ["true"]},
                    ],
                },
                "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/ws/out"}}]},
            }
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", done["status"].get("message")
    root = by_display(done)[done["metadata"]["name"]]
    assert root["outputs"]["parameters"][0]["value"] == "late"
