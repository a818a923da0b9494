"""schemathesis against the OpenAPI document of the API (the one /api/v1/openapi.json serves),
requests sent to a real `eventbridge up`: every operation, a bounded number of generated
requests each (path parameters, query strings, JSON bodies), and not one answer may be a 5xx.

The operations are read from the app's own router at collection time (the same function serves
the document); the watch stream (/api/v1/workflow-events/) never ends by design and is left out.
EVENTBRIDGE_FUZZ_API_EXAMPLES sets the examples per operation (default 15)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from harness import Process, http
from hypothesis import HealthCheck, given, settings

from eventbridge.executors.host import HostExecutor
from eventbridge.server.app import ApiContext, build_app, openapi_document
from eventbridge.store.sqlite import SqliteStore

EXAMPLES = int(os.environ.get("EVENTBRIDGE_FUZZ_API_EXAMPLES", "15"))

MANIFESTS = """
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: api-fuzz}
spec:
  webhook:
    hit: {port: "WEBHOOK_PORT", endpoint: /hit, method: POST}
---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: api-fuzz}
spec:
  dependencies:
    - {name: dep, eventSourceName: api-fuzz, eventName: hit}
  triggers:
    - template: {name: log, log: {}}
"""


def _document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:  # nothing is started: only the routes are read
        app = build_app(ApiContext(store=SqliteStore(Path(scratch) / "s.db"), executor=HostExecutor(Path(scratch))))
        return openapi_document(app)


SCHEMA = schemathesis.openapi.from_dict(_document())
OPERATIONS = [
    result.ok() for result in SCHEMA.get_all_operations() if not result.ok().path.startswith("/api/v1/workflow-events/")
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = Process(tmp_path_factory.mktemp("openapi"))
    process.write("api-fuzz.yaml", MANIFESTS)
    process.start()
    try:
        assert process.post_event("/hit", {"seed": "event"})[0] == 200  # something in the event log
        yield process
    finally:
        process.stop()


def test_the_served_document_is_the_one_fuzzed(served: Process) -> None:
    status, _, raw = http("GET", f"{served.url}/api/v1/openapi.json")
    assert status == 200
    assert set(json.loads(raw)["paths"]) == set(SCHEMA.raw_schema["paths"])


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_generated_request_gets_a_server_error(operation: Any, served: Process) -> None:
    seen: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(operation.as_strategy())
    def check(case: Any) -> None:
        response = case.call(base_url=served.url, timeout=15)
        seen.append(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.text[:300])

    check()
    assert seen


def test_the_process_logged_no_handler_crash(served: Process) -> None:
    log = served.log.read_text()
    assert "eventbridge/server" not in log, log[-3000:]
