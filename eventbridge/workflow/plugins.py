"""Executor plugins (``plugin`` templates): Argo's HTTP protocol, called from the controller.

Argo runs each executor plugin as a sidecar of its agent pod and calls it at
``http://localhost:<first containerPort>``. The bundled controller does the same without the pod:
the plugin server runs wherever you start it, and is found from

* ConfigMaps labelled ``workflows.argoproj.io/configmap-type: ExecutorPlugin`` (what
  ``argo executor-plugin build`` writes; ``data["sidecar.container"]`` is the container YAML),
  given to the controller as a :class:`PluginDirectory` (embedded mode: the loaded manifests), and
* the workflow's own ``spec.executorPlugins`` (``[{metadata: {name}, spec: {sidecar: {container}}}]``).

The address is ``http://localhost:<port>`` unless the ConfigMap (or the workflow-level entry's
metadata) has the annotation ``eventbridge.io/plugin-address`` (a full base URL). A token for the
``Authorization: Bearer`` header may come from the annotation ``eventbridge.io/plugin-token-secret``
(``<secret name>/<key>``), resolved through the controller's References.

Protocol (Argo's ``template.execute``): POST ``<address>/api/v1/template.execute`` with
``{"workflow": {"metadata": {name, namespace, uid}}, "template": {...}}``; the answer
``{"node": {phase, message, outputs}, "requeue": "30s"}`` or ``{}`` ("not mine": the next plugin is
asked). 404 means the plugin does not implement the method (it is not asked again in this
workflow); 503, connection errors and timeouts are retried with backoff; other statuses fail the
node.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import yaml

from eventbridge.errors import InvalidError
from eventbridge.workflow.nodes import parse_duration

CONFIGMAP_TYPE_LABEL = "workflows.argoproj.io/configmap-type"
PLUGIN_TYPE = "ExecutorPlugin"
ADDRESS_ANNOTATION = "eventbridge.io/plugin-address"
TOKEN_ANNOTATION = "eventbridge.io/plugin-token-secret"  # noqa: S105 (an annotation name)
CALL_TIMEOUT = 30.0
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)  # Argo: 5 attempts, backoff from 1s, factor 2


@dataclass(frozen=True, slots=True)
class ExecutorPlugin:
    """Where one executor plugin answers."""

    name: str
    address: str
    token_secret: str = ""  # "<secret>/<key>", resolved when called


class PluginDirectory(Protocol):
    """The executor plugins configured for a namespace, in the order they are asked."""

    def executor_plugins(self, namespace: str) -> list[ExecutorPlugin]: ...


def _plugin(name: str, container: Any, annotations: Mapping[str, str]) -> ExecutorPlugin:
    address = str(annotations.get(ADDRESS_ANNOTATION) or "")
    if not address:
        ports = (container or {}).get("ports") if isinstance(container, dict) else None
        port = (ports[0] or {}).get("containerPort") if isinstance(ports, list) and ports else None
        if not port:
            raise InvalidError(f"executor plugin {name!r}: its sidecar container declares no containerPort")
        address = f"http://localhost:{int(port)}"
    return ExecutorPlugin(name, address.rstrip("/"), str(annotations.get(TOKEN_ANNOTATION) or ""))


def plugin_from_config_map(obj: Mapping[str, Any]) -> ExecutorPlugin | None:
    """The plugin an ExecutorPlugin ConfigMap (a dict in Kubernetes' shape) describes; None for others."""
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(CONFIGMAP_TYPE_LABEL) != PLUGIN_TYPE:
        return None
    name = str(meta.get("name") or "").removesuffix("-executor-plugin")
    try:
        container = yaml.safe_load(str((obj.get("data") or {}).get("sidecar.container") or "")) or {}
    except yaml.YAMLError as exc:
        raise InvalidError(f"executor plugin {name!r}: sidecar.container is not YAML: {exc}") from None
    return _plugin(name, container, meta.get("annotations") or {})


def workflow_plugins(specs: Iterable[Mapping[str, Any]] | None) -> list[ExecutorPlugin]:
    """The plugins of a workflow's ``spec.executorPlugins``."""
    found = []
    for spec in specs or []:
        meta = spec.get("metadata") or {}
        container = ((spec.get("spec") or {}).get("sidecar") or {}).get("container") or {}
        found.append(
            _plugin(str(meta.get("name") or container.get("name") or ""), container, meta.get("annotations") or {})
        )
    return found


class ConfigMapPlugins:
    """A :class:`PluginDirectory` over ConfigMap dicts (or manifests dumped to dicts), grouped by namespace."""

    def __init__(self, config_maps: Iterable[Mapping[str, Any]]) -> None:
        self._by_namespace: dict[str, list[ExecutorPlugin]] = {}
        for obj in config_maps:
            plugin = plugin_from_config_map(obj)
            if plugin is not None:
                namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
                self._by_namespace.setdefault(namespace, []).append(plugin)

    def executor_plugins(self, namespace: str) -> list[ExecutorPlugin]:
        return list(self._by_namespace.get(namespace, []))


@dataclass
class PluginReply:
    """What the plugin that took the template answered."""

    plugin: str
    node: dict[str, Any]
    requeue: float | None


async def execute_template(
    plugins: list[ExecutorPlugin],
    body: dict[str, Any],
    tokens: Mapping[str, str],
    unsupported: set[str],
) -> PluginReply:
    """Ask each plugin in turn to execute the template in ``body``; the first real answer.

    ``tokens``: plugin name -> bearer token. ``unsupported``: names of plugins that answered 404 (they
    are skipped, and this set grows). InvalidError when no plugin took the template or one failed.
    """
    data = json.dumps(body, separators=(",", ":"))
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for plugin in plugins:
            if plugin.name in unsupported:
                continue
            headers = {"Content-Type": "application/json"}
            if tokens.get(plugin.name):
                headers["Authorization"] = f"Bearer {tokens[plugin.name]}"
            answer = await _call(session, plugin, data, headers)
            if answer is None:
                unsupported.add(plugin.name)
                continue
            node = answer.get("node") if isinstance(answer, dict) else None
            if isinstance(node, dict) and node:
                return PluginReply(plugin.name, node, _requeue(answer.get("requeue")))
    raise InvalidError("no plugin executed the template")


async def _call(
    session: aiohttp.ClientSession, plugin: ExecutorPlugin, data: str, headers: dict[str, str]
) -> Any | None:
    """One ``template.execute`` call with Argo's retries; None for 404 (method not implemented)."""
    url = f"{plugin.address}/api/v1/template.execute"
    last = ""
    for delay in (*RETRY_DELAYS, None):
        try:
            async with session.post(url, data=data, headers=headers) as response:
                text = await response.text(errors="replace")
                if response.status == 200:
                    try:
                        return json.loads(text) if text.strip() else {}
                    except json.JSONDecodeError:
                        raise InvalidError(f"executor plugin {plugin.name!r} answered with invalid JSON") from None
                if response.status == 404:
                    return None
                if response.status != 503:
                    raise InvalidError(
                        f"executor plugin {plugin.name!r}: {response.status} {response.reason}: {text[:200]}"
                    )
                last = f"503 {text[:200]}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            last = str(exc) or type(exc).__name__
        if delay is None:
            break
        await asyncio.sleep(delay)
    raise InvalidError(f"executor plugin {plugin.name!r} at {plugin.address}: {last}")


def _requeue(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return parse_duration(value)
    except (ValueError, TypeError):
        return None
