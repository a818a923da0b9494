"""HostExecutor: real processes, real files."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from eventbridge.executors.base import OutputParameter, StepSpec
from eventbridge.executors.host import HostExecutor


def spec(node: str, argv: list[str], **kw: object) -> StepSpec:
    return StepSpec("default", "wf", node, f"wf-pod-{node}", argv, **kw)  # type: ignore[arg-type]


@pytest.fixture
def executor(tmp_path: Path) -> HostExecutor:
    return HostExecutor(tmp_path / "state")


async def test_result_trims_one_newline_and_log_keeps_both_streams(executor: HostExecutor) -> None:
    result = await executor.run(spec("n1", ["sh", "-c", "echo out; echo err >&2; printf 'x\\n\\n'"]))
    assert result.phase == "Succeeded"
    assert result.exit_code == 0
    assert result.result == "out\nx\n"
    log = await executor.read_log("default", "wf", "n1")
    assert "out" in log and "err" in log


async def test_nonzero_exit_fails(executor: HostExecutor) -> None:
    result = await executor.run(spec("n1", ["sh", "-c", "exit 3"]))
    assert result.phase == "Failed"
    assert result.exit_code == 3
    assert "exit code 3" in result.message


async def test_missing_command_reports_os_error(executor: HostExecutor) -> None:
    result = await executor.run(spec("n1", ["definitely-not-a-command-xyz"]))
    assert result.phase == "Error"
    assert "definitely-not-a-command-xyz" in result.message
    assert "not found" in result.message or "No such file" in result.message


async def test_missing_command_without_private_tmp(tmp_path: Path) -> None:
    executor = HostExecutor(tmp_path / "s", private_tmp=False)
    result = await executor.run(spec("n1", ["/nonexistent/bin/tool"]))
    assert result.phase == "Error"
    assert "No such file or directory" in result.message


async def test_script_source_is_passed_as_file(executor: HostExecutor) -> None:
    result = await executor.run(spec("n1", ["python3"], script="import sys\nprint(sys.argv[0].endswith('script'))"))
    assert result.phase == "Succeeded", result.message
    assert result.result == "True"


async def test_output_parameter_from_file_and_default(executor: HostExecutor) -> None:
    result = await executor.run(
        spec(
            "n1",
            ["sh", "-c", "echo hello > /tmp/out.txt; echo rel > rel.txt"],
            outputs=[
                OutputParameter("a", "/tmp/out.txt"),
                OutputParameter("b", "rel.txt"),
                OutputParameter("c", "/tmp/missing", default="dflt"),
            ],
        )
    )
    assert result.phase == "Succeeded", result.message
    assert result.parameters == {"a": "hello", "b": "rel", "c": "dflt"}


async def test_missing_output_file_is_an_error(executor: HostExecutor) -> None:
    result = await executor.run(spec("n1", ["true"], outputs=[OutputParameter("a", "/tmp/never")]))
    assert result.phase == "Error"
    assert "/tmp/never" in result.message


async def test_parallel_steps_get_private_tmp(executor: HostExecutor) -> None:
    assert executor.private_tmp, "this machine runs as root with unshare: private /tmp expected"
    # A name no one else uses on the host (a CI clone may well sit at /tmp/x).
    shared = f"/tmp/eventbridge-private-tmp-{uuid.uuid4().hex}"
    steps = [
        spec(
            f"n{i}",
            ["sh", "-c", f"echo {i} > {shared}; sleep 0.2; cat {shared}"],
            outputs=[OutputParameter("x", shared)],
        )
        for i in range(4)
    ]
    results = await asyncio.gather(*(executor.run(s) for s in steps))
    assert [r.parameters["x"] for r in results] == ["0", "1", "2", "3"]
    assert [r.result for r in results] == ["0", "1", "2", "3"]
    assert not await asyncio.to_thread(Path(shared).exists)  # nothing reached the host's /tmp


async def test_shared_tmp_refuses_parallel_writers_of_one_path(tmp_path: Path) -> None:
    executor = HostExecutor(tmp_path / "s", private_tmp=False)
    out = str(tmp_path / "shared.txt")
    first = asyncio.create_task(
        executor.run(spec("a", ["sh", "-c", f"sleep 0.3; echo a > {out}"], outputs=[OutputParameter("o", out)]))
    )
    await asyncio.sleep(0.1)
    second = await executor.run(spec("b", ["sh", "-c", f"echo b > {out}"], outputs=[OutputParameter("o", out)]))
    assert second.phase == "Error"
    assert "also an output of running step" in second.message
    assert (await first).parameters == {"o": "a"}


async def test_timeout_kills_the_process_group(executor: HostExecutor, tmp_path: Path) -> None:
    started = time.monotonic()
    result = await executor.run(spec("n1", ["sh", "-c", "sleep 30 & sleep 30"], timeout=0.3))
    assert time.monotonic() - started < 5
    assert result.phase == "Failed"
    assert "deadline" in result.message


async def test_kill_ends_a_running_step(executor: HostExecutor) -> None:
    task = asyncio.create_task(executor.run(spec("n1", ["sleep", "30"])))
    await asyncio.sleep(0.2)
    await executor.kill("default", "wf")
    result = await asyncio.wait_for(task, 5)
    assert result.phase == "Failed"
    assert result.message == "terminated"


async def test_env_is_minimal_plus_template_env(executor: HostExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBRIDGE_TEST_SECRET", "s3cr3t")
    result = await executor.run(spec("n1", ["sh", "-c", "env"], env={"FOO": "bar"}))
    env = dict(line.split("=", 1) for line in (result.result or "").splitlines() if "=" in line)
    assert env["FOO"] == "bar"
    assert "EVENTBRIDGE_TEST_SECRET" not in env
    assert env["ARGO_NODE_ID"] == "n1"
    assert {"PATH", "HOME", "LANG"} <= set(env)


async def test_many_steps_spawn_fast(executor: HostExecutor) -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(executor.run(spec(f"m{i}", ["true"])) for i in range(100)))
    assert {r.phase for r in results} == {"Succeeded"}
    assert time.monotonic() - started < 10  # far above 600 steps/min
