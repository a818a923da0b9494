"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Roles that must be single-active (the workflow controller, calendar, Kafka and file event sources)
run their work under :meth:`LeaderElector.run`:

* acquire: the Lease is created, or taken over when its holder has not renewed it for
  ``lease_duration`` seconds *as observed locally* (no trust in other machines' clocks), or when it
  was released (empty holder). Writes carry the resourceVersion read, so two candidates cannot
  both win;
* while leading, the Lease is renewed every ``retry_period``; if no renewal succeeds within
  ``renew_deadline`` (or someone else holds the Lease), the work is cancelled and ``run`` returns
  ``False``: the caller steps down (exits, and its Deployment restarts it as a candidate);
* when the work returns or is cancelled, the Lease is released (empty holder) so a standby takes
  over at once.

Durations come from the environment with :meth:`LeaseSettings.from_env`:
``EVENTBRIDGE_LEASE_DURATION`` (15s), ``EVENTBRIDGE_LEASE_RENEW_DEADLINE`` (10s),
``EVENTBRIDGE_LEASE_RETRY_PERIOD`` (2s); values in seconds, with an optional ``s`` or ``ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from eventbridge.errors import InvalidError

log = logging.getLogger(__name__)


def _seconds(text: str, name: str) -> float:
    value = text.strip().lower()
    try:
        if value.endswith("ms"):
            return float(value[:-2]) / 1000
        if value.endswith("s"):
            return float(value[:-1])
        return float(value)
    except ValueError:
        raise InvalidError(f"{name}={text!r} is not a duration (e.g. 15s, 500ms, 15)") from None


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """Which Lease, who we are, and the timings (seconds)."""

    name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not (self.lease_duration > self.renew_deadline > self.retry_period > 0):
            raise InvalidError(
                "lease timings must satisfy lease duration > renew deadline > retry period > 0 "
                f"(got {self.lease_duration}, {self.renew_deadline}, {self.retry_period})"
            )

    @classmethod
    def from_env(cls, name: str, namespace: str | None = None, identity: str | None = None) -> LeaseSettings:
        """Settings for Lease ``name``; namespace from ``EVENTBRIDGE_NAMESPACE`` (else ``default``),
        identity from ``EVENTBRIDGE_POD_NAME`` (else host name + a random suffix)."""
        env = os.environ

        def duration(key: str, default: str) -> float:
            return _seconds(env.get(key, default), key)

        return cls(
            name=name,
            namespace=namespace or env.get("EVENTBRIDGE_NAMESPACE") or "default",
            identity=identity or env.get("EVENTBRIDGE_POD_NAME") or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}",
            lease_duration=_seconds(env.get("EVENTBRIDGE_LEASE_DURATION", "15"), "EVENTBRIDGE_LEASE_DURATION"),
            renew_deadline=_seconds(
                env.get("EVENTBRIDGE_LEASE_RENEW_DEADLINE", "10"), "EVENTBRIDGE_LEASE_RENEW_DEADLINE"
            ),
            retry_period=_seconds(env.get("EVENTBRIDGE_LEASE_RETRY_PERIOD", "2"), "EVENTBRIDGE_LEASE_RETRY_PERIOD"),
        )


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs work only while holding the Lease; see the module docstring."""

    def __init__(self, api_client: k8s.ApiClient, settings: LeaseSettings) -> None:
        self.settings = settings
        self._api = k8s.CoordinationV1Api(api_client)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time it was first seen
        self._leading = False
        self.transitions_seen = 0

    @property
    def is_leader(self) -> bool:
        return self._leading

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # API -------------------------------------------------------------------------------------

    async def _call(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def _read(self) -> dict[str, Any] | None:
        s = self.settings
        try:
            response = await self._call(
                lambda: self._api.read_namespaced_lease(s.name, s.namespace, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast(dict[str, Any], json.loads(response.data))

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        s = self.settings
        old = (previous or {}).get("spec") or {}
        now = _micro_time()
        taking_over = old.get("holderIdentity") != s.identity
        return {
            "holderIdentity": s.identity,
            "leaseDurationSeconds": max(1, round(s.lease_duration)),
            "acquireTime": now if taking_over or not old.get("acquireTime") else old["acquireTime"],
            "renewTime": now,
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (1 if taking_over and old else 0),
        }

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the Lease afterwards."""
        s = self.settings
        current = await self._read()
        if current is None:
            body = {"metadata": {"name": s.name, "namespace": s.namespace}, "spec": self._spec(None)}
            try:
                await self._call(
                    lambda: self._api.create_namespaced_lease(s.namespace, cast(Any, body), _preload_content=False)
                )
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
            self._note(body["spec"])
            return True
        spec = current.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        self._note(spec)
        if holder and holder != s.identity:
            expires = self._observed_at + float(spec.get("leaseDurationSeconds") or s.lease_duration)
            if time.monotonic() < expires:
                return False
        body = {"metadata": current["metadata"], "spec": self._spec(current)}
        try:
            await self._call(
                lambda: self._api.replace_namespaced_lease(s.name, s.namespace, cast(Any, body), _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote it first
                return False
            raise
        self._note(body["spec"])
        return True

    def _note(self, spec: dict[str, Any]) -> None:
        record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()

    async def release(self) -> None:
        """Give the Lease up (empty holder) if we hold it."""
        s = self.settings
        with contextlib.suppress(ApiException, OSError, urllib3.exceptions.HTTPError):
            current = await self._read()
            if current is None or (current.get("spec") or {}).get("holderIdentity") != s.identity:
                return
            spec = {**current["spec"], "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _micro_time()}
            body = {"metadata": current["metadata"], "spec": spec}
            await self._call(
                lambda: self._api.replace_namespaced_lease(s.name, s.namespace, cast(Any, body), _preload_content=False)
            )
        self._leading = False

    # election --------------------------------------------------------------------------------

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            reason = f"{exc.status} {exc.reason}" if isinstance(exc, ApiException) else str(exc)
            log.warning("lease %s/%s: %s", self.settings.namespace, self.settings.name, reason)
            return False

    async def acquire(self) -> None:
        """Wait until we hold the Lease."""
        while True:
            if await self._attempt():
                break
            await asyncio.sleep(self.settings.retry_period)
        self._leading = True
        log.info("lease %s/%s: %s is the leader", self.settings.namespace, self.settings.name, self.settings.identity)

    async def run(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Acquire, then run ``work()`` while renewing. True if ``work`` ended by itself (the Lease
        is released), False if leadership was lost (``work`` was cancelled)."""
        await self.acquire()
        task = asyncio.ensure_future(work())
        lost = False
        try:
            last_renewal = time.monotonic()
            while not task.done():
                done, _ = await asyncio.wait({task}, timeout=self.settings.retry_period)
                if done:
                    break
                if await self._attempt():
                    last_renewal = time.monotonic()
                elif time.monotonic() - last_renewal > self.settings.renew_deadline or (
                    self._observed and self._observed[0] not in ("", self.settings.identity)
                ):
                    lost = True
                    log.error(
                        "lease %s/%s: leadership lost by %s; stepping down",
                        self.settings.namespace,
                        self.settings.name,
                        self.settings.identity,
                    )
                    break
        finally:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._leading = False
            if not lost:
                await self.release()
        return not lost
