"""The CloudEvent envelope: time formatting and the bytes round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from eventbridge.events import Event, format_time, parse_time

ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))])


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES))
def test_format_time_is_rfc3339_utc_with_microseconds(moment: datetime) -> None:
    """format_time writes the fields itself; it must equal isoformat's text of the UTC instant."""
    utc = moment.astimezone(UTC)
    assert format_time(moment) == utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    assert parse_time(format_time(moment)) == moment


def test_an_event_survives_its_bytes() -> None:
    moment = datetime(2026, 11, 28, 13, 5, 7, 42, tzinfo=UTC)
    event = Event(id="e-1", source="hooks", subject="push", type="webhook", namespace="ci", data={"a": [1, "é"]},
                  time=moment, extensions={"traceparent": "00-x"})  # fmt: skip
    assert Event.from_bytes(event.to_bytes()) == event
