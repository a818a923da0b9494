"""``eventbridge server``: the API and UI over the Kubernetes Store."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from kubernetes import client as k8s

from eventbridge.executors.base import Executor
from eventbridge.executors.pod import PodExecutor
from eventbridge.models.eventsource import EventSource
from eventbridge.models.sensor import Sensor
from eventbridge.runtime.cluster.common import (
    ClusterSettings,
    ManifestCache,
    ObjectWatcher,
)
from eventbridge.server.app import ApiContext, build_app
from eventbridge.server.auth import load_auth
from eventbridge.server.auth_kube import KubeAuth
from eventbridge.store.kube import KubeStore, api_client_from_environment

log = logging.getLogger(__name__)


class ServerRole:
    """``eventbridge server``: the API and UI over the Kubernetes Store."""

    name = "server"

    def __init__(self, settings: ClusterSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api_client = api_client or api_client_from_environment(settings.kubeconfig)
        self.store = KubeStore(self.api_client, namespace=settings.watch_namespace)
        self.executor = PodExecutor(self.api_client, namespace=settings.watch_namespace)
        self._eventsource_cache = ManifestCache("EventSource")
        self._sensor_cache = ManifestCache("Sensor")
        self.eventsources: list[EventSource] = []
        self.sensors: list[Sensor] = []
        self.url = ""
        self.watcher = ObjectWatcher(
            self.store,
            ("EventSource", "Sensor"),
            settings.watch_namespace,
            self.reload,
            resync_seconds=settings.resync_seconds,
        )
        self._listening = False

    def ready(self) -> bool:
        return self._listening

    async def reload(self) -> None:
        ns = self.settings.watch_namespace
        self.eventsources = [
            m for m in self._eventsource_cache.update(await self.store.list("EventSource", ns))
            if isinstance(m, EventSource)
        ]  # fmt: skip
        self.sensors = [
            m for m in self._sensor_cache.update(await self.store.list("Sensor", ns)) if isinstance(m, Sensor)
        ]

    async def run(self, stop: asyncio.Event) -> int:
        settings = self.settings
        await self.store.start()
        runner: web.AppRunner | None = None
        kube_auth: KubeAuth | None = None
        if settings.auth_mode == "kube":
            kube_auth = KubeAuth(self.api_client, default_namespace=settings.watch_namespace or "")
        try:
            await self.watcher.start()
            executor: Executor = self.executor
            app = build_app(
                ApiContext(
                    store=self.store,
                    executor=executor,
                    eventsources=lambda: self.eventsources,
                    sensors=lambda: self.sensors,
                    auth=None if kube_auth is not None else load_auth(settings.auth_file),
                    managed_namespace=settings.watch_namespace or "",
                ),
                authenticator=kube_auth,
            )
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.host, settings.port).start()
            port = runner.addresses[0][1] if runner.addresses else settings.port
            self.url = f"http://{settings.host}:{port}"
            self._listening = True
            log.info("server: API and UI on %s for %s", self.url, settings.describe_scope())
            await stop.wait()
            return 0
        finally:
            self._listening = False
            if runner is not None:
                await runner.cleanup()
            await self.watcher.stop()
            await self.executor.stop()
            if kube_auth is not None:
                kube_auth.close()
            await self.store.stop()
