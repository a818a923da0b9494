"""The ``file`` event source: one kind of change of the entries of a directory.

Behaviour (Argo's, differences marked):

* ``watchPathConfig.directory`` (absolute) is watched, not recursively. An entry matches when its
  path relative to the directory equals ``path``, or when ``pathRegexp`` matches it (Python
  ``re.search``, like Go's unanchored ``MatchString``). *Difference*: the relative path is computed
  properly, so ``directory`` works with or without a trailing ``/`` (Argo strips the directory
  string as a prefix, so without the slash ``path: a.txt`` never matches).
* ``eventType`` is one of ``CREATE``, ``WRITE``, ``REMOVE``, ``RENAME``, ``CHMOD`` (exact case);
  only changes of that kind are published.
* Event data ``{"name": <absolute path>, "op": <number>, "metadata": {...}}`` exactly as Argo:
  ``op`` is fsnotify's bit value (CREATE 1, WRITE 2, REMOVE 4, RENAME 8, CHMOD 16) because Argo's
  ``Op`` type has no JSON encoding of its own; ``metadata`` is ``null`` when not set (Argo's field
  has no ``omitempty``).
* Changes are detected with watchfiles (inotify on Linux), or with ``polling: true`` by comparing
  the directory every 100 ms (as Argo's naive watcher). Each wake-up compares the entries' inode,
  size, modification time and mode with the previous look: a new name is ``CREATE``, a vanished
  name ``REMOVE``, new content ``WRITE``, a new mode ``CHMOD``, and a vanished name whose inode
  reappears under a new name is ``RENAME`` (old name) plus ``CREATE`` (new name), as fsnotify.
  *Difference*: changes that happen within one wake-up are merged (a file created and written at
  once gives ``CREATE`` and ``WRITE``; one created and deleted at once gives nothing).
* Event ids are random: file changes have no stable identity.
* The directory must exist when the source starts (else it does not start, as Argo).
* ``filter.expression``: evaluated over the event data before publishing; false or an error drops
  the event (see ``_filtering``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import watchfiles

from eventbridge.errors import InvalidError
from eventbridge.models.eventsource import FILE_OPS, FileEventSource
from eventbridge.sources._filtering import EventFilter
from eventbridge.sources.base import SOURCE_TYPES, SourceContext, validated_spec

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class _Entry:
    inode: tuple[int, int]
    size: int
    mtime_ns: int
    mode: int


def snapshot(directory: Path) -> dict[str, _Entry]:
    """The entries directly in ``directory``: name -> identity and state."""
    out: dict[str, _Entry] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            out[entry.name] = _Entry((stat.st_dev, stat.st_ino), stat.st_size, stat.st_mtime_ns, stat.st_mode)
    return out


def diff(before: dict[str, _Entry], after: dict[str, _Entry]) -> list[tuple[str, str]]:
    """``(op, name)`` changes from one look at a directory to the next, fsnotify style."""
    changes: list[tuple[str, str]] = []
    gone = {name: entry for name, entry in before.items() if name not in after}
    new = {name: entry for name, entry in after.items() if name not in before}
    new_by_inode = {entry.inode: name for name, entry in new.items()}
    for name in sorted(gone):
        changes.append(("RENAME" if gone[name].inode in new_by_inode else "REMOVE", name))
    for name in sorted(new):
        changes.append(("CREATE", name))
        old_name = next((n for n, e in gone.items() if e.inode == new[name].inode), None)
        if old_name is None and new[name].size > 0:
            changes.append(("WRITE", name))
    for name in sorted(set(before) & set(after)):
        old, now = before[name], after[name]
        if old.inode != now.inode:  # replaced by another file under the same name
            changes += [("REMOVE", name), ("CREATE", name)]
            continue
        if (old.size, old.mtime_ns) != (now.size, now.mtime_ns):
            changes.append(("WRITE", name))
        if old.mode != now.mode:
            changes.append(("CHMOD", name))
    return changes


class FileSource:
    """One ``spec.file.<event name>`` watch."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any) -> None:
        spec = validated_spec(FileEventSource, spec, context, event_name)
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.labels = context.labels(event_name)
        self.directory = Path(spec.watch_path_config.directory)
        self.op = spec.event_type
        watch = spec.watch_path_config
        self._regexp: re.Pattern[str] | None = re.compile(watch.path_regexp) if watch.path_regexp else None
        self._path: str | None = os.path.normpath(watch.path) if watch.path else None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._filter: EventFilter | None = None
        self._state: dict[str, _Entry] = {}

    async def start(self) -> None:
        if not self.directory.is_dir():
            raise InvalidError(f"directory {self.directory} does not exist (create it before starting)")
        self._filter = EventFilter(self.spec.filter, log, self.labels)
        self._state = snapshot(self.directory)
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"file {self.event_name}")

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def matches(self, name: str) -> bool:
        """Whether the entry ``name`` (relative to the directory) is watched."""
        if self._path is not None:
            return name == self._path
        return bool(self._regexp is not None and self._regexp.search(name))

    async def _run(self) -> None:
        if self.spec.polling:
            while True:
                await asyncio.sleep(POLL_INTERVAL)
                await self._look()
        else:
            async for _ in watchfiles.awatch(
                self.directory, stop_event=self._stop, recursive=False, debounce=100, step=20
            ):
                await self._look()

    async def _look(self) -> None:
        try:
            current = snapshot(self.directory)
        except OSError as exc:
            log.error("cannot read %s: %s", self.directory, exc, extra=self.labels)
            return
        changes, self._state = diff(self._state, current), current
        for op, name in changes:
            if op != self.op or not self.matches(name):
                continue
            data = {"name": str(self.directory / name), "op": FILE_OPS[op], "metadata": self.spec.metadata}
            if self._filter is not None and not self._filter.accepts(data):
                continue
            try:
                await self.context.dispatch(self.event_name, data)
            except Exception as exc:  # noqa: BLE001
                log.error("failed to record %s of %s: %s", op, name, exc, extra=self.labels)


SOURCE_TYPES.register("file")(FileSource)

__all__ = ["FileSource", "diff", "snapshot"]
