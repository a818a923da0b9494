"""Fixtures for end-to-end tests against the real `eventbridge up` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Process


@pytest.fixture
def eventbridge(tmp_path: Path) -> Iterator[Process]:
    process = Process(tmp_path)
    try:
        yield process
    finally:
        process.stop()
