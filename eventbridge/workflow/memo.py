"""Memoization caches (template ``memoize``) kept as ConfigMap objects in the Store, as Argo keeps them.

A cache is a ``v1 ConfigMap`` named ``memoize.cache.configMap.name`` in the workflow's namespace,
labelled ``workflows.argoproj.io/configmap-type: Cache``; each ``data`` key is a memoization key
and its value Argo's entry JSON::

    {"nodeID": "...", "outputs": {...}, "creationTimestamp": "...", "lastHitTimestamp": "..."}

A ConfigMap without that label is refused (as Argo refuses it). The SQLite store keeps any kind;
a store that does not serve ConfigMaps (the Kubernetes store serves only argoproj.io kinds) makes
every lookup a miss, with one warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from eventbridge.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from eventbridge.store.base import Object, Store
from eventbridge.workflow.nodes import now

log = logging.getLogger(__name__)

CONFIGMAP_TYPE_LABEL = "workflows.argoproj.io/configmap-type"
CACHE_TYPE = "Cache"
KEY_PATTERN = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")


class MemoCache:
    """Load and save memoized outputs (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._unserved = False

    async def load(self, namespace: str, cache: str, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key``, or None; its ``lastHitTimestamp`` is refreshed."""
        _check_key(key)
        obj = await self._get(namespace, cache)
        if obj is None:
            return None
        raw = (obj.get("data") or {}).get(key)
        if not raw:
            return None
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidError(f"memoization cache {cache!r}: the entry for {key!r} is not JSON") from None
        if not isinstance(entry, dict) or not entry.get("nodeID"):
            return None
        entry["lastHitTimestamp"] = now()
        obj.setdefault("data", {})[key] = json.dumps(entry, separators=(",", ":"))
        with contextlib.suppress(ConflictError, NotFoundError):  # the hit time is advisory
            await self.store.update(obj)
        return entry

    async def save(self, namespace: str, cache: str, key: str, node_id: str, outputs: dict[str, Any] | None) -> None:
        """Store ``outputs`` of node ``node_id`` under ``key`` (creating the cache if needed)."""
        _check_key(key)
        stamp = now()
        entry = {"nodeID": node_id, "outputs": outputs or {}, "creationTimestamp": stamp, "lastHitTimestamp": stamp}
        text = json.dumps(entry, separators=(",", ":"))
        for _attempt in range(5):
            obj = await self._get(namespace, cache)
            if self._unserved:
                return
            try:
                if obj is None:
                    await self.store.create(
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {
                                "name": cache,
                                "namespace": namespace,
                                "labels": {CONFIGMAP_TYPE_LABEL: CACHE_TYPE},
                            },
                            "data": {key: text},
                        }
                    )
                else:
                    obj.setdefault("data", {})[key] = text
                    await self.store.update(obj)
                return
            except (ConflictError, AlreadyExistsError):
                continue
        raise InvalidError(f"memoization cache {cache!r}: could not save {key!r} (too many concurrent changes)")

    async def _get(self, namespace: str, cache: str) -> Object | None:
        if self._unserved:
            return None
        try:
            obj = await self.store.get("ConfigMap", namespace, cache)
        except NotFoundError:
            return None
        except InvalidError as exc:  # this store does not serve ConfigMaps
            log.warning("memoization is off: the store cannot keep ConfigMaps (%s)", exc)
            self._unserved = True
            return None
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(CONFIGMAP_TYPE_LABEL) != CACHE_TYPE:
            raise InvalidError(
                f"memoization configmap {namespace}/{cache} doesn't have label {CONFIGMAP_TYPE_LABEL} = "
                f"{CACHE_TYPE}, refusing to use it"
            )
        return obj


def _check_key(key: str) -> None:
    if not KEY_PATTERN.match(key):
        raise InvalidError(f"invalid cache key: {key!r} (letters, digits and '-', starting with a letter or digit)")


def fresh(entry: dict[str, Any], max_age: float | None) -> bool:
    """Whether a cache entry is younger than ``max_age`` seconds (always, without a max age)."""
    if max_age is None:
        return True
    created = str(entry.get("creationTimestamp") or "")
    try:
        stamp = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (datetime.now(UTC) - stamp).total_seconds() <= max_age
