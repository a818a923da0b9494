"""Shell completion: the printed scripts work in a real bash, click's env-var protocol answers with
subcommands, and NAME arguments complete from a real API server."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from eventbridge.executors.host import HostExecutor
from eventbridge.server.app import ApiContext, build_app
from eventbridge.store.sqlite import SqliteStore


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env}
    )


def protocol(words: str, cword: int, **env: str) -> list[tuple[str, str]]:
    """click's bash protocol: ``type,value`` lines for COMP_WORDS/COMP_CWORD."""
    result = run("eventbridge", _EVENTBRIDGE_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword), **env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [tuple(line.split(",", 1)) for line in result.stdout.splitlines()]  # type: ignore[misc]


def test_bash_can_source_the_script_and_registers_the_completion() -> None:
    result = run("bash", "-c", "source <(eventbridge completion bash) && complete -p eventbridge")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "complete -o nosort -F _eventbridge_completion eventbridge"


def test_bash_completion_function_fills_compreply() -> None:
    script = (
        "source <(eventbridge completion bash); COMP_WORDS=(eventbridge cron su); COMP_CWORD=2; "
        '_eventbridge_completion eventbridge; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = run("bash", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["suspend"]


def test_protocol_completes_subcommands_and_options() -> None:
    top = protocol("eventbridge ", 1)
    names = {value for kind, value in top if kind == "plain"}
    assert {"up", "submit", "list", "get", "template", "cron", "sensor", "server", "completion"} <= names
    assert protocol("eventbridge te", 1) == [("plain", "template"), ("plain", "terminate")]
    assert protocol("eventbridge completion ", 2) == [("plain", "bash"), ("plain", "zsh"), ("plain", "fish")]
    assert ("plain", "--log-format") in protocol("eventbridge --log-f", 1)


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef eventbridge"), ("fish", "complete --no-files")])
def test_zsh_and_fish_scripts_call_back_with_the_protocol(shell: str, marker: str) -> None:
    result = run("eventbridge", "completion", shell)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert f"_EVENTBRIDGE_COMPLETE={shell}_complete" in result.stdout


def test_unknown_shell_is_a_usage_error() -> None:
    result = run("eventbridge", "completion", "tcsh")
    assert result.returncode == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


def _named(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, SqliteStore]]:
    store = SqliteStore(tmp_path / "store.db")
    await store.start()
    app = build_app(ApiContext(store=store, executor=HostExecutor(tmp_path / "steps"), ui=False))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", store
    await runner.cleanup()
    await store.stop()


async def _protocol_async(words: str, cword: int, **env: str) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        "eventbridge",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "_EVENTBRIDGE_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
            **env,
        },
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0 and err == b"", err
    return [line.split(",", 1)[1] for line in out.decode().splitlines() if line]


async def test_names_complete_from_the_server(server: tuple[str, SqliteStore]) -> None:
    url, store = server
    spec = {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]}
    for name in ("build-1", "build-2", "deploy"):
        await store.create(_named("Workflow", name, "default", spec))
    await store.create(_named("Workflow", "build-elsewhere", "team", spec))
    await store.create(_named("WorkflowTemplate", "tpl-a", "default", spec))
    await store.create(_named("CronWorkflow", "nightly", "team", {"schedule": "0 0 * * *", "workflowSpec": spec}))

    env = {"EVENTBRIDGE_SERVER": url}
    assert await _protocol_async("eventbridge get bu", 2, **env) == ["build-1", "build-2"]
    assert await _protocol_async("eventbridge suspend -n team ", 4, **env) == ["build-elsewhere"]
    assert await _protocol_async(f"eventbridge logs --server {url} d", 4) == ["deploy"]
    assert await _protocol_async("eventbridge template get ", 3, **env) == ["tpl-a"]
    assert await _protocol_async("eventbridge cron suspend -n team ", 5, **env) == ["nightly"]
    # names already given are not offered again
    await store.create(_named("WorkflowTemplate", "tpl-b", "default", spec))
    assert await _protocol_async("eventbridge template delete tpl-a ", 4, **env) == ["tpl-b"]


async def test_an_unreachable_server_offers_nothing_and_prints_nothing() -> None:
    assert await _protocol_async("eventbridge get ", 2, EVENTBRIDGE_SERVER="http://127.0.0.1:9") == []
