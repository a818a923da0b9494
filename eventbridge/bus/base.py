"""The Bus protocol shared by the embedded SQLite log and the Kafka bus.

Contract:

* ``publish`` returns only once the event is durable (committed to disk or acknowledged by
  the broker). It returns ``False`` when an event with the same (namespace, source, subject, id)
  is already on the bus: a redelivery is recognised and not stored twice.
* ``subscribe(group)`` yields every event published after the group was first created (or all
  retained events for a new group when ``from_start`` is set), in publish order. Delivery is at
  least once: after a restart a group resumes after the last *acknowledged* offset.
* ``ack`` may be called out of order; the durable cursor only advances over a contiguous prefix
  of acknowledged offsets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from eventbridge.events import Event


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event handed to a subscriber, with the offset to acknowledge."""

    event: Event
    offset: int


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def ack(self, delivery: Delivery) -> None: ...

    async def close(self) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, event: Event) -> bool: ...

    def subscribe(self, group: str, *, from_start: bool = False) -> Subscription: ...
