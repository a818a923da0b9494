"""Cluster mode: the four roles, each one process (one Deployment in ``deploy/``), built from settings.

* **controller**: :class:`~eventbridge.workflow.controller.Controller` on the Kubernetes Store and
  the Pod executor, plus the :class:`~eventbridge.workflow.cron.CronScheduler`, both only while
  this process holds the Lease ``eventbridge-controller``. When leadership is lost the role stops
  them and exits with status 1 (its Deployment restarts it as a candidate). On SIGTERM the role
  stops without deleting step Pods: the next leader adopts them (Pod names are deterministic).
* **eventsource**: EventSource objects from the API server (list + watch, re-applied live; an
  invalid version is reported and the last good one keeps running). Secrets come from Kubernetes
  Secrets (:class:`KubeReferences`). Each EventSource publishes to the Kafka bus of the EventBus
  named by ``spec.eventBusName`` (default ``default``) in its namespace, or to the bus configured
  by flags/env when there is no such object. Single-active types (calendar, kafka, file) run only
  while this process holds the Lease ``eventbridge-eventsource``; losing it stops them and the
  role campaigns again (the webhook-style sources keep serving).
* **sensor**: Sensor objects from the API server (watched); the sensors of one bus share a
  :class:`~eventbridge.sensor.manager.SensorManager`, each sensor one consumer group; triggers
  create Workflow custom resources through the Kubernetes Store; argoWorkflow operations act on
  the store as in embedded mode.
* **server**: the API and UI over the Kubernetes Store (logs through ``pods/log``).

Every role can serve ``/healthz``, ``/readyz`` and ``/metrics`` on a health port.

Scope: a role serves the objects of its own namespace (``ClusterSettings.namespace``, with
deploy/'s namespaced Role), or with ``all_namespaces`` those of every namespace, as Argo Events'
controller does by default (cluster-scoped list and watch, deploy/cluster-wide's ClusterRole). Its
Leases stay in its own namespace either way; step Pods are created in each Workflow's namespace.
"""

from __future__ import annotations

from eventbridge.errors import InvalidError
from eventbridge.runtime.cluster.buses import BusConfig, bus_config
from eventbridge.runtime.cluster.common import ClusterSettings, KubeReferences, ManifestCache, Role, run_role
from eventbridge.runtime.cluster.controller import ControllerRole
from eventbridge.runtime.cluster.eventsource import EventSourceRole, split_single_active
from eventbridge.runtime.cluster.sensor import SensorRole
from eventbridge.runtime.cluster.server import ServerRole

ROLES: dict[str, type[ControllerRole] | type[EventSourceRole] | type[SensorRole] | type[ServerRole]] = {
    "controller": ControllerRole,
    "eventsource": EventSourceRole,
    "sensor": SensorRole,
    "server": ServerRole,
}


def build_role(name: str, settings: ClusterSettings) -> Role:
    """The role called ``name`` (controller, eventsource, sensor, server) built from ``settings``."""
    try:
        cls = ROLES[name]
    except KeyError:
        raise InvalidError(f"unknown role {name!r}; expected one of {', '.join(ROLES)}") from None
    role: Role = cls(settings)
    return role


__all__ = [
    "BusConfig",
    "ClusterSettings",
    "ControllerRole",
    "EventSourceRole",
    "KubeReferences",
    "ManifestCache",
    "Role",
    "SensorRole",
    "ServerRole",
    "build_role",
    "bus_config",
    "run_role",
    "split_single_active",
]
