"""Log lines: JSON with Argo's label keys, or text with the labels appended."""

from __future__ import annotations

import json
import logging

from eventbridge.cli.common import JsonFormatter, TextFormatter


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("eventbridge.sensor", logging.WARNING, __file__, 1, "fired %s", ("x",), None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_label_keys_and_the_message() -> None:
    line = json.loads(JsonFormatter().format(record(sensorName="s1", triggerName="t", namespace="ns")))
    assert line["msg"] == "fired x" and line["level"] == "warning" and line["logger"] == "eventbridge.sensor"
    assert (line["sensorName"], line["triggerName"], line["namespace"]) == ("s1", "t", "ns")
    assert line["time"].endswith("+00:00")
    assert "eventSourceName" not in line


def test_text_lines_append_labels_only_when_present() -> None:
    assert TextFormatter().format(record(eventSourceName="gh")).endswith("fired x [eventSourceName=gh]")
    assert TextFormatter().format(record()).endswith("fired x")
