"""Keeps a connection-based source running: reconnect with capped exponential backoff.

A source whose server (Kafka, SQS...) cannot be reached must not fail ``eventbridge up``: its
``start()`` returns at once and a :class:`Reconnector` runs the connection loop in a task.

* ``session(connected)`` connects and consumes until it fails; it calls ``connected()`` once the
  server answered, which resets the backoff.
* After a failure the reconnector waits ``initial`` seconds, doubling up to ``maximum`` (with
  +-20 % jitter), and tries again, forever.
* Logging happens once per state change: the first failure (and a failure with a different
  reason) is a WARNING, repeats of the same reason are DEBUG, and getting through after failures
  is an INFO. :attr:`Reconnector.problem` holds the current reason (``None`` when healthy), which
  the manager reports as state ``retrying``.
* :class:`~eventbridge.errors.PermanentError` stops the loop (logged as ERROR, kept in ``problem``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import ClassVar

from eventbridge.errors import PermanentError

Session = Callable[[Callable[[], None]], Awaitable[None]]


def describe(exc: BaseException) -> str:
    """A short one-line reason: ``ExceptionType: message``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Reconnector:
    """Runs ``session`` until :meth:`stop`, reconnecting after failures (see module docstring)."""

    #: First wait after a failure, and the cap of the doubling waits (seconds).
    initial_delay: ClassVar[float] = 1.0
    max_delay: ClassVar[float] = 30.0

    def __init__(
        self,
        what: str,
        session: Session,
        *,
        logger: logging.Logger,
        labels: Mapping[str, str],
        initial: float | None = None,
        maximum: float | None = None,
    ) -> None:
        self.what = what
        self._session = session
        self._log = logger
        self._labels = dict(labels)
        self.initial = self.initial_delay if initial is None else initial
        self.maximum = self.max_delay if maximum is None else maximum
        self.problem: str | None = None
        self.attempts = 0
        self._task: asyncio.Task[None] | None = None
        self._delay = self.initial

    def start(self) -> None:
        """Start the loop in a background task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"source {self.what}")

    async def stop(self) -> None:
        """Cancel the loop and wait for it (the session's ``finally`` blocks run)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _connected(self) -> None:
        self._delay = self.initial
        if self.problem is not None:
            self._log.info("%s: connected again", self.what, extra=self._labels)
            self.problem = None

    async def _run(self) -> None:
        while True:
            self.attempts += 1
            try:
                await self._session(self._connected)
                return
            except asyncio.CancelledError:
                raise
            except PermanentError as exc:
                self.problem = describe(exc)
                self._log.error("%s stopped: %s", self.what, self.problem, extra=self._labels)
                return
            except Exception as exc:  # noqa: BLE001
                reason = describe(exc)
                if reason != self.problem:
                    self._log.warning(
                        "%s: %s; retrying with backoff (up to every %.0fs)",
                        self.what,
                        reason,
                        self.maximum,
                        extra=self._labels,
                    )
                else:
                    self._log.debug("%s: still failing: %s", self.what, reason, extra=self._labels)
                self.problem = reason
            delay = self._delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
            self._delay = min(self._delay * 2, self.maximum)
            await asyncio.sleep(delay)
