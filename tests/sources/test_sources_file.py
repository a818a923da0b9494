"""The file source on a real directory, with watchfiles (inotify) and with polling."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sources_helpers import make_eventsource, wait_for

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources.manager import SourceManager


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def file_spec(directory: Path, event_type: str, polling: bool, **path: str) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "watchPathConfig": {"directory": str(directory), **path},
        "polling": polling,
    }


async def events(bus: SqliteBus) -> list[dict[str, Any]]:
    return [d.event.data for d in await bus.list_events()]


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
async def test_each_operation_on_matching_files(
    manager: SourceManager, bus: SqliteBus, watched: Path, polling: bool
) -> None:
    csv = {"pathRegexp": r"\.csv$"}
    spec = {
        "created": {**file_spec(watched, "CREATE", polling, **csv), "metadata": {"kind": "csv"}},
        "written": file_spec(watched, "WRITE", polling, path="data.csv"),
        "chmodded": file_spec(watched, "CHMOD", polling, **csv),
        "renamed": file_spec(watched, "RENAME", polling, **csv),
        "removed": file_spec(watched, "REMOVE", polling, **csv),
    }
    await manager.apply([make_eventsource("files", file=spec)])
    assert {s.state for s in manager.status()} == {"running"}
    await asyncio.sleep(0.2)  # let the watcher settle
    target = watched / "data.csv"
    steps: list[tuple[Callable[[], object], str]] = [
        (lambda: target.write_text("a,b\n"), "created"),
        (lambda: append(target, "1,2\n"), "written"),
        (lambda: os.chmod(target, 0o600), "chmodded"),
        (lambda: target.rename(watched / "moved.csv"), "renamed"),
        (lambda: (watched / "moved.csv").unlink(), "removed"),
    ]
    for action, subject in steps:
        action()
        await wait_for(functools.partial(_has, bus, subject), within=5)
        await asyncio.sleep(0.15)
    (watched / "notes.txt").write_text("ignored: does not match")
    await asyncio.sleep(0.4)
    by_subject: dict[str, Any] = {}
    for stored in await bus.list_events():
        by_subject.setdefault(stored.event.subject, stored.event.data)  # the first of each
    assert by_subject["created"] == {"name": str(target), "op": 1, "metadata": {"kind": "csv"}}
    assert by_subject["written"] == {"name": str(target), "op": 2, "metadata": None}
    assert by_subject["chmodded"] == {"name": str(target), "op": 16, "metadata": None}
    assert by_subject["renamed"] == {"name": str(target), "op": 8, "metadata": None}  # the old name
    assert by_subject["removed"] == {"name": str(watched / "moved.csv"), "op": 4, "metadata": None}
    assert all("notes.txt" not in data["name"] for data in await events(bus))


def append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


async def _has(bus: SqliteBus, subject: str) -> bool:
    return any(d.event.subject == subject for d in await bus.list_events())


async def test_directory_with_trailing_slash_and_missing_directory(
    manager: SourceManager, bus: SqliteBus, watched: Path
) -> None:
    spec = {
        "slash": file_spec(Path(f"{watched}/"), "CREATE", True, path="a.txt"),
        "missing": file_spec(watched / "nope", "CREATE", True, path="a.txt"),
    }
    await manager.apply([make_eventsource("files", file=spec)])
    states = {s.key.event_name: (s.state, s.error) for s in manager.status()}
    assert states["slash"] == ("running", None)
    assert states["missing"][0] == "failed" and "does not exist" in (states["missing"][1] or "")
    (watched / "a.txt").write_text("x")
    await wait_for(bus.list_events, within=5)
    assert [d["name"] for d in await events(bus)] == [str(watched / "a.txt")]


def test_lint_of_the_file_spec() -> None:
    es = make_eventsource(
        "f",
        file={
            "a": {"eventType": "create", "watchPathConfig": {"directory": "rel/dir"}},
            "b": {"eventType": "WRITE", "watchPathConfig": {"directory": "/d", "path": "/abs", "pathRegexp": "("}},
        },
    )
    found = {(f.path, f.message.split(" (")[0].split(":")[0]) for f in es.check()}
    assert ("spec.file.a.eventType", "eventType must be one of CREATE, WRITE, REMOVE, RENAME, CHMOD") in found
    assert ("spec.file.a.watchPathConfig.directory", "directory must be an absolute file path") in found
    assert ("spec.file.a.watchPathConfig", "either path or pathRegexp must be specified") in found
    assert ("spec.file.b.watchPathConfig", "path and pathRegexp cannot be specified together") in found
    assert ("spec.file.b.watchPathConfig.path", "path must be a relative file path") in found
    assert ("spec.file.b.watchPathConfig.pathRegexp", "invalid regular expression") in found
