"""Synchronization: mutexes and semaphores shared by every workflow this controller runs.

Locks are named as Argo names them: ``<namespace>/Mutex/<name>`` for a mutex and
``<namespace>/ConfigMap/<configmap>/<key>`` for a semaphore whose limit is that ConfigMap key
(read again at every attempt, so a changed limit applies). A holder is ``<namespace>/<workflow>``
(workflow-level ``spec.synchronization``) or ``<namespace>/<workflow>/<node id>`` (a template's).

Waiters queue per lock, ordered by workflow ``priority`` (higher first), then creation time, then
arrival; a waiter takes its locks only when it is first in every queue and every lock has room
(Argo's rule for several locks). Holders live in memory; the workflow's
``status.synchronization`` records them, and :meth:`LockManager.restore` puts them back after a
restart (before any workflow runs again).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventbridge.errors import EventBridgeError, InvalidError
from eventbridge.models.workflow import Synchronization

#: How long a waiter sleeps without news before it checks again (a semaphore limit may change).
RECHECK_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class LockRef:
    """One lock a workflow or template asks for."""

    name: str  # Argo's lock name (see the module docstring)
    kind: str  # "Mutex" or "Semaphore"
    namespace: str
    config_map: str = ""
    key: str = ""


def lock_refs(sync: Synchronization | None, namespace: str) -> list[LockRef]:
    """The locks a ``synchronization`` block asks for, in order, without duplicates."""
    if sync is None:
        return []
    found: list[LockRef] = []
    mutexes = ([sync.mutex] if sync.mutex is not None else []) + list(sync.mutexes or [])
    for mutex in mutexes:
        if not mutex.name:
            raise InvalidError("synchronization: a mutex needs a name")
        ns = mutex.namespace or namespace
        kind = "Database" if mutex.database else "Mutex"
        found.append(LockRef(f"{ns}/{kind}/{mutex.name}", "Mutex", ns))
    semaphores = ([sync.semaphore] if sync.semaphore is not None else []) + list(sync.semaphores or [])
    for semaphore in semaphores:
        ref = semaphore.config_map_key_ref
        if ref is None:
            raise InvalidError(
                "synchronization: database semaphores need Argo's sync_limit table; "
                "use a semaphore with configMapKeyRef (the limit is read from a ConfigMap)"
            )
        ns = semaphore.namespace or namespace
        found.append(LockRef(f"{ns}/ConfigMap/{ref.name}/{ref.key}", "Semaphore", ns, ref.name or "", ref.key))
    unique: dict[str, LockRef] = {}
    for lock in found:
        unique.setdefault(lock.name, lock)
    return list(unique.values())


@dataclass(eq=False)
class _Waiter:
    holder: str
    locks: list[LockRef]
    order: tuple[int, str, int]
    message: str = field(default="")


#: ``limit(namespace, configmap, key)``: the text of a semaphore's limit (NotFoundError if missing).
LimitReader = Callable[[str, str, str], str]
#: Called while waiting: (message, the lock waited for, its current holders).
OnWait = Callable[[str, LockRef, list[str]], None]


class LockManager:
    """The mutexes and semaphores of one controller (see the module docstring)."""

    def __init__(self, read_limit: LimitReader | None = None) -> None:
        self._read_limit = read_limit
        self._holders: dict[str, list[str]] = {}
        self._queues: dict[str, list[_Waiter]] = {}
        self._news = asyncio.Event()
        self._seq = itertools.count()

    # ------------------------------------------------------------------ queries

    def holders(self, lock: str) -> list[str]:
        """Who holds ``lock`` now (holder keys)."""
        return list(self._holders.get(lock, []))

    def limit(self, lock: LockRef) -> int:
        """The number of holders ``lock`` allows (1 for a mutex); InvalidError if unreadable."""
        if lock.kind == "Mutex":
            return 1
        if self._read_limit is None:
            raise InvalidError(f"failed to get semaphore limit for {lock.name}: no ConfigMap resolver is configured")
        try:
            text = self._read_limit(lock.namespace, lock.config_map, lock.key)
        except EventBridgeError as exc:
            raise InvalidError(f"failed to get semaphore limit for {lock.name}: {exc}") from None
        try:
            return int(str(text).strip())
        except ValueError:
            raise InvalidError(f"failed to get semaphore limit for {lock.name}: {text!r} is not an integer") from None

    # ------------------------------------------------------------------ acquire / release

    async def acquire(
        self,
        holder: str,
        locks: list[LockRef],
        *,
        priority: int = 0,
        created: str = "",
        on_wait: OnWait | None = None,
        abort: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait until ``holder`` holds every lock of ``locks``; True once held, False if ``abort()``
        became true first. InvalidError when a semaphore's limit cannot be read."""
        if all(holder in self._holders.get(lock.name, []) for lock in locks):
            return True
        waiter = _Waiter(holder, locks, (-priority, created, next(self._seq)))
        for lock in locks:
            queue = self._queues.setdefault(lock.name, [])
            queue.append(waiter)
            queue.sort(key=lambda w: w.order)
        try:
            while True:
                if abort is not None and abort():
                    return False
                blocked = self._blocked(waiter)
                if blocked is None:
                    for lock in locks:
                        current = self._holders.setdefault(lock.name, [])
                        if holder not in current:
                            current.append(holder)
                    return True
                message, lock = blocked
                if on_wait is not None and message != waiter.message:
                    on_wait(message, lock, self.holders(lock.name))
                waiter.message = message
                news = self._news
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), RECHECK_SECONDS)
        finally:
            for lock in locks:
                queue = self._queues.get(lock.name, [])
                if waiter in queue:
                    queue.remove(waiter)
                if not queue:
                    self._queues.pop(lock.name, None)
            self._notify()

    def _blocked(self, waiter: _Waiter) -> tuple[str, LockRef] | None:
        """Why ``waiter`` cannot take its locks now (message, lock), or None if it can."""
        for lock in waiter.locks:
            current = self._holders.get(lock.name, [])
            if waiter.holder in current:
                continue
            limit = self.limit(lock)
            queue = self._queues.get(lock.name, [])
            if len(current) >= limit or (queue and queue[0] is not waiter):
                return f"Waiting for {lock.name} lock. Lock status: {max(limit - len(current), 0)}/{limit}", lock
        return None

    def release(self, holder: str, locks: list[LockRef] | list[str]) -> None:
        """``holder`` gives up ``locks`` (LockRefs or lock names); waiters are woken."""
        for lock in locks:
            name = lock.name if isinstance(lock, LockRef) else lock
            current = self._holders.get(name)
            if current and holder in current:
                current.remove(holder)
                if not current:
                    del self._holders[name]
        self._notify()

    def release_workflow(self, namespace: str, workflow: str) -> None:
        """Drop every lock held by a workflow or its nodes (the workflow was deleted)."""
        prefix = f"{namespace}/{workflow}"
        for name in list(self._holders):
            kept = [h for h in self._holders[name] if h != prefix and not h.startswith(prefix + "/")]
            if kept:
                self._holders[name] = kept
            else:
                del self._holders[name]
        self._notify()

    def restore(self, workflow: dict[str, Any]) -> None:
        """Take back the holders a stored (unfinished) workflow's ``status.synchronization`` lists."""
        sync = (workflow.get("status") or {}).get("synchronization") or {}
        pairs: list[tuple[str, str]] = []
        for holding in (sync.get("semaphore") or {}).get("holding") or []:
            pairs += [(str(holding.get("semaphore", "")), str(h)) for h in holding.get("holders") or []]
        for holding in (sync.get("mutex") or {}).get("holding") or []:
            pairs.append((str(holding.get("mutex", "")), str(holding.get("holder", ""))))
        for lock, holder in pairs:
            if lock and holder and holder not in self._holders.setdefault(lock, []):
                self._holders[lock].append(holder)
        self._notify()

    def poke(self) -> None:
        """Wake every waiter so it checks again (e.g. its workflow was stopped)."""
        self._notify()

    def _notify(self) -> None:
        self._news.set()
        self._news = asyncio.Event()


# ---------------------------------------------------------------------- status.synchronization


def record_holding(status: dict[str, Any], holder: str, locks: list[LockRef]) -> None:
    """Note in a workflow's ``status.synchronization`` that ``holder`` holds ``locks`` (Argo's shape)."""
    sync = status.setdefault("synchronization", {})
    for lock in locks:
        if lock.kind == "Mutex":
            mutex = sync.setdefault("mutex", {})
            holding = [h for h in mutex.get("holding") or [] if h.get("mutex") != lock.name]
            mutex["holding"] = [*holding, {"mutex": lock.name, "holder": holder}]
            _drop_waiting(mutex, "mutex", lock.name)
        else:
            semaphore = sync.setdefault("semaphore", {})
            holding = semaphore.setdefault("holding", [])
            entry = next((h for h in holding if h.get("semaphore") == lock.name), None)
            if entry is None:
                holding.append({"semaphore": lock.name, "holders": [holder]})
            elif holder not in entry.setdefault("holders", []):
                entry["holders"].append(holder)
            _drop_waiting(semaphore, "semaphore", lock.name)
    _tidy(status)


def record_waiting(status: dict[str, Any], lock: LockRef, holders: list[str]) -> None:
    """Note that this workflow waits for ``lock``, currently held by ``holders``."""
    sync = status.setdefault("synchronization", {})
    if lock.kind == "Mutex":
        if holders:
            mutex = sync.setdefault("mutex", {})
            waiting = [w for w in mutex.get("waiting") or [] if w.get("mutex") != lock.name]
            mutex["waiting"] = [*waiting, {"mutex": lock.name, "holder": holders[0]}]
    else:
        semaphore = sync.setdefault("semaphore", {})
        waiting = [w for w in semaphore.get("waiting") or [] if w.get("semaphore") != lock.name]
        semaphore["waiting"] = [*waiting, {"semaphore": lock.name, "holders": list(holders)}]
    _tidy(status)


def record_released(status: dict[str, Any], holder: str, locks: list[LockRef]) -> None:
    """Remove ``holder`` from the holding (and waiting) entries of ``locks``."""
    sync = status.get("synchronization") or {}
    for lock in locks:
        if lock.kind == "Mutex":
            mutex = sync.get("mutex") or {}
            mutex["holding"] = [
                h for h in mutex.get("holding") or [] if not (h.get("mutex") == lock.name and h.get("holder") == holder)
            ]
            _drop_waiting(mutex, "mutex", lock.name)
        else:
            semaphore = sync.get("semaphore") or {}
            for entry in semaphore.get("holding") or []:
                if entry.get("semaphore") == lock.name:
                    entry["holders"] = [h for h in entry.get("holders") or [] if h != holder]
            semaphore["holding"] = [h for h in semaphore.get("holding") or [] if h.get("holders")]
            _drop_waiting(semaphore, "semaphore", lock.name)
    _tidy(status)


def _drop_waiting(section: dict[str, Any], field_name: str, lock: str) -> None:
    section["waiting"] = [w for w in section.get("waiting") or [] if w.get(field_name) != lock]


def _tidy(status: dict[str, Any]) -> None:
    """Remove empty lists and sections, as Argo's omitempty JSON would."""
    sync = status.get("synchronization")
    if not isinstance(sync, dict):
        return
    for section in ("mutex", "semaphore"):
        part = sync.get(section)
        if isinstance(part, dict):
            for key in ("holding", "waiting"):
                if not part.get(key):
                    part.pop(key, None)
            if not part:
                sync.pop(section, None)
    if not sync:
        status.pop("synchronization", None)
