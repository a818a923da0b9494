"""Slow and failing triggers against a real `eventbridge up`: retries with backoff, the dlqTrigger
after the last retry, and back-pressure to webhook senders (503 + Retry-After) while the sensor
cannot keep up."""

from __future__ import annotations

import asyncio
import itertools

from faults_helpers import SendReport, bus_progress, eventually, recorder, send_all
from harness import Process

SOURCE = """
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: hooks}
spec:
  webhook:
    hit: {port: "WEBHOOK_PORT", endpoint: /hit, method: POST}
"""

FAILING_SENSOR = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: flaky}
spec:
  dependencies:
    - {name: dep, eventSourceName: hooks, eventName: hit}
  triggers:
    - template:
        name: failing
        http:
          url: RECORDER/fail
          payload:
            - {src: {dependencyName: dep, dataKey: body.n}, dest: n}
      retryStrategy: {steps: 3, duration: 1s, factor: 2}
      dlqTrigger:
        template:
          name: failing-dlq
          http:
            url: RECORDER/dlq-failing
            payload:
              - {src: {dependencyName: dep, dataKey: body.n}, dest: n}
    - template:
        name: slow
        http:
          url: RECORDER/slow
          timeout: 1
          payload:
            - {src: {dependencyName: dep, dataKey: body.n}, dest: n}
      retryStrategy: {steps: 2, duration: 1s}
      dlqTrigger:
        template:
          name: slow-dlq
          http:
            url: RECORDER/dlq-slow
            payload:
              - {src: {dependencyName: dep, dataKey: body.n}, dest: n}
    - template:
        name: healthy
        http:
          url: RECORDER/ok
          payload:
            - {src: {dependencyName: dep, dataKey: body.n}, dest: n}
"""

SLOW_SENSOR = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: slow}
spec:
  dependencies:
    - {name: dep, eventSourceName: hooks, eventName: hit}
  triggers:
    - template:
        name: slow
        http:
          url: RECORDER/slow
          payload:
            - {src: {dependencyName: dep, dataKey: body.n}, dest: n}
"""


async def test_failing_and_slow_triggers_retry_with_backoff_then_dead_letter(eventbridge: Process) -> None:
    async with recorder() as server:
        server.behaviour = {"/fail": ("status", 500), "/slow": ("sleep", 5)}
        eventbridge.write("source.yaml", SOURCE)
        eventbridge.write("sensor.yaml", FAILING_SENSOR.replace("RECORDER", server.url))
        await asyncio.to_thread(eventbridge.start)
        assert eventbridge.post_event("/hit", {"n": 7})[0] == 200

        # The triggers of one event run side by side: the healthy one does not wait for the others.
        await eventually(lambda: bool(server.paths("/ok")), 30, "the healthy trigger")
        assert len(server.paths("/dlq-failing")) == 0
        await eventually(
            lambda: bool(server.paths("/dlq-failing") and server.paths("/dlq-slow")), 30, "both dead-letter triggers"
        )
        failing, slow = server.paths("/fail"), server.paths("/slow")
        assert [hit.body for hit in failing] == [{"n": "7"}] * 3
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(failing)]
        assert 0.9 <= gaps[0] < 1.9 and 1.9 <= gaps[1] < 3.5, gaps  # 1 s, then 2 s (factor 2)
        assert [hit.body for hit in server.paths("/dlq-failing")] == [{"n": "7"}]
        assert server.paths("/dlq-failing")[0].at > failing[-1].at
        assert len(slow) == 2 and 1.9 <= slow[1].at - slow[0].at < 4, [h.at for h in slow]  # 1 s timeout + 1 s
        assert [hit.body for hit in server.paths("/dlq-slow")] == [{"n": "7"}]
        # The broken triggers did not keep the healthy one from running, nor the sensor from going on.
        assert [hit.body for hit in server.paths("/ok")] == [{"n": "7"}]
        assert eventbridge.post_event("/hit", {"n": 8})[0] == 200
        await eventually(lambda: len(server.paths("/ok")) >= 2, 30, "the second event")
        assert [hit.body for hit in server.paths("/ok")] == [{"n": "7"}, {"n": "8"}]
    log = eventbridge.log.read_text()
    assert "gave up after 3 attempt(s)" in log and "gave up after 2 attempt(s)" in log


async def test_backlog_bound_makes_senders_back_off(eventbridge: Process) -> None:
    limit, events, concurrency = 10, 120, 8
    async with recorder() as server:
        server.behaviour = {"/slow": ("sleep", 0.04)}
        eventbridge.write("source.yaml", SOURCE)
        eventbridge.write("sensor.yaml", SLOW_SENSOR.replace("RECORDER", server.url))
        await asyncio.to_thread(eventbridge.start, {"EVENTBRIDGE_MAX_BACKLOG": str(limit)})
        report = SendReport()
        sender = asyncio.create_task(
            send_all(f"http://127.0.0.1:{eventbridge.webhook_port}/hit", events, concurrency=concurrency,
                     report=report, deadline=60)
        )  # fmt: skip
        worst = 0
        while not sender.done():
            head, cursors = bus_progress(eventbridge.state)
            worst = max(worst, head - cursors.get("sensor:default/slow", 0))
            await asyncio.sleep(0.02)
        await sender
        await eventually(lambda: len(server.paths("/slow")) >= events, 30, "every accepted event")

    print(f"back-pressure: {report.attempts} requests, refusals {dict(report.failures)}, worst backlog {worst}")
    assert len(report.acked) == events
    assert report.failures["status 503"] > 0 and set(report.failures) == {"status 503"}
    assert set(report.retry_after) == {"1"}
    # Accepted-but-unprocessed events stay near the bound: the limit, plus the requests that were
    # already past the check, plus the few milliseconds the durable cursor trails the real one.
    assert worst <= limit + concurrency + 2, worst
    delivered = sorted(int(hit.body["n"]) for hit in server.paths("/slow"))
    assert delivered == list(range(events))  # each accepted event exactly once, none of the refused
    assert "refused with 503" in eventbridge.log.read_text()
