"""Stopping asyncio tasks: the one way every long-lived part of eventbridge does it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_all(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel every task (``None`` entries are skipped), then wait for each to end. A task that
    ended with an error of its own has it logged, not raised, so that stopping goes on."""
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    for task in pending:
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001  (stopping must not fail because a task had)
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.warning("task %s had ended with an error: %s", name, exc)


__all__ = ["cancel_all"]
