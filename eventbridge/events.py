"""The Event: a CloudEvents 1.0 event as it travels from sources through the bus to sensors.

Attributes follow Argo Events: ``source`` is the EventSource name, ``subject`` the event name
(the key under the source type in the EventSource spec), ``type`` the source type (``webhook``,
``github``...). ``data`` is the decoded JSON payload in Argo's shape for that type.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventbridge import jsontree


def new_event_id() -> str:
    """A random id in Argo's format (32 hex characters)."""
    return uuid.uuid4().hex


def format_time(moment: datetime) -> str:
    """RFC 3339 with microseconds and a ``Z`` suffix."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # %-formatting of the fields: the same text as isoformat(timespec="microseconds"), at half the cost
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
    )


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Event:
    """One CloudEvent. ``namespace`` is the namespace of the EventSource that produced it."""

    id: str
    source: str
    subject: str
    type: str
    data: Any
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    namespace: str = "default"
    datacontenttype: str = "application/json"
    extensions: dict[str, str] = field(default_factory=dict)

    def context(self) -> dict[str, str]:
        """The event context as Argo's sensors see it (``EventContext``)."""
        return {
            "id": self.id,
            "source": self.source,
            "specversion": "1.0",
            "type": self.type,
            "datacontenttype": self.datacontenttype,
            "subject": self.subject,
            "time": format_time(self.time),
        }

    def to_cloudevent(self) -> dict[str, Any]:
        """Structured-mode CloudEvent JSON object."""
        out: dict[str, Any] = {**self.context(), "namespace": self.namespace, **self.extensions}
        out["data"] = self.data
        return out

    def to_bytes(self) -> bytes:
        return jsontree.dumps(self.to_cloudevent())

    @classmethod
    def from_cloudevent(cls, obj: dict[str, Any]) -> Event:
        """Build an Event from a structured-mode CloudEvent object; raises KeyError/ValueError."""
        known = {"id", "source", "specversion", "type", "datacontenttype", "subject", "time", "data", "namespace"}
        extensions = {k: str(v) for k, v in obj.items() if k not in known}
        time_text = obj.get("time")
        return cls(
            id=str(obj["id"]),
            source=str(obj["source"]),
            subject=str(obj.get("subject", "")),
            type=str(obj.get("type", "")),
            data=obj.get("data"),
            time=parse_time(time_text) if time_text else datetime.now(UTC),
            namespace=str(obj.get("namespace", "default")),
            datacontenttype=str(obj.get("datacontenttype", "application/json")),
            extensions=extensions,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Event:
        return cls.from_cloudevent(jsontree.loads(raw))
