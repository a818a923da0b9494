"""Fixtures for the fault-injection tests: the e2e harness (a real `eventbridge up` process) and the
real servers (moto, Tansu) of tests/servers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS / "faults", _TESTS / "e2e", _TESTS / "servers"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from faults_helpers import TansuOnS3  # noqa: E402
from harness import Process  # noqa: E402
from realservers import moto_server  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuOnS3]:
    """A Tansu broker keeping its data in a real S3 API (moto), for the broker-outage tests."""
    with moto_server() as s3:
        tansu = TansuOnS3(s3.url, tmp_path)
        tansu.start()
        try:
            yield tansu
        finally:
            tansu.stop()


@pytest.fixture
def eventbridge(tmp_path: Path) -> Iterator[Process]:
    process = Process(tmp_path)
    try:
        yield process
    finally:
        process.stop()
