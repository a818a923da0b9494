"""HostExecutor: input files, output artifacts, volumes and the shadow root for absolute paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventbridge.executors.base import OutputArtifact, OutputParameter, PathMount, StepSpec
from eventbridge.executors.host import HostExecutor


def spec(node: str, argv: list[str], **kw: object) -> StepSpec:
    return StepSpec("default", "wf", node, f"wf-pod-{node}", argv, **kw)  # type: ignore[arg-type]


@pytest.fixture
def executor(tmp_path: Path) -> HostExecutor:
    return HostExecutor(tmp_path / "state")


@pytest.fixture
def needs_private(executor: HostExecutor) -> None:
    if not executor.private_tmp:  # pragma: no cover - the CI container runs as root with unshare
        pytest.fail("these tests need a private mount namespace (root with unshare)")


async def test_inputs_outputs_and_volumes_at_new_top_level_paths(
    executor: HostExecutor, tmp_path: Path, needs_private: None
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("input\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("leaf")
    volume = tmp_path / "volume"
    volume.mkdir()
    script = (
        "cat /inputs/in.txt /src/sub/f; echo; pwd; echo out > /outputs/result.txt; "
        "echo rel > relative.txt; echo vol > /mnt/vol/shared; mkdir /tmp/dir; echo d > /tmp/dir/a"
    )
    result = await executor.run(
        spec(
            "paths",
            ["sh", "-c", script],
            mounts=[
                PathMount("/inputs/in.txt", str(source)),
                PathMount("/src", str(tree)),
                PathMount("/mnt/vol", str(volume), copy=False),
            ],
            artifacts=[
                OutputArtifact("result", "/outputs/result.txt"),
                OutputArtifact("rel", "relative.txt"),
                OutputArtifact("dir", "/tmp/dir"),
                OutputArtifact("vol", "/mnt/vol/shared"),
                OutputArtifact("none", "/outputs/none", optional=True),
            ],
            outputs=[OutputParameter("p", "/outputs/result.txt")],
            artifact_dir=str(tmp_path / "collected"),
        )
    )
    assert result.phase == "Succeeded", result.message
    assert result.result == "input\nleaf\n/"
    assert result.parameters == {"p": "out"}
    assert sorted(result.artifacts) == ["dir", "rel", "result", "vol"]
    assert Path(result.artifacts["dir"], "a").read_text() == "d\n"  # noqa: ASYNC240
    assert Path(result.artifacts["rel"]).read_text() == "rel\n"  # noqa: ASYNC240
    assert (volume / "shared").read_text() == "vol\n"
    for leaked in ("/inputs", "/outputs", "/src", "/relative.txt"):
        assert not os.path.lexists(leaked), leaked  # noqa: ASYNC240


async def test_missing_artifact_and_unsafe_placements_are_errors(
    executor: HostExecutor, tmp_path: Path, needs_private: None
) -> None:
    source = tmp_path / "x"
    source.write_text("x")
    missing = await executor.run(
        spec("m", ["true"], artifacts=[OutputArtifact("a", "/tmp/a")], artifact_dir=str(tmp_path / "o"))
    )
    assert missing.phase == "Error" and "left nothing at /tmp/a" in missing.message
    for path in ("/etc/eventbridge-test", "../../escape.txt", "/usr/local/x"):
        refused = await executor.run(spec("r", ["true"], mounts=[PathMount(path, str(source))]))
        assert refused.phase == "Error", path
    assert not Path("/etc/eventbridge-test").exists()  # noqa: ASYNC240


async def test_argosay_image_without_command_uses_a_stand_in(executor: HostExecutor, needs_private: None) -> None:
    said = await executor.run(spec("a", [], image="argoproj/argosay:v2"))
    assert (said.phase, said.result) == ("Succeeded", "hello argo")
    wrote = await executor.run(
        spec(
            "b",
            ["echo", "hi", "/tmp/out"],
            image="docker.io/argoproj/argosay:v2",
            args_only=True,
            outputs=[OutputParameter("o", "/tmp/out")],
        )
    )
    assert (wrote.phase, wrote.parameters) == ("Succeeded", {"o": "hi"})
    failed = await executor.run(spec("c", ["exit", "3"], image="argoproj/argosay:v2", args_only=True))
    assert (failed.phase, failed.exit_code) == ("Failed", 3)
    plain = await executor.run(spec("d", ["echo", "x"], image="alpine", args_only=True))
    assert plain.result == "x"
