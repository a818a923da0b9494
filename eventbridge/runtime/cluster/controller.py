"""``eventbridge controller``: the workflow controller and CronWorkflows, while holding the Lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubernetes import client as k8s

from eventbridge.executors.artifacts_s3 import S3ObjectStore
from eventbridge.executors.base import StepResult, StepSpec
from eventbridge.executors.pod import PodExecutor
from eventbridge.executors.resource import ResourceRunner
from eventbridge.leader import LeaderElector, LeaseSettings
from eventbridge.runtime.cluster.common import (
    CONTROLLER_LEASE,
    ClusterSettings,
    KubeReferences,
    until,
)
from eventbridge.store.kube import KubeStore, api_client_from_environment
from eventbridge.store.kube_objects import KubeObjects
from eventbridge.tasks import cancel_all
from eventbridge.workflow.controller import Controller
from eventbridge.workflow.cron import CronScheduler

log = logging.getLogger(__name__)


class _DetachableExecutor:
    """The Pod executor, except that after :meth:`detach` ``kill`` leaves Pods alone: a controller
    that shuts down or steps down abandons its steps to the next leader, which adopts the Pods."""

    def __init__(self, inner: PodExecutor) -> None:
        self.inner = inner
        self.detached = False

    def detach(self) -> None:
        self.detached = True

    async def run(self, step: StepSpec) -> StepResult:
        return await self.inner.run(step)

    async def kill(self, namespace: str, workflow: str, node_id: str | None = None) -> None:
        if not self.detached:
            await self.inner.kill(namespace, workflow, node_id)

    async def read_log(self, namespace: str, workflow: str, node_id: str) -> str:
        return await self.inner.read_log(namespace, workflow, node_id)

    async def workflow_finished(self, workflow: dict[str, Any]) -> None:
        await self.inner.workflow_finished(workflow)


class ControllerRole:
    """``eventbridge controller``: see the module docstring."""

    name = "controller"

    def __init__(self, settings: ClusterSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api_client = api_client or api_client_from_environment(settings.kubeconfig)
        self._running = False

    def ready(self) -> bool:
        """Ready while leading and running (a standby is alive but not ready)."""
        return self._running

    async def run(self, stop: asyncio.Event) -> int:
        settings = self.settings
        elector = LeaderElector(self.api_client, LeaseSettings.from_env(CONTROLLER_LEASE, settings.namespace))
        failure: list[BaseException] = []

        async def lead() -> None:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("the controller failed")
                failure.append(exc)

        log.info("controller: waiting for the Lease %s/%s", elector.settings.namespace, CONTROLLER_LEASE)
        election = asyncio.ensure_future(elector.run(lead))
        try:
            await until(stop, election)
            if not election.done():
                await cancel_all([election])
                return 0
            if not election.result():
                log.error("controller: leadership lost; exiting so that a candidate takes over")
                return 1
            return 1 if failure else 0
        finally:
            await elector.close()

    async def _lead(self) -> None:
        settings = self.settings
        store = KubeStore(self.api_client, namespace=settings.watch_namespace)
        pods = PodExecutor(
            self.api_client,
            namespace=settings.watch_namespace,
            wait_image=settings.executor_image,
            service_account=settings.executor_service_account,
        )
        executor = _DetachableExecutor(pods)
        references = KubeReferences(self.api_client)
        objects = KubeObjects(self.api_client, default_namespace=settings.namespace)
        controller = Controller(
            store,
            executor,
            references=references,
            max_parallel_pods=settings.max_parallel_pods,
            object_store=S3ObjectStore(),
            resources=ResourceRunner(objects),
        )
        cron = CronScheduler(store)
        try:
            await store.start()
            await controller.start()
            await cron.start()
            self._running = True
            log.info("controller: leading; running the Workflows and CronWorkflows of %s", settings.describe_scope())
            await asyncio.Event().wait()
        finally:
            self._running = False
            executor.detach()
            with contextlib.suppress(Exception):
                await cron.stop()
            with contextlib.suppress(Exception):
                await controller.stop()
            await pods.stop()
            await objects.close()
            references.close()
            await store.stop()


# ---------------------------------------------------------------------------------------------
# eventsource
