"""The ``log`` trigger: writes the events that fired it to the log (Argo's ``log`` trigger).

``intervalSeconds`` throttles it: after one line, further firings within that many seconds are
not printed (they still count as successful executions).
"""

from __future__ import annotations

import json
import logging
import time

from eventbridge.events import Event
from eventbridge.models.sensor import Sensor, Trigger
from eventbridge.triggers.base import TRIGGERS, TriggerAction, TriggerCall, TriggerOutcome, TriggerServices

log = logging.getLogger(__name__)


def _describe(dependency: str, event: Event) -> dict[str, object]:
    return {"dependencyName": dependency, "context": event.context(), "data": event.data}


@TRIGGERS.register("log")
class LogTrigger(TriggerAction):
    key = "log"

    def __init__(self, sensor: Sensor, trigger: Trigger, services: TriggerServices) -> None:
        super().__init__(sensor, trigger, services)
        self._last_print: float | None = None

    async def execute(self, call: TriggerCall) -> TriggerOutcome:
        settings = call.template.log
        interval = (settings.interval_seconds or 0) if settings is not None else 0
        now = time.monotonic()
        if self._last_print is not None and interval > 0 and now - self._last_print < interval:
            return TriggerOutcome("log: throttled by intervalSeconds")
        self._last_print = now
        described = [_describe(name, event) for name, event in sorted(call.events.items())]
        log.info(
            "sensor %s/%s trigger %s fired by %s",
            self.sensor.namespace,
            self.sensor.name,
            call.template.name,
            json.dumps(described, default=str, ensure_ascii=False),
            extra={
                "sensorName": self.sensor.name,
                "triggerName": call.template.name,
                "namespace": self.sensor.namespace,
            },
        )
        return TriggerOutcome(f"logged {len(described)} event(s)")
