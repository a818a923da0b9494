"""cancel_all: how every long-lived part stops its tasks."""

from __future__ import annotations

import asyncio
import logging

import pytest

from eventbridge.tasks import cancel_all


async def test_cancels_waits_and_logs_a_task_that_had_failed(caplog: pytest.LogCaptureFixture) -> None:
    cleaned: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits: cancel_all must wait for it
            cleaned.append("forever")

    async def fails() -> None:
        raise RuntimeError("broken pipe")

    running = asyncio.create_task(forever(), name="forever")
    failed = asyncio.create_task(fails(), name="fails")
    finished = asyncio.create_task(asyncio.sleep(0), name="finished")
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="eventbridge.tasks"):
        await cancel_all([running, None, failed, finished])
    assert running.cancelled() and cleaned == ["forever"]
    assert failed.done() and finished.done() and not finished.cancelled()
    assert [r.getMessage() for r in caplog.records] == ["task fails had ended with an error: broken pipe"]
