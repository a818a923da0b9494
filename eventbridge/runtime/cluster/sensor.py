"""``eventbridge sensor``: the namespace's Sensors; the sensors of one bus share a SensorManager."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from kubernetes import client as k8s

from eventbridge.bus.kafka import KafkaBus
from eventbridge.errors import (
    EventBridgeError,
)
from eventbridge.models.sensor import Sensor
from eventbridge.runtime.cluster.buses import BusConfig, BusPool, bus_config, eventbuses_of
from eventbridge.runtime.cluster.common import (
    DEFAULT_BUS,
    ClusterSettings,
    KubeReferences,
    ManifestCache,
    ObjectWatcher,
)
from eventbridge.runtime.embedded import StoreWorkflowOperations
from eventbridge.sensor.manager import SensorManager
from eventbridge.store.kube import KubeStore, api_client_from_environment
from eventbridge.store.kube_objects import KubeObjects

log = logging.getLogger(__name__)


@dataclass
class _SensorGroup:
    config: BusConfig
    bus: KafkaBus
    manager: SensorManager


class SensorRole:
    """``eventbridge sensor``: see the module docstring."""

    name = "sensor"

    def __init__(self, settings: ClusterSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api_client = api_client or api_client_from_environment(settings.kubeconfig)
        self.references = KubeReferences(self.api_client)
        self.store = KubeStore(self.api_client, namespace=settings.watch_namespace)
        self.objects = KubeObjects(self.api_client, default_namespace=settings.namespace)
        self.buses = BusPool()
        self._groups: dict[str, _SensorGroup] = {}
        self._sensors = ManifestCache("Sensor")
        self._eventbuses = ManifestCache("EventBus")
        self._unplaced = 0
        self.watcher = ObjectWatcher(
            self.store,
            ("Sensor", "EventBus"),
            settings.watch_namespace,
            self.reload,
            resync_seconds=settings.resync_seconds,
        )

    def ready(self) -> bool:
        """Loaded, and every sensor's consumer group has its start committed."""
        if not self.watcher.loaded.is_set() or self._unplaced:
            return False
        return all(state == "open" for g in self._groups.values() for state in g.bus.subscription_states().values())

    async def reload(self) -> None:
        """Read Sensors and EventBuses again and apply what changed."""
        ns = self.settings.watch_namespace
        sensors = self._sensors.update(await self.store.list("Sensor", ns))
        buses = eventbuses_of(self._eventbuses.update(await self.store.list("EventBus", ns)))
        placed: dict[str, tuple[BusConfig, list[Sensor]]] = {}
        unplaced = 0
        for sensor in sensors:
            assert isinstance(sensor, Sensor)
            bus_name = sensor.spec.event_bus_name or DEFAULT_BUS
            try:
                config = bus_config(
                    self.settings, sensor.namespace, bus_name, buses.get((sensor.namespace, bus_name)), self.references
                )
            except EventBridgeError as exc:
                log.error("Sensor %s/%s cannot run: %s", sensor.namespace, sensor.name, exc)
                unplaced += 1
                continue
            placed.setdefault(config.fingerprint, (config, []))[1].append(sensor)
        for fingerprint in [f for f in self._groups if f not in placed]:
            await self._drop(fingerprint)
        for fingerprint, (config, group_sensors) in placed.items():
            group = self._groups.get(fingerprint)
            if group is not None and "failed" in group.bus.subscription_states().values():
                log.warning("a Kafka consumer group of bus %s failed to open; restarting its sensors", fingerprint)
                await self._drop(fingerprint)
                group = None
            if group is None:
                try:
                    bus = await self.buses.get(config)
                except EventBridgeError as exc:
                    log.error("sensors %s cannot run: %s", ", ".join(s.name for s in group_sensors), exc)
                    unplaced += len(group_sensors)
                    continue
                manager = SensorManager(
                    bus,
                    self.store,
                    self.references,
                    group_prefix=config.group_prefix,
                    from_start=config.from_start,
                    workflow_ops=StoreWorkflowOperations(self.store),
                    objects=self.objects,
                    conditions=bus.conditions(),  # && state across replicas (Argo #3063)
                )
                group = _SensorGroup(config, bus, manager)
                self._groups[fingerprint] = group
            await group.manager.apply(group_sensors)
        self._unplaced = unplaced
        await self.buses.retain(set(self._groups))

    async def _drop(self, fingerprint: str) -> None:
        group = self._groups.pop(fingerprint)
        await group.manager.stop()

    async def run(self, stop: asyncio.Event) -> int:
        await self.store.start()
        try:
            await self.watcher.start()
            await stop.wait()
            return 0
        finally:
            await self.watcher.stop()
            for fingerprint in list(self._groups):
                await self._drop(fingerprint)
            await self.buses.stop()
            await self.objects.close()
            self.references.close()
            await self.store.stop()


# ---------------------------------------------------------------------------------------------
# server
