"""``eventbridge eventsource``: EventSources from the API server; single-active types under a Lease."""

from __future__ import annotations

import asyncio
import logging

from kubernetes import client as k8s

from eventbridge.bus.base import Bus
from eventbridge.bus.kafka import KafkaBus
from eventbridge.errors import (
    EventBridgeError,
)
from eventbridge.leader import LeaderElector, LeaseSettings
from eventbridge.models.eventsource import EventSource, EventSourceSpec
from eventbridge.runtime.cluster.buses import BusPool, RoutingBus, bus_config, eventbuses_of
from eventbridge.runtime.cluster.common import (
    DEFAULT_BUS,
    EVENTSOURCE_LEASE,
    SINGLE_ACTIVE_FIELDS,
    ClusterSettings,
    KubeReferences,
    ManifestCache,
    ObjectWatcher,
    until,
)
from eventbridge.sources.manager import SourceManager
from eventbridge.store.kube import KubeStore, api_client_from_environment
from eventbridge.tasks import cancel_all

log = logging.getLogger(__name__)


def split_single_active(eventsource: EventSource) -> tuple[EventSource | None, EventSource | None]:
    """``(everywhere part, single-active part)`` of an EventSource (None where it has no event)."""
    spec = eventsource.spec
    present = [name for name in EventSourceSpec.SOURCE_FIELDS if getattr(spec, name)]
    single = [name for name in present if name in SINGLE_ACTIVE_FIELDS]
    other = [name for name in present if name not in SINGLE_ACTIVE_FIELDS]

    def only(fields: list[str]) -> EventSource | None:
        if not fields:
            return None
        cleared = {name: None for name in present if name not in fields}
        return eventsource.model_copy(update={"spec": spec.model_copy(update=cleared)})

    return only(other), only(single)


class EventSourceRole:
    """``eventbridge eventsource``: see the module docstring."""

    name = "eventsource"

    def __init__(self, settings: ClusterSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api_client = api_client or api_client_from_environment(settings.kubeconfig)
        self.references = KubeReferences(self.api_client)
        self.store = KubeStore(self.api_client, namespace=settings.watch_namespace)
        self.buses = BusPool()
        self.router_bus = RoutingBus()
        bus: Bus = self.router_bus
        self.sources = SourceManager(
            bus, self.references, host=settings.webhook_host, state_dir=settings.state_dir, states=self.references
        )
        self.single_sources = SourceManager(
            bus, self.references, host=settings.webhook_host, state_dir=settings.state_dir, states=self.references
        )
        self._eventsources = ManifestCache("EventSource")
        self._eventbuses = ManifestCache("EventBus")
        self._single_wanted: list[EventSource] = []
        self._single_lock = asyncio.Lock()
        self._leading = False
        self.watcher = ObjectWatcher(
            self.store,
            ("EventSource", "EventBus"),
            settings.watch_namespace,
            self.reload,
            resync_seconds=settings.resync_seconds,
        )

    def ready(self) -> bool:
        return self.watcher.loaded.is_set()

    async def reload(self) -> None:
        """Read EventSources and EventBuses again and apply what changed."""
        ns = self.settings.watch_namespace
        eventsources = self._eventsources.update(await self.store.list("EventSource", ns))
        buses = eventbuses_of(self._eventbuses.update(await self.store.list("EventBus", ns)))
        routes: dict[tuple[str, str], KafkaBus] = {}
        used: set[str] = set()
        everywhere: list[EventSource] = []
        single: list[EventSource] = []
        for eventsource in eventsources:
            assert isinstance(eventsource, EventSource)
            bus_name = eventsource.spec.event_bus_name or DEFAULT_BUS
            try:
                config = bus_config(
                    self.settings, eventsource.namespace, bus_name, buses.get((eventsource.namespace, bus_name)),
                    self.references,
                )  # fmt: skip
                routes[(eventsource.namespace, eventsource.name)] = await self.buses.get(config)
            except EventBridgeError as exc:
                log.error("EventSource %s/%s cannot run: %s", eventsource.namespace, eventsource.name, exc)
                continue
            used.add(config.fingerprint)
            here, leader_only = split_single_active(eventsource)
            everywhere += [here] if here is not None else []
            single += [leader_only] if leader_only is not None else []
        self.router_bus.routes.update(routes)
        await self.sources.apply(everywhere)
        async with self._single_lock:
            self._single_wanted = single
            if self._leading:
                await self.single_sources.apply(single)
        self.router_bus.routes = routes
        await self.buses.retain(used)

    async def _lead(self) -> None:
        async with self._single_lock:
            self._leading = True
            await self.single_sources.apply(self._single_wanted)
        try:
            await asyncio.Event().wait()
        finally:
            async with self._single_lock:
                self._leading = False
                await self.single_sources.apply([])

    async def _campaign(self) -> None:
        while True:
            elector = LeaderElector(self.api_client, LeaseSettings.from_env(EVENTSOURCE_LEASE, self.settings.namespace))
            try:
                if not await elector.run(self._lead):
                    log.warning("eventsource: leadership lost; calendar/kafka/file sources stopped; campaigning again")
            finally:
                await elector.close()

    async def run(self, stop: asyncio.Event) -> int:
        await self.store.start()
        campaign: asyncio.Task[None] | None = None
        try:
            await self.watcher.start()
            campaign = asyncio.create_task(self._campaign(), name="eventsource lease")
            await until(stop, campaign)
            if campaign.done() and not campaign.cancelled() and campaign.exception() is not None:
                log.error("eventsource: leader election failed: %s", campaign.exception())
                return 1
            return 0
        finally:
            await cancel_all([campaign])
            await self.watcher.stop()
            await self.single_sources.stop()
            await self.sources.stop()
            await self.buses.stop()
            self.references.close()
            await self.store.stop()


# ---------------------------------------------------------------------------------------------
# sensor
