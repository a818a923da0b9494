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

:class:`ConditionsBus` is the cluster mode's second stage for ``&&`` conditions (Kafka): a topic
per sensor where the dependency events of each trigger are forwarded, keyed by the trigger's name,
so all of one trigger's events reach the one replica that owns that partition. See
:mod:`eventbridge.sensor.manager` and :mod:`eventbridge.bus.kafka`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from eventbridge.events import Event

T = TypeVar("T")


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


async def publish_all(bus: Bus, events: Sequence[Event]) -> list[bool | Exception]:
    """Publish several events at once: each result is ``publish``'s answer or the exception it
    raised. A bus with a ``publish_many`` of the same contract (the SQLite bus: one batch, no task
    per event) does it natively; any other publishes them concurrently."""
    native = getattr(bus, "publish_many", None)
    if native is not None:
        results: list[bool | Exception] = await native(events)
        return results
    return await settled([bus.publish(event) for event in events])


async def settled(awaitables: Iterable[Awaitable[T]]) -> list[T | Exception]:
    """Await all of them concurrently: each one's result, or the exception it raised. A
    cancellation (or another BaseException) is not a result: it propagates."""
    outcomes = await asyncio.gather(*awaitables, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    return cast(list[T | Exception], outcomes)


@dataclass(frozen=True, slots=True)
class ConditionDelivery(Delivery):
    """A dependency event forwarded for one trigger, read from a sensor's conditions topic."""

    trigger: str
    dependency: str
    partition: int
    generation: int  # this member's ownership of the partition; an ack from an earlier one is ignored


class ConditionsSubscription(Protocol):
    def __aiter__(self) -> AsyncIterator[ConditionDelivery]: ...

    async def ack(self, delivery: Delivery) -> None: ...

    async def close(self) -> None: ...


LostPartitions = Callable[[set[int]], Awaitable[None]]
"""Called with the partitions another member took over: drop the state built from them (without
acknowledging it); the new owner reads them again from the last committed offset."""


class ConditionsBus(Protocol):
    def forward(self, namespace: str, sensor: str, trigger: str, dependency: str, event: Event) -> Awaitable[None]:
        """Queue the record now (records keep the order of the calls); await the result for its
        durability (raises :class:`~eventbridge.errors.TemporaryError` when it was not stored)."""
        ...

    async def subscribe(
        self, namespace: str, sensor: str, group: str, on_lost: LostPartitions
    ) -> ConditionsSubscription: ...
