"""``plugin`` templates: Argo's executor-plugin protocol against a real aiohttp plugin server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from workflow_helpers import by_display, finished, phase, step, steps, wait_for, wf

from eventbridge.executors.host import HostExecutor
from eventbridge.models.core import Secret
from eventbridge.models.references import ManifestReferences
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller
from eventbridge.workflow.plugins import ConfigMapPlugins


@dataclass
class PluginServer:
    port: int
    calls: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def plugin_server() -> AsyncIterator[PluginServer]:
    """A plugin in the style of Argo's docs: ``hello`` says hello, ``slow`` answers Running once,
    anything else gets ``{}`` (not mine)."""
    state = PluginServer(0)

    async def execute(request: web.Request) -> web.Response:
        body = await request.json()
        state.calls.append(body)
        state.headers.append(dict(request.headers))
        plugin = body["template"].get("plugin") or {}
        if "hello" in plugin:
            if request.headers.get("Authorization") not in (None, "Bearer s3cr3t"):
                return web.Response(status=403)
            who = plugin["hello"].get("name", "world")
            return web.json_response(
                {
                    "node": {
                        "phase": "Succeeded",
                        "message": f"Hello {who}!",
                        "outputs": {"parameters": [{"name": "greeting", "value": f"hi {who}"}]},
                    }
                }
            )
        if "slow" in plugin:
            calls = sum(1 for c in state.calls if "slow" in (c["template"].get("plugin") or {}))
            if calls == 1:
                return web.json_response({"node": {"phase": "Running", "message": "started"}, "requeue": "100ms"})
            return web.json_response({"node": {"phase": "Failed", "message": "it broke"}})
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/api/v1/template.execute", execute)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


@pytest.fixture
async def not_implemented() -> AsyncIterator[str]:
    """A plugin that implements no method (404 for everything)."""
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


def plugin_config_map(name: str, port: int, **annotations: str) -> dict[str, Any]:
    """What ``argo executor-plugin build`` writes."""
    container = {"name": f"{name}-executor-plugin", "image": "python:alpine", "ports": [{"containerPort": port}]}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{name}-executor-plugin",
            "namespace": "default",
            "labels": {"workflows.argoproj.io/configmap-type": "ExecutorPlugin"},
            "annotations": annotations,
        },
        "data": {"sidecar.container": yaml.safe_dump(container), "sidecar.automountServiceAccountToken": "false"},
    }


async def run(store: SqliteStore, obj: dict[str, Any]) -> dict[str, Any]:
    name = (await store.create(obj))["metadata"]["name"]
    return await wait_for(store, name, finished, within=20)


@pytest.fixture
async def make_controller(store: SqliteStore, tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Controller] = []

    async def make(config_maps: list[dict[str, Any]]) -> Controller:
        secret = Secret.model_validate(
            {"metadata": {"name": "plugin-token", "namespace": "default"}, "stringData": {"token": "s3cr3t"}}
        )
        controller = Controller(
            store,
            HostExecutor(tmp_path / "state"),
            write_interval=0.05,
            references=ManifestReferences([secret]),
            plugins=ConfigMapPlugins(config_maps),
        )
        await controller.start()
        started.append(controller)
        return controller

    yield make
    for controller in started:
        await controller.stop()


def hello_workflow() -> dict[str, Any]:
    return wf(
        [
            steps(
                "main",
                [step("greet", "greet", arguments={"parameters": [{"name": "who", "value": "ann"}]})],
                [
                    step(
                        "echo",
                        "echo",
                        arguments={
                            "parameters": [{"name": "text", "value": "{{steps.greet.outputs.parameters.greeting}}"}]
                        },
                    )
                ],
            ),
            {
                "name": "greet",
                "inputs": {"parameters": [{"name": "who"}]},
                "plugin": {"hello": {"name": "{{inputs.parameters.who}}"}},
            },
            {
                "name": "echo",
                "inputs": {"parameters": [{"name": "text"}]},
                "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.text}}"]},
            },
        ]
    )


async def test_a_configmap_plugin_executes_the_template(
    make_controller: Any, store: SqliteStore, plugin_server: PluginServer
) -> None:
    await make_controller([plugin_config_map("hello", plugin_server.port)])
    done = await run(store, hello_workflow())
    assert phase(done) == "Succeeded"
    greet = by_display(done)["greet"]
    assert greet["type"] == "Plugin"
    assert greet["message"] == "Hello ann!"
    assert by_display(done)["echo"]["inputs"]["parameters"][0]["value"] == "hi ann"
    call = plugin_server.calls[0]
    meta = done["metadata"]
    assert call["workflow"] == {"metadata": {"name": meta["name"], "namespace": "default", "uid": meta["uid"]}}
    assert call["template"]["name"] == "greet"
    assert call["template"]["plugin"] == {"hello": {"name": "ann"}}
    assert call["template"]["inputs"]["parameters"] == [{"name": "who", "value": "ann"}]
    assert "Authorization" not in plugin_server.headers[0]


async def test_a_404_plugin_is_skipped_and_a_token_is_sent(
    make_controller: Any, store: SqliteStore, plugin_server: PluginServer, not_implemented: str
) -> None:
    await make_controller(
        [
            plugin_config_map("absent", 1, **{"eventbridge.io/plugin-address": not_implemented}),
            plugin_config_map(
                "hello", plugin_server.port, **{"eventbridge.io/plugin-token-secret": "plugin-token/token"}
            ),
        ]
    )
    done = await run(store, hello_workflow())
    assert phase(done) == "Succeeded"
    assert plugin_server.headers[0]["Authorization"] == "Bearer s3cr3t"


async def test_requeue_then_failure_and_no_taker(
    make_controller: Any, store: SqliteStore, plugin_server: PluginServer
) -> None:
    await make_controller([plugin_config_map("hello", plugin_server.port)])
    slow = await run(store, wf([{"name": "main", "plugin": {"slow": {}}}]))
    node = by_display(slow)[slow["metadata"]["name"]]
    assert (phase(slow), node["phase"], node["message"]) == ("Failed", "Failed", "it broke")
    assert len(plugin_server.calls) == 2  # asked again after the requeue delay
    nobody = await run(store, wf([{"name": "main", "plugin": {"unknown": {}}}]))
    assert phase(nobody) == "Failed"
    assert "no plugin executed the template" in by_display(nobody)[nobody["metadata"]["name"]]["message"]


async def test_workflow_level_executor_plugins_and_none_configured(
    make_controller: Any, store: SqliteStore, plugin_server: PluginServer
) -> None:
    await make_controller([])
    plugin = {
        "metadata": {"name": "hello"},
        "spec": {"sidecar": {"container": {"name": "hello", "ports": [{"containerPort": plugin_server.port}]}}},
    }
    manifest = hello_workflow()
    manifest["spec"]["executorPlugins"] = [plugin]
    assert phase(await run(store, manifest)) == "Succeeded"
    none = await run(store, hello_workflow())
    assert phase(none) == "Failed"
    assert by_display(none)["greet"]["phase"] == "Error"
    assert "no executor plugin is configured" in by_display(none)["greet"]["message"]
