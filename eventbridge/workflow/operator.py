"""Runs one Workflow to completion: the node graph, templates, parameters and status writes.

A :class:`WorkflowRun` walks the entrypoint template recursively with asyncio (parallel steps and
DAG tasks are tasks). Every node gets a deterministic id (see ``nodes.py``); before running a node
the run looks for it in ``status.nodes`` and reuses it when it already completed, so a controller
that restarts continues a Running workflow without re-running finished steps.

The node graph and the status writes are a :class:`~eventbridge.workflow.status.RunStatus`
(``self.book``): writes are batched, the first marks the workflow Running, the final phase is
written at once (2 writes for a short one-step workflow).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from eventbridge.errors import ExprError, InvalidError, NotFoundError
from eventbridge.executors.base import Executor, OutputArtifact, OutputParameter, StepResult, StepSpec
from eventbridge.executors.resource import ResourceRunner
from eventbridge.expr.lang import evaluate, evaluate_bool, format_value, nest
from eventbridge.expr.template import substitute, substitute_all
from eventbridge.expr.when import evaluate_when
from eventbridge.models.base import References
from eventbridge.models.workflow import (
    Arguments,
    Artifact,
    DAGTask,
    LifecycleHook,
    Parameter,
    RetryStrategy,
    Template,
    Workflow,
    WorkflowSpec,
    WorkflowStep,
    check_spec,
)
from eventbridge.store.base import Object, Store
from eventbridge.workflow.artifacts import (
    ArtifactRepository,
    ObjectStore,
    Record,
    S3Access,
    has_source,
    parse_reference,
)
from eventbridge.workflow.depends import evaluate_depends, failure_refs, reaches, task_dependencies
from eventbridge.workflow.leaves import run_data, run_http
from eventbridge.workflow.loops import add_item, expansions
from eventbridge.workflow.memo import MemoCache, fresh
from eventbridge.workflow.nodes import (
    COMPLETED,
    SUCCESSFUL,
    Node,
    node_id,
    now,
    parse_duration,
    pod_name,
)
from eventbridge.workflow.plugins import PluginDirectory, execute_template, workflow_plugins
from eventbridge.workflow.specs import merge_specs, with_defaults
from eventbridge.workflow.status import WORKFLOW_COMPLETED, RunStatus, WorkflowDeleted
from eventbridge.workflow.stepfiles import StepFiles, s3_access
from eventbridge.workflow.sync import (
    LockManager,
    LockRef,
    lock_refs,
    record_holding,
    record_released,
    record_waiting,
)

log = logging.getLogger(__name__)

NODE_TYPES = {"steps": "Steps", "dag": "DAG", "suspend": "Suspend", "http": "HTTP", "plugin": "Plugin"}
PLUGIN_REQUEUE_DEFAULT = 10.0  # seconds before asking a plugin again that answered Pending/Running


class _Inputs(dict[str, str]):
    """A template's input parameter values, plus its input artifacts (name -> source record)."""

    def __init__(self) -> None:
        super().__init__()
        self.artifacts: dict[str, Record] = {}


class _Abort(Exception):
    """Raised inside the run when it must stop (terminated, deadline, deleted)."""


class WorkflowRun:
    """One workflow being run by the controller."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        obj: Object,
        *,
        references: References | None = None,
        pod_slots: asyncio.Semaphore | None = None,
        write_interval: float = 0.5,
        artifacts: ArtifactRepository | None = None,
        locks: LockManager | None = None,
        memo: MemoCache | None = None,
        plugins: PluginDirectory | None = None,
        object_store: ObjectStore | None = None,
        artifact_repository: Mapping[str, Any] | None = None,
        resources: ResourceRunner | None = None,
    ) -> None:
        """``locks``: the controller's mutexes and semaphores; ``memo``: the memoization cache;
        ``plugins``: configured executor plugins; ``object_store``: the S3 client;
        ``artifact_repository``: the default repository (``{"s3": {...}}``), else local;
        ``resources``: runs ``resource`` templates (cluster mode; without it they are an error)."""
        self.store = store
        self.resources = resources
        self.locks = locks
        self.memo = memo
        self.plugins = plugins
        self.object_store = object_store
        self.default_repository = artifact_repository
        self._shutdown: str | None = None
        self._unsupported_plugins: set[str] = set()
        self.executor = executor
        self.references = references
        self.pod_slots = pod_slots
        self.book = RunStatus(
            store, obj, write_interval=write_interval, observe=self.observe, on_deleted=self._deleted_while_writing
        )
        self.name, self.namespace = self.book.name, self.book.namespace
        #: The status and its nodes: the book's own dicts, changed in place (never replaced).
        self.status, self.nodes = self.book.status, self.book.nodes
        # the workflow's own S3 repository is known once its spec is (see _run)
        self.files = StepFiles(artifacts, S3Access(object_store, None, "default"), self.namespace, self.name)
        self.spec: WorkflowSpec = WorkflowSpec()
        self.globals: dict[str, str] = {}
        self.global_outputs: dict[str, str] = {}
        self.global_artifacts: dict[str, Record] = {}
        self._wf_slots: asyncio.Semaphore | None = None
        self._abort_message: str | None = None
        self._main: asyncio.Task[Node] | None = None
        self._resumes: dict[str, asyncio.Future[None]] = {}
        self._hook_tasks: list[asyncio.Task[Node]] = []
        self._fired_wf_hooks: set[str] = set()
        self._hook_watch: asyncio.Task[None] | None = None
        self._ref_specs: dict[tuple[str, bool], WorkflowSpec] = {}
        self._contexts: dict[int, WorkflowSpec] = {}  # id(template) -> the spec it came from
        self._unsuspended = asyncio.Event()  # cleared while spec.suspend is true
        if not (obj.get("spec") or {}).get("suspend"):
            self._unsuspended.set()

    # ----------------------------------------------------------------------------- lifecycle

    async def run(self) -> Object:
        """Run to completion; returns the final stored object."""
        try:
            await self._run()
        except WorkflowDeleted:
            log.info("workflow %s/%s was deleted while running", self.namespace, self.name)
            await self.executor.kill(self.namespace, self.name)
        finally:
            if self.locks is not None:  # in memory only: the stored status keeps them for a restart
                self.locks.release_workflow(self.namespace, self.name)
            # Cancelled (controller stopping) or done: leave nothing running behind.
            self.book.cancel_flush()
            for task in (self._main, self._hook_watch, *self._hook_tasks):
                if task is not None and not task.done():
                    task.cancel()
        return self.obj

    @property
    def obj(self) -> Object:
        """The workflow object as last read or written."""
        return self.book.obj

    def _deleted_while_writing(self) -> None:
        """A background status write found the workflow gone: end the run."""
        if self._main is not None:
            self._main.cancel()
            self._abort_message = "workflow deleted"

    async def _run(self) -> None:
        if self.status.get("phase") in WORKFLOW_COMPLETED:
            return
        try:
            self.spec = await self._effective_spec()
            self._init_globals()
            self.files.s3 = s3_access(self.object_store, self.references, self.namespace, self.default_repository,
                                      self.spec.artifact_repository_ref)  # fmt: skip
        except (InvalidError, ValidationError, NotFoundError) as exc:
            await self._finish("Error", _message(exc))
            return
        if not await self._acquire_workflow_locks():
            return
        self.status["phase"] = "Running"
        self.status.setdefault("startedAt", now())
        self.status.pop("message", None)
        if self.spec.parallelism:
            self._wf_slots = asyncio.Semaphore(self.spec.parallelism)
        await self.book.write()
        entry = self.spec.entrypoint or ""
        deadline = self.spec.active_deadline_seconds
        shutdown = (self.obj.get("spec") or {}).get("shutdown")
        if shutdown:  # stopped/terminated before (or while) no controller ran it
            self._abort_message = f"Stopped with strategy '{shutdown}'"
        self._main = asyncio.create_task(
            self._execute(self.name, self.name, Call(template=entry, arguments=self.spec.arguments), None)
        )
        hooks = {k: h for k, h in (self.spec.hooks or {}).items() if k != "exit" and h.expression}
        hook_watch = asyncio.create_task(self._watch_workflow_hooks(hooks)) if hooks else None
        self._hook_watch = hook_watch
        if shutdown:
            await self._stop_main(self._abort_message or "")
        try:
            if deadline is not None:
                started = _parse_time(self.status.get("startedAt"))
                remaining = max(0.0, deadline - (time.time() - started)) if started else float(deadline)
                try:
                    root = await asyncio.wait_for(asyncio.shield(self._main), remaining)
                except TimeoutError:
                    await self._stop_main(f"Step exceeded its deadline ({deadline}s activeDeadlineSeconds)")
                    root = self.nodes.get(self.name) or {}
            else:
                root = await self._main
        except asyncio.CancelledError:
            if self._abort_message is None:
                raise
            root = self.nodes.get(self.name) or {}
        phase = root.get("phase") or ("Failed" if self._abort_message else "Error")
        message = self._abort_message or root.get("message", "")
        if phase not in WORKFLOW_COMPLETED:
            phase = "Failed" if self._abort_message else "Error"
        self.globals["workflow.status"] = phase
        self.globals["workflow.failures"] = json.dumps(self.book.failures(), separators=(",", ":"))
        if hook_watch is not None:
            hook_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hook_watch
            if not self._terminated:
                self._fire_hooks(hooks, self.name, self.name, None, dict(self.globals), self._fired_wf_hooks)
        if self._hook_tasks:
            await asyncio.gather(*self._hook_tasks, return_exceptions=True)
        exit_hook = (self.spec.hooks or {}).get("exit")
        exit_call: Call | None = None
        if self.spec.on_exit:
            exit_call = Call(template=self.spec.on_exit)
        elif exit_hook is not None:
            exit_call = self._hook_call(exit_hook, self.globals)
        if exit_call is not None and not self._terminated:
            exit_node = await self._execute(f"{self.name}.onExit", "onExit", exit_call, None, root_child=True)
            if exit_node.get("phase") not in SUCCESSFUL and phase == "Succeeded":
                phase = "Failed"
                message = exit_node.get("message", "") or "exit handler failed"
        await self._finish(phase, message)

    # ----------------------------------------------------------------------------- synchronization

    async def _acquire_workflow_locks(self) -> bool:
        """Take the locks of ``spec.synchronization`` (waiting in phase Pending); False if the run
        ended instead (the locks could not be read, or the workflow was stopped while waiting)."""
        if self.spec.synchronization is None:
            return True
        if self.locks is None:
            await self._finish("Failed", "Failed to acquire the synchronization lock. This controller has no locks")
            return False
        holder = f"{self.namespace}/{self.name}"

        def waiting(message: str, lock: LockRef, holders: list[str]) -> None:
            self.status["phase"] = "Pending"
            self.status["message"] = message
            record_waiting(self.status, lock, holders)
            self.book.changed(force=True)

        self._shutdown = self._shutdown or (self.obj.get("spec") or {}).get("shutdown")
        try:
            locks = lock_refs(self.spec.synchronization, self.namespace)
            acquired = await self.locks.acquire(
                holder,
                locks,
                priority=self.spec.priority or 0,
                created=str((self.obj.get("metadata") or {}).get("creationTimestamp") or ""),
                on_wait=waiting,
                abort=lambda: self._shutdown is not None,
            )
        except InvalidError as exc:
            await self._finish("Failed", f"Failed to acquire the synchronization lock. {exc}")
            return False
        if not acquired:
            await self._finish("Failed", f"Stopped with strategy '{self._shutdown}'")
            return False
        record_holding(self.status, holder, locks)
        return True

    async def _acquire_node_locks(
        self, name: str, display: str, template: Template, boundary: str | None, node_type: str, locks: list[LockRef]
    ) -> None:
        """Take a template's locks for node ``name``; the node waits in phase Pending meanwhile."""
        assert self.locks is not None
        nid = node_id(self.name, name)
        holder = f"{self.namespace}/{self.name}/{nid}"

        def waiting(message: str, lock: LockRef, holders: list[str]) -> None:
            node = self.book.node(name, display, node_type, template.name, boundary)
            node["phase"] = "Pending"
            node["message"] = message
            node["synchronizationStatus"] = {"waiting": lock.name}
            record_waiting(self.status, lock, holders)
            self.book.changed(force=True)

        await self.locks.acquire(
            holder,
            locks,
            priority=self.spec.priority or 0,
            created=str((self.obj.get("metadata") or {}).get("creationTimestamp") or ""),
            on_wait=waiting,
        )
        node = self.nodes.get(nid)
        if node is not None:
            node.pop("synchronizationStatus", None)
            node.pop("message", None)
        record_holding(self.status, holder, locks)
        self.book.changed()

    def _release_node_locks(self, name: str, locks: list[LockRef], *, record: bool) -> None:
        if self.locks is None or not locks:
            return
        holder = f"{self.namespace}/{self.name}/{node_id(self.name, name)}"
        self.locks.release(holder, locks)
        if record:
            record_released(self.status, holder, locks)
            self.book.changed()

    # ----------------------------------------------------------------------------- memoization

    async def _memo_lookup(
        self, name: str, display: str, template: Template, inputs: dict[str, str], boundary: str | None, node_type: str
    ) -> tuple[Node | None, dict[str, Any] | None]:
        """(the completed node on a cache hit or None, the memoizationStatus) for a memoized template."""
        memo = template.memoize
        if memo is None or self.memo is None:
            return None, None
        cache = memo.cache.config_map.name if memo.cache is not None and memo.cache.config_map is not None else ""
        if not cache:
            raise InvalidError(f"template {template.name!r}: memoize.cache.configMap.name is required")
        key = substitute(memo.key, self._template_scope(inputs))
        try:
            max_age = parse_duration(memo.max_age) if memo.max_age else None
        except ValueError:
            raise InvalidError(f"invalid maxAge: {memo.max_age!r}") from None
        entry = await self.memo.load(self.namespace, cache, key)
        hit = entry is not None and fresh(entry, max_age)
        status = {"hit": hit, "key": key, "cacheName": cache}
        node = self.book.node(name, display, node_type, template.name, boundary)
        node["memoizationStatus"] = status
        if not hit or entry is None:
            return None, status
        outputs = entry.get("outputs") or None
        for param in (outputs or {}).get("parameters") or []:
            if param.get("globalName") and "value" in param:
                self._set_global_output(str(param["globalName"]), str(param["value"]))
        return self.book.complete(node, "Succeeded", "", outputs), status

    async def _memo_save(self, node: Node, status: dict[str, Any] | None) -> Node:
        if status is None or status.get("hit") or node.get("phase") != "Succeeded" or self.memo is None:
            return node
        try:
            await self.memo.save(
                self.namespace, str(status["cacheName"]), str(status["key"]), node["id"], node.get("outputs")
            )
        except InvalidError as exc:
            return self.book.complete(node, "Error", str(exc), node.get("outputs"))
        return node

    @property
    def _terminated(self) -> bool:
        return self._abort_message is not None and self._abort_message.startswith("Stopped with strategy 'Terminate'")

    async def stop(self, message: str) -> None:
        """End the run from outside (terminate / stop): running steps are killed."""
        await self._stop_main(message)

    async def _stop_main(self, message: str) -> None:
        self._abort_message = message
        self._unsuspended.set()  # a stopped workflow is no longer held: its exit handler may run
        await self.executor.kill(self.namespace, self.name)
        if self._main is not None and not self._main.done():
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
        for node in self.nodes.values():
            if node.get("phase") not in COMPLETED:
                node["phase"] = "Failed"
                node["message"] = message
                node["finishedAt"] = now()
        self.book.changed()

    def observe(self, obj: Object) -> None:
        """A newer version of our object was seen (not written by us): react to shutdown, suspend,
        resume and to suspend nodes completed or given outputs by an operation."""
        spec = obj.get("spec") or {}
        shutdown = spec.get("shutdown")
        if shutdown and self._shutdown is None:
            self._shutdown = str(shutdown)
            if self.locks is not None:
                self.locks.poke()  # a workflow waiting for its locks gives up
        if shutdown and self._abort_message is None and self._main is not None:
            asyncio.get_running_loop().create_task(self.stop(f"Stopped with strategy '{shutdown}'"))
        if spec.get("suspend") and self._abort_message is None:
            self._unsuspended.clear()
        else:
            self._unsuspended.set()
        theirs = (obj.get("status") or {}).get("nodes") or {}
        for nid, node in theirs.items():
            mine = self.nodes.get(nid)
            if mine is None or mine.get("type") != "Suspend" or mine.get("phase") != "Running":
                continue
            if node.get("outputs") and node.get("outputs") != mine.get("outputs"):
                mine["outputs"] = node["outputs"]
                self.book.changed()
            if node.get("phase") in COMPLETED:
                mine.update({k: node[k] for k in ("phase", "message", "outputs", "finishedAt") if k in node})
                waiter = self._resumes.get(nid)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    # ----------------------------------------------------------------------------- spec

    async def _effective_spec(self) -> WorkflowSpec:
        """The workflow's spec, merged over its workflowTemplateRef's (kept in status for restarts)."""
        wf = Workflow.model_validate(self.obj)
        spec_dict: dict[str, Any] = dict(self.obj.get("spec") or {})
        ref = wf.spec.workflow_template_ref
        if ref is not None:
            stored = self.status.get("storedWorkflowTemplateSpec")
            if stored is None:
                stored = await self._template_spec(ref.name, bool(ref.cluster_scope))
                self.status["storedWorkflowTemplateSpec"] = stored
            spec_dict = merge_specs(stored, spec_dict)
            spec_dict.pop("workflowTemplateRef", None)
        defaults = spec_dict.get("templateDefaults")
        if isinstance(defaults, dict) and defaults:
            spec_dict["templates"] = [with_defaults(defaults, t) for t in spec_dict.get("templates") or []]
        spec = WorkflowSpec.model_validate(spec_dict)
        errors = [f for f in check_spec(spec) if f.severity == "error"]
        if errors:
            raise InvalidError("invalid spec: " + "; ".join(f"{f.path}: {f.message}" for f in errors))
        return spec

    async def _template_spec(self, name: str, cluster: bool) -> dict[str, Any]:
        if cluster:
            for obj in await self.store.list("ClusterWorkflowTemplate"):
                if (obj.get("metadata") or {}).get("name") == name:
                    return dict(obj.get("spec") or {})
            raise NotFoundError(f"ClusterWorkflowTemplate {name!r} not found")
        try:
            found = await self.store.get("WorkflowTemplate", self.namespace, name)
        except NotFoundError:
            raise NotFoundError(f"WorkflowTemplate {self.namespace}/{name} not found") from None
        return dict(found.get("spec") or {})

    def _init_globals(self) -> None:
        meta = self.obj.get("metadata") or {}
        g = self.globals
        g["workflow.name"] = self.name
        g["workflow.namespace"] = self.namespace
        g["workflow.uid"] = meta.get("uid") or ""
        g["workflow.creationTimestamp"] = meta.get("creationTimestamp") or ""
        g["workflow.mainEntrypoint"] = self.spec.entrypoint or ""
        if self.spec.service_account_name:
            g["workflow.serviceAccountName"] = self.spec.service_account_name
        for key, value in (meta.get("labels") or {}).items():
            g[f"workflow.labels.{key}"] = str(value)
        for key, value in (meta.get("annotations") or {}).items():
            g[f"workflow.annotations.{key}"] = str(value)
        params: list[dict[str, str]] = []
        for param in (self.spec.arguments.parameters if self.spec.arguments else None) or []:
            value = self._param_value(param, "spec.arguments.parameters")
            g[f"workflow.parameters.{param.name}"] = value
            params.append({"name": param.name, "value": value})
        g["workflow.parameters"] = json.dumps(params, separators=(",", ":"))
        g["workflow.parameters.json"] = g["workflow.parameters"]
        g["workflow.labels.json"] = json.dumps(meta.get("labels") or {}, separators=(",", ":"))
        g["workflow.annotations.json"] = json.dumps(meta.get("annotations") or {}, separators=(",", ":"))
        for key, value in (self.status.get("outputs") or {}).get("parameters", []) and [
            (p["name"], p.get("value", "")) for p in self.status["outputs"]["parameters"]
        ]:
            self.global_outputs[key] = value
            g[f"workflow.outputs.parameters.{key}"] = value
        for record in (self.status.get("outputs") or {}).get("artifacts") or []:
            self.global_artifacts[str(record.get("name"))] = record
            g[f"workflow.outputs.artifacts.{record.get('name')}"] = json.dumps(record, separators=(",", ":"))

    def _param_value(self, param: Parameter, where: str) -> str:
        value = param.value
        if value is None and param.value_from is not None:
            ref = param.value_from.config_map_key_ref
            if ref is not None:
                if self.references is None:
                    raise InvalidError(f"{where}.{param.name}: configMapKeyRef needs a ConfigMap resolver")
                try:
                    value = self.references.config_map(self.namespace, ref.name or "", ref.key)
                except NotFoundError:
                    if param.value_from.default is None:
                        raise
                    value = param.value_from.default
            elif param.value_from.default is not None:
                value = param.value_from.default
        if value is None:
            value = param.default
        if value is None:
            raise InvalidError(f"{where}.{param.name}.value is required")
        if param.enum and value not in param.enum:
            raise InvalidError(f"{where}.{param.name}: value {value!r} is not one of {param.enum}")
        return value

    # ----------------------------------------------------------------------------- execution

    async def _execute(
        self,
        name: str,
        display: str,
        call: Call,
        boundary: str | None,
        scope: Mapping[str, str] | None = None,
        *,
        root_child: bool = False,
    ) -> Node:
        """Run the template ``call`` names as node ``name``; returns the completed node."""
        existing = self.nodes.get(node_id(self.name, name))
        if existing is not None and existing.get("phase") in COMPLETED:
            return existing
        if not self._unsuspended.is_set():  # workflow-level suspend: start nothing new
            await self._unsuspended.wait()
        try:
            template = await self._resolve(call)
            inputs = self._inputs(template, call.arguments, scope or {})
        except (InvalidError, NotFoundError, ValidationError) as exc:
            node = self.book.node(name, display, "Pod", call.template, boundary)
            return self.book.complete(node, "Error", _message(exc))
        kind = template.kinds()[0] if template.kinds() else ""
        # A workflow-level retryStrategy is the default of every template (Argo).
        strategy = template.retry_strategy or self.spec.retry_strategy
        if kind in ("", "suspend"):
            strategy = None
        node_type = "Retry" if strategy is not None else NODE_TYPES.get(kind, "Pod")
        locks: list[LockRef] = []
        finished = False
        try:
            if template.synchronization is not None:
                locks = lock_refs(template.synchronization, self.namespace)
                if self.locks is None:
                    raise InvalidError("synchronization: this controller has no locks")
                await self._acquire_node_locks(name, display, template, boundary, node_type, locks)
            hit, memo_status = await self._memo_lookup(name, display, template, inputs, boundary, node_type)
            if hit is not None:
                finished = True
                return hit
            if strategy is not None:
                node = await self._execute_retry(name, display, template, inputs, boundary, strategy)
            else:
                node = await self._execute_template(name, display, template, inputs, boundary)
            node = await self._memo_save(node, memo_status)
            finished = True
            return node
        except (InvalidError, NotFoundError, ExprError) as exc:
            finished = True
            node = self.book.node(name, display, node_type, template.name, boundary)
            return self.book.complete(node, "Error", _message(exc))
        finally:
            # A cancelled node (controller stopping) keeps its lock in the stored status for a restart.
            self._release_node_locks(name, locks, record=finished)

    async def _resolve(self, call: Call) -> Template:
        """The template a call names. A template reached through ``templateRef`` remembers its
        WorkflowTemplate, so the steps/tasks inside it find that template's other templates."""
        if call.inline is not None:
            if call.context is not None:
                self._contexts[id(call.inline)] = call.context
            return call.inline
        if call.template_ref is not None:
            ref = call.template_ref
            key = (ref.name, bool(ref.cluster_scope))
            spec = self._ref_specs.get(key)
            if spec is None:
                raw = await self._template_spec(ref.name, bool(ref.cluster_scope))
                defaults = raw.get("templateDefaults")
                if isinstance(defaults, dict) and defaults:
                    raw = {**raw, "templates": [with_defaults(defaults, t) for t in raw.get("templates") or []]}
                spec = WorkflowSpec.model_validate(raw)
                self._ref_specs[key] = spec
            found = spec.template(ref.template)
            if found is None:
                raise NotFoundError(f"template {ref.template!r} not found in {ref.name!r}")
            self._contexts[id(found)] = spec
            return found
        where = call.context or self.spec
        found = where.template(call.template or "")
        if found is None:
            raise InvalidError(f"template {call.template!r} is not defined")
        if call.context is not None:
            self._contexts[id(found)] = call.context
        return found

    def _input_artifacts(self, template: Template, arguments: Arguments | None) -> dict[str, Record]:
        """Where each input artifact comes from: the argument's ``from``/source, else the template's."""
        given = {a.name: a for a in (arguments.artifacts if arguments else None) or []}
        found: dict[str, Record] = {}
        for artifact in (template.inputs.artifacts if template.inputs else None) or []:
            declared = artifact.model_dump(by_alias=True, exclude_none=True, mode="json")
            source: Record | None = None
            arg = given.get(artifact.name)
            if arg is not None:
                passed = arg.model_dump(by_alias=True, exclude_none=True, mode="json")
                if passed.get("from"):
                    source = parse_reference(str(passed["from"]))
                elif has_source(passed):
                    source = passed
                if passed.get("subPath"):
                    declared["subPath"] = passed["subPath"]
            if source is None and has_source(declared):
                source = declared
            if source is None:
                if artifact.optional:
                    continue
                raise InvalidError(f"inputs.artifacts.{artifact.name} was not supplied to template {template.name!r}")
            record = {k: v for k, v in source.items() if k not in ("name", "path", "from", "globalName", "optional")}
            record["name"] = artifact.name
            for key in ("path", "mode", "subPath", "optional"):
                if key in declared:
                    record[key] = declared[key]
            found[artifact.name] = record
        return found

    def _inputs(self, template: Template, arguments: Arguments | None, scope: Mapping[str, str]) -> _Inputs:
        given = {p.name: p for p in (arguments.parameters if arguments else None) or []}
        values = _Inputs()
        values.artifacts = self._input_artifacts(template, arguments)
        for param in (template.inputs.parameters if template.inputs else None) or []:
            arg = given.get(param.name)
            value: str | None = None
            if arg is not None:
                if arg.value is not None:
                    value = arg.value
                elif arg.value_from is not None and arg.value_from.supplied is None:
                    value = self._param_value(arg, "arguments.parameters")
            if value is None and param.value is not None:
                value = param.value
            if value is None and param.default is not None:
                value = param.default
            if value is None and param.value_from is not None:
                value = self._param_value(param, f"templates.{template.name}.inputs.parameters")
            if value is None:
                raise InvalidError(f"inputs.parameters.{param.name} was not supplied to template {template.name!r}")
            value = substitute(value, {**self.globals, **scope})
            if param.enum and value not in param.enum:
                raise InvalidError(f"inputs.parameters.{param.name}: {value!r} is not one of {param.enum}")
            values[param.name] = value
        return values

    def _template_scope(self, inputs: Mapping[str, str]) -> dict[str, str]:
        scope = dict(self.globals)
        for key, value in inputs.items():
            scope[f"inputs.parameters.{key}"] = value
        scope["inputs.parameters"] = json.dumps(
            [{"name": k, "value": v} for k, v in inputs.items()], separators=(",", ":")
        )
        for key, record in getattr(inputs, "artifacts", {}).items():
            scope[f"inputs.artifacts.{key}"] = json.dumps(record, separators=(",", ":"))
            if record.get("path"):
                scope[f"inputs.artifacts.{key}.path"] = str(record["path"])
        return scope

    async def _execute_template(
        self,
        name: str,
        display: str,
        template: Template,
        inputs: dict[str, str],
        boundary: str | None,
        retries: int | None = None,
    ) -> Node:
        kind = template.kinds()[0] if template.kinds() else ""
        node = self.book.node(name, display, NODE_TYPES.get(kind, "Pod"), template.name, boundary)
        if node.get("phase") in COMPLETED:
            return node
        if inputs:
            node["inputs"] = {"parameters": [{"name": k, "value": v} for k, v in inputs.items()]}
        in_artifacts = getattr(inputs, "artifacts", {})
        if in_artifacts:
            node.setdefault("inputs", {})["artifacts"] = list(in_artifacts.values())
        node["phase"] = "Running"
        self.book.changed()
        scope = self._template_scope(inputs)
        if retries is not None:
            scope["retries"] = str(retries)
        runner = {
            "container": self._run_pod,
            "script": self._run_pod,
            "steps": self._run_steps,
            "dag": self._run_dag,
            "suspend": self._run_suspend,
            "container_set": self._run_container_set,
            "http": self._run_http,
            "data": self._run_data,
            "plugin": self._run_plugin,
            "resource": self._run_resource,
        }.get(kind)
        if runner is None:
            unsupported = f"template type {kind or 'none'!r} is not supported by this controller"
            return self.book.complete(node, "Error", unsupported)
        try:
            return await runner(node, template, scope)
        except (ExprError, InvalidError, NotFoundError, ValidationError) as exc:
            return self.book.complete(node, "Error", _message(exc))

    async def _execute_retry(
        self,
        name: str,
        display: str,
        template: Template,
        inputs: dict[str, str],
        boundary: str | None,
        strategy: RetryStrategy,
    ) -> Node:
        node = self.book.node(name, display, "Retry", template.name, boundary)
        if node.get("phase") in COMPLETED:
            return node
        node["phase"] = "Running"
        limit_text = substitute(strategy.limit or "", self._template_scope(inputs)) if strategy.limit else ""
        try:
            limit = int(limit_text) if limit_text else None
        except ValueError:
            return self.book.complete(node, "Error", f"retryStrategy.limit {limit_text!r} is not an integer")
        policy = strategy.retry_policy or "OnFailure"
        backoff = strategy.backoff or {}
        attempt = 0
        while True:
            child = await self._execute_template(
                f"{name}({attempt})", f"{display}({attempt})", template, inputs, node["id"], retries=attempt
            )
            self.book.add_child(node, child)
            phase = child.get("phase", "Error")
            retry = (
                phase not in SUCCESSFUL
                and (limit is None or attempt < limit)
                and (
                    policy == "Always"
                    or (policy == "OnFailure" and phase == "Failed")
                    or (policy in ("OnError", "OnTransientError") and phase == "Error")
                )
            )
            if retry and strategy.expression:
                retry = self._retry_expression(strategy.expression, child, inputs)
            if not retry:
                node["outboundNodes"] = [child["id"]]
                message = child.get("message", "")
                if phase not in SUCCESSFUL and limit is not None and attempt >= limit and limit > 0:
                    message = f"{message} (retries exhausted: {limit})" if message else "No more retries left"
                return self.book.complete(node, phase, message, child.get("outputs"))
            delay = _backoff_delay(backoff, attempt)
            if delay:
                await asyncio.sleep(delay)
            attempt += 1

    def _retry_expression(self, expression: str, last: Node, inputs: dict[str, str]) -> bool:
        """``retryStrategy.expression`` over ``lastRetry.*`` (strings, as in Argo); False on error."""
        started = _parse_time(last.get("startedAt")) or time.time()
        finished = _parse_time(last.get("finishedAt")) or time.time()
        scope = self._template_scope(inputs)
        scope["lastRetry.exitCode"] = str((last.get("outputs") or {}).get("exitCode", ""))
        scope["lastRetry.status"] = str(last.get("phase", ""))
        scope["lastRetry.duration"] = str(int(max(finished - started, 0)))
        scope["lastRetry.message"] = str(last.get("message", ""))
        try:
            return evaluate_bool(substitute(expression, scope), nest(scope))
        except ExprError as exc:
            log.warning("workflow %s: retryStrategy.expression: %s", self.name, exc)
            return False

    # ----------------------------------------------------------------------------- pods

    async def _run_pod(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        pod = pod_name(self.name, template.name, node["name"])
        scope["pod.name"] = pod
        scope["node.name"] = node["name"]
        for param in (template.outputs.parameters if template.outputs else None) or []:
            if param.value_from is not None and param.value_from.path:
                scope[f"outputs.parameters.{param.name}.path"] = param.value_from.path
        for artifact in (template.outputs.artifacts if template.outputs else None) or []:
            if artifact.path:
                scope[f"outputs.artifacts.{artifact.name}.path"] = artifact.path
        raw = template.model_dump(by_alias=True, exclude_unset=True, mode="json")
        raw = substitute_all(raw, scope)
        resolved = Template.model_validate(raw)
        body = resolved.script or resolved.container
        assert body is not None
        argv = list(body.command or []) + list(body.args or [])
        env: dict[str, str] = {}
        for var in body.env or []:
            env[var.name] = self._env_value(var.name, var.value, var.value_from)
        outputs: list[OutputParameter] = []
        for param in (resolved.outputs.parameters if resolved.outputs else None) or []:
            vf = param.value_from
            if vf is None or not vf.path:
                if vf is not None and (vf.expression or vf.parameter):
                    raise InvalidError(f"output parameter {param.name!r} of {template.name!r}: use valueFrom.path")
                continue
            outputs.append(OutputParameter(param.name, vf.path, vf.default))
        timeout = parse_duration(resolved.timeout) or parse_duration(resolved.active_deadline_seconds)
        in_artifacts: dict[str, Record] = {}
        for artifact in (resolved.inputs.artifacts if resolved.inputs else None) or []:
            record = scope.get(f"inputs.artifacts.{artifact.name}")
            if record:
                in_artifacts[artifact.name] = json.loads(record)
        volumes = (self.spec.volumes or []) + (resolved.volumes or [])
        mounts = await self.files.stage_inputs(node["id"], in_artifacts) + self.files.volume_mounts(
            getattr(body, "volume_mounts", None) or [], volumes, self.spec.volume_claim_templates or []
        )
        wanted = [
            OutputArtifact(a.name, a.path, bool(a.optional))
            for a in (resolved.outputs.artifacts if resolved.outputs else None) or []
            if a.path
        ]
        staging = self.files.staging(node["id"]) if wanted else None
        step = StepSpec(
            namespace=self.namespace,
            workflow=self.name,
            node_id=node["id"],
            node_name=str(node.get("name") or ""),
            pod_name=pod,
            argv=argv,
            script=resolved.script.source if resolved.script is not None else None,
            env=env,
            working_dir=body.working_dir,
            outputs=outputs,
            timeout=timeout,
            image=body.image,
            template_name=template.name,
            mounts=mounts,
            artifacts=wanted,
            artifact_dir=str(staging / "outputs") if staging is not None else None,
            args_only=not body.command,
        )
        result = await self._run_step(step)
        out: dict[str, Any] = {}
        if result.exit_code is not None:
            out["exitCode"] = str(result.exit_code)
        if result.result is not None:
            out["result"] = result.result
        declared = (resolved.outputs.parameters if resolved.outputs else None) or []
        params = []
        for param in declared:
            if param.name in result.parameters:
                entry: dict[str, Any] = {"name": param.name, "value": result.parameters[param.name]}
                if param.value_from is not None and param.value_from.path:
                    entry["valueFrom"] = {"path": param.value_from.path}
                if param.global_name:
                    entry["globalName"] = param.global_name
                    self._set_global_output(param.global_name, result.parameters[param.name])
                params.append(entry)
        if params:
            out["parameters"] = params
        saved = await self._save_artifacts(node, resolved, result.artifacts)
        if saved:
            out["artifacts"] = saved
        if in_artifacts and self.files.local is not None:
            await asyncio.to_thread(shutil.rmtree, self.files.staging(node["id"]) / "inputs", True)
        return self.book.complete(node, result.phase, result.message, out)

    # ----------------------------------------------------------------------------- containerSet

    async def _run_container_set(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        """Each container is a host step (a ``Container`` child node), started when its dependencies
        succeeded; all share the set's volumeMounts. Outputs come from the container ``main``; when
        the template declares outputs, ``main`` starts after the other containers (those that do not
        depend on it) ended, since Argo collects outputs once the whole set is done and another
        container may write them into a shared volume."""
        assert template.container_set is not None
        containers = {c.name or f"container-{i}": c for i, c in enumerate(template.container_set.containers)}
        main = "main" if "main" in containers else list(containers)[-1]
        waits: dict[str, list[str]] = {name: list(c.dependencies or []) for name, c in containers.items()}
        if template.outputs is not None:
            waits[main] += [n for n in containers if n != main and n not in waits[main] and not reaches(waits, n, main)]
        shared_mounts = template.container_set.volume_mounts or []
        results: dict[str, Node] = {}
        running: dict[str, asyncio.Task[Node]] = {}
        pending = dict(containers)
        while pending or running:
            for name, container in list(pending.items()):
                deps = waits[name]
                if any(d in pending or d in running for d in deps):
                    continue
                del pending[name]
                if any(results[d].get("phase") != "Succeeded" for d in deps if d in results):
                    child = self.book.node(f"{node['name']}.{name}", name, "Container", template.name, node["id"])
                    self.book.add_child(node, child)
                    results[name] = self.book.complete(child, "Omitted", "a container it depends on failed")
                    continue
                body = container.model_dump(by_alias=True, exclude_none=True, mode="json")
                body.pop("dependencies", None)
                body.pop("name", None)
                body["volumeMounts"] = list(shared_mounts) + list(body.get("volumeMounts") or [])
                single: dict[str, Any] = {"name": template.name, "container": body}
                if template.inputs is not None:
                    single["inputs"] = template.inputs.model_dump(by_alias=True, exclude_none=True, mode="json")
                if name == main and template.outputs is not None:
                    single["outputs"] = template.outputs.model_dump(by_alias=True, exclude_none=True, mode="json")
                if template.volumes:
                    single["volumes"] = template.volumes
                if template.timeout:
                    single["timeout"] = template.timeout
                child = self.book.node(f"{node['name']}.{name}", name, "Container", template.name, node["id"])
                self.book.add_child(node, child)
                running[name] = asyncio.create_task(
                    self._run_container(child, Template.model_validate(single), dict(scope))
                )
            if not running:
                continue
            done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
            for name in [n for n, t in running.items() if t in done]:
                results[name] = running.pop(name).result()
        failed = [n for n in containers if results.get(n, {}).get("phase") not in ("Succeeded",)]
        outputs = results.get(main, {}).get("outputs")
        if failed:
            first = results.get(failed[0], {})
            message = f"container {failed[0]!r}: {first.get('message', 'failed')}"
            return self.book.complete(node, "Failed", message, outputs)
        return self.book.complete(node, "Succeeded", "", outputs)

    async def _run_container(self, child: Node, template: Template, scope: dict[str, str]) -> Node:
        if child.get("phase") in COMPLETED:
            return child
        child["phase"] = "Running"
        self.book.changed()
        try:
            return await self._run_pod(child, template, scope)
        except (ExprError, InvalidError, NotFoundError, ValidationError) as exc:
            return self.book.complete(child, "Error", _message(exc))

    # ----------------------------------------------------------------------------- resource

    async def _run_resource(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        """``resource``: one Kubernetes object acted on by the controller (cluster mode only)."""
        if self.resources is None:
            return self.book.complete(
                node,
                "Error",
                f"template {template.name!r} is a resource template: it needs cluster mode (a Kubernetes "
                "API), which the embedded controller does not have",
            )
        raw = template.model_dump(by_alias=True, exclude_unset=True, mode="json")
        resolved = Template.model_validate(substitute_all(raw, scope))
        assert resolved.resource is not None
        declared = resolved.outputs.parameters if resolved.outputs else None
        outcome = await self.resources.run(
            resolved.resource, declared, namespace=self.namespace, workflow=self.obj, node_id=node["id"]
        )
        params = outcome.output_parameters(declared)
        for entry in params:
            if entry.get("globalName"):
                self._set_global_output(str(entry["globalName"]), str(entry["value"]))
        return self.book.complete(node, outcome.phase, outcome.message, {"parameters": params} if params else None)

    # ----------------------------------------------------------------------------- http

    async def _run_http(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        """Make the request from the controller; ``outputs.result`` is the response body."""
        raw = template.model_dump(by_alias=True, exclude_unset=True, mode="json")
        spec = Template.model_validate(substitute_all(raw, scope)).http
        assert spec is not None
        return self.book.completed(node, await run_http(spec, self._env_value))

    # ----------------------------------------------------------------------------- data

    async def _run_data(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        """``data``: the file paths of ``source.artifactPaths`` through expr ``transformation`` steps."""
        assert template.data is not None
        source = substitute_all(template.data.source, scope)
        return self.book.completed(node, await run_data(template.data, source, self.files, node["id"]))

    # ----------------------------------------------------------------------------- plugin

    async def _run_plugin(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        """Ask the executor plugins to execute the template (see ``plugins.py``); a plugin that answers
        Pending/Running is asked again after its ``requeue`` delay."""
        raw = template.model_dump(by_alias=True, exclude_unset=True, mode="json")
        resolved: dict[str, Any] = substitute_all(raw, scope)
        for param in (resolved.get("inputs") or {}).get("parameters") or []:
            value = scope.get(f"inputs.parameters.{param.get('name')}")
            if value is not None:
                param["value"] = value
        plugins = workflow_plugins(self.spec.executor_plugins)
        if self.plugins is not None:
            plugins += [
                p for p in self.plugins.executor_plugins(self.namespace) if p.name not in {q.name for q in plugins}
            ]
        if not plugins:
            return self.book.complete(
                node,
                "Error",
                "no executor plugin is configured: give a ConfigMap labelled "
                "workflows.argoproj.io/configmap-type: ExecutorPlugin, or spec.executorPlugins",
            )
        tokens: dict[str, str] = {}
        for plugin in plugins:
            if plugin.token_secret:
                if self.references is None:
                    raise InvalidError(f"executor plugin {plugin.name!r}: its token Secret needs a Secret resolver")
                secret, _, key = plugin.token_secret.partition("/")
                tokens[plugin.name] = self.references.secret(self.namespace, secret, key or "token")
        meta = self.obj.get("metadata") or {}
        body = {
            "workflow": {"metadata": {"name": self.name, "namespace": self.namespace, "uid": meta.get("uid") or ""}},
            "template": resolved,
        }
        while True:
            try:
                reply = await execute_template(plugins, body, tokens, self._unsupported_plugins)
            except InvalidError as exc:
                return self.book.complete(node, "Failed", str(exc))
            result = reply.node
            phase = str(result.get("phase") or "Running")
            message = str(result.get("message") or "")
            outputs = result.get("outputs") if isinstance(result.get("outputs"), dict) else None
            if phase in COMPLETED:
                for param in (outputs or {}).get("parameters") or []:
                    if param.get("globalName") and "value" in param:
                        self._set_global_output(str(param["globalName"]), str(param["value"]))
                return self.book.complete(node, phase, message, outputs)
            if message:
                node["message"] = message
            if outputs:
                node["outputs"] = outputs
            self.book.changed()
            await asyncio.sleep(reply.requeue or PLUGIN_REQUEUE_DEFAULT)

    # ----------------------------------------------------------------------------- artifacts

    async def _save_artifacts(self, node: Node, template: Template, collected: Mapping[str, str]) -> list[Record]:
        """Save a step's output artifacts (see :class:`StepFiles`); ``globalName`` ones become the
        workflow's outputs too."""
        scope = {**self.globals, "pod.name": pod_name(self.name, template.name, node["name"])}
        records: list[Record] = []
        for artifact, record in await self.files.save_outputs(node["id"], template, collected, scope):
            if artifact.global_name:
                self._set_global_artifact(artifact.global_name, record)
                record["globalName"] = artifact.global_name
            records.append(record)
        return records

    async def _run_step(self, step: StepSpec) -> StepResult:
        async with contextlib.AsyncExitStack() as stack:
            if self._wf_slots is not None:
                await stack.enter_async_context(self._wf_slots)
            if self.pod_slots is not None:
                await stack.enter_async_context(self.pod_slots)
            return await self.executor.run(step)
        raise AssertionError("unreachable")  # pragma: no cover

    def _env_value(self, name: str, value: str | None, value_from: dict[str, Any] | None) -> str:
        if value is not None:
            return value
        if value_from:
            refs = self.references
            for key, getter in (("secretKeyRef", "secret"), ("configMapKeyRef", "config_map")):
                sel = value_from.get(key)
                if sel:
                    if refs is None:
                        raise InvalidError(f"env {name}: {key} needs a Secret/ConfigMap resolver")
                    try:
                        return str(getattr(refs, getter)(self.namespace, sel.get("name", ""), sel.get("key", "")))
                    except NotFoundError:
                        if sel.get("optional"):
                            return ""
                        raise
            raise InvalidError(f"env {name}: only secretKeyRef and configMapKeyRef are supported on the host")
        return ""

    def _set_global_artifact(self, name: str, record: Record) -> None:
        self.global_artifacts[name] = {**record, "name": name}
        self.globals[f"workflow.outputs.artifacts.{name}"] = json.dumps(
            self.global_artifacts[name], separators=(",", ":")
        )
        self.status.setdefault("outputs", {})["artifacts"] = list(self.global_artifacts.values())

    def _set_global_output(self, name: str, value: str) -> None:
        self.global_outputs[name] = value
        self.globals[f"workflow.outputs.parameters.{name}"] = value
        self.status.setdefault("outputs", {})["parameters"] = [
            {"name": k, "value": v} for k, v in self.global_outputs.items()
        ]

    # ----------------------------------------------------------------------------- suspend

    async def _run_suspend(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        """Wait for the duration, or until an operation (resume, set, stop) completes the node.

        Output parameters declared with ``valueFrom.supplied`` are listed on the node (so resume/set
        can fill them); when the duration ends they take their ``valueFrom.default``.
        """
        assert template.suspend is not None
        duration = parse_duration(substitute(template.suspend.duration or "", scope))
        if "outputs" not in node:
            supplied = []
            for param in (template.outputs.parameters if template.outputs else None) or []:
                vf = param.value_from
                if vf is None or vf.supplied is None:
                    continue
                entry: dict[str, Any] = {"name": param.name, "valueFrom": {"supplied": {}}}
                if vf.default is not None:
                    entry["valueFrom"]["default"] = vf.default
                if param.global_name:
                    entry["globalName"] = param.global_name
                supplied.append(entry)
            if supplied:
                node["outputs"] = {"parameters": supplied}
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._resumes[node["id"]] = waiter
        self.book.changed()
        try:
            if duration is not None:
                started = _parse_time(node.get("startedAt")) or time.time()
                await asyncio.wait({waiter}, timeout=max(0.0, duration - (time.time() - started)))
            else:
                await waiter
        finally:
            self._resumes.pop(node["id"], None)
        if node.get("phase") not in COMPLETED:
            self.book.complete(node, "Succeeded")
        for param in (node.get("outputs") or {}).get("parameters") or []:
            supplied_from: dict[str, Any] = param.get("valueFrom") or {}
            if "value" not in param and "supplied" in supplied_from and supplied_from.get("default") is not None:
                param["value"] = supplied_from["default"]
                param.pop("valueFrom", None)
            if param.get("globalName") and "value" in param:
                self._set_global_output(str(param["globalName"]), str(param["value"]))
        return node

    # ----------------------------------------------------------------------------- steps

    async def _run_steps(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        assert template.steps is not None
        limit = asyncio.Semaphore(template.parallelism) if template.parallelism else None
        halt = asyncio.Event() if template.fail_fast else None  # steps: failFast stops new children
        previous: list[Node] = []
        previous_group: Node | None = None
        for index, group in enumerate(template.steps):
            group_node = self.book.node(f"{node['name']}[{index}]", f"[{index}]", "StepGroup", None, node["id"])
            if previous_group is None:
                self.book.add_child(node, group_node)
            elif previous:
                for child in previous:
                    self.book.add_child(child, group_node)
            else:
                self.book.add_child(previous_group, group_node)
            group_node["phase"] = "Running"
            calls: list[tuple[WorkflowStep, list[tuple[str, Any | None]]]] = []
            for step in group:
                calls.append((step, expansions(step, scope)))
            jobs = []
            for step, items in calls:
                for suffix, item in items:
                    jobs.append(
                        self._run_call(
                            step,
                            suffix,
                            item,
                            f"{node['name']}[{index}]",
                            node,
                            scope,
                            limit,
                            context=self._contexts.get(id(template)),
                            halt=halt,
                        )
                    )
            children = list(await asyncio.gather(*jobs))
            for child in children:
                self.book.add_child(group_node, child)
            for step, items in calls:
                mine = [c for c in children if c["displayName"].split("(")[0] == step.name]
                self._record_outputs(
                    "steps",
                    step.name,
                    mine,
                    looped=bool(items and items[0][1] is not None)
                    or step.with_items is not None
                    or step.with_param is not None
                    or step.with_sequence is not None,
                    scope=scope,
                )
            failed = [
                c
                for c in children
                if c.get("phase") not in SUCCESSFUL and not _continues(self._step_of(calls, c), c.get("phase"))
            ]
            if failed:
                self.book.complete(group_node, "Failed", f"child '{failed[0]['id']}' failed")
                node["outboundNodes"] = [x for c in children for x in self.book.outbound(c)]
                return self.book.complete(node, "Failed", f"child '{failed[0]['id']}' failed")
            self.book.complete(group_node, "Succeeded")
            previous, previous_group = children, group_node
        node["outboundNodes"] = [x for c in previous for x in self.book.outbound(c)]
        outputs = self._template_outputs(template, scope)
        return self.book.complete(node, "Succeeded", "", outputs)

    @staticmethod
    def _step_of(calls: list[tuple[WorkflowStep, list[tuple[str, Any | None]]]], child: Node) -> WorkflowStep | None:
        base = child["displayName"].split("(")[0]
        for step, _items in calls:
            if step.name == base:
                return step
        return None

    async def _run_call(
        self,
        step: WorkflowStep,
        suffix: str,
        item: Any | None,
        prefix: str,
        parent: Node,
        scope: dict[str, str],
        limit: asyncio.Semaphore | None,
        separator: str = ".",
        *,
        context: WorkflowSpec | None = None,
        halt: asyncio.Event | None = None,
    ) -> Node:
        name = f"{prefix}{separator}{step.name}{suffix}"
        display = f"{step.name}{suffix}"
        existing = self.nodes.get(node_id(self.name, name))
        if existing is not None and existing.get("phase") in COMPLETED:
            return existing
        local = dict(scope)
        if item is not None:
            add_item(local, item)
        try:
            if step.when:
                when = substitute(step.when, local)
                if not evaluate_when(when):
                    skipped = self.book.node(name, display, "Skipped", step.template, parent["id"])
                    return self.book.complete(skipped, "Skipped", f"when '{when}' evaluated false")
            arguments = _substitute_arguments(step.arguments, local)
        except (ExprError, InvalidError) as exc:
            errored = self.book.node(name, display, "Skipped", step.template, parent["id"])
            return self.book.complete(errored, "Error", _message(exc))
        call = Call(
            template=step.template,
            template_ref=step.template_ref,
            inline=step.inline,
            arguments=arguments,
            context=context,
        )
        hooks = {k: h for k, h in (step.hooks or {}).items() if k != "exit" and h.expression}
        kind = "tasks" if parent.get("type") == "DAG" else "steps"
        watcher = (
            asyncio.create_task(self._watch_step_hooks(hooks, kind, step.name, name, display, parent, local))
            if hooks
            else None
        )
        try:
            async with limit if limit is not None else contextlib.nullcontext():
                if halt is not None and halt.is_set():  # failFast: a sibling failed, start nothing new
                    omitted = self.book.node(name, display, "Skipped", step.template, parent["id"])
                    return self.book.complete(omitted, "Omitted", "not started: failFast after a sibling failed")
                child = await self._execute(name, display, call, parent["id"], local)
                if halt is not None and child.get("phase") in ("Failed", "Error"):
                    halt.set()
        finally:
            if watcher is not None:
                self.book.changed()
        if watcher is not None:
            await watcher
        exit_hook = (step.hooks or {}).get("exit")
        exit_call: Call | None = None
        if step.on_exit:
            exit_call = Call(template=step.on_exit, context=context)
        elif exit_hook is not None:
            exit_scope = dict(local)
            self._record_outputs(kind, step.name, [child], looped=False, scope=exit_scope)
            exit_call = self._hook_call(exit_hook, exit_scope)
        if exit_call is not None:
            await self._execute(f"{name}.onExit", f"{display}.onExit", exit_call, parent["id"], local)
        return child

    # ----------------------------------------------------------------------------- lifecycle hooks

    def _hook_call(self, hook: LifecycleHook, scope: Mapping[str, str]) -> Call:
        return Call(
            template=hook.template,
            template_ref=hook.template_ref,
            arguments=_substitute_arguments(hook.arguments, scope),
        )

    def _fire_hooks(
        self,
        hooks: Mapping[str, LifecycleHook],
        node_name: str,
        display: str,
        boundary: str | None,
        scope: dict[str, str],
        fired: set[str],
    ) -> None:
        """Start every not yet fired hook whose expression is true now (each hook runs at most once)."""
        for hook_name, hook in hooks.items():
            if hook_name in fired:
                continue
            try:
                due = evaluate_bool(substitute(hook.expression or "", scope), nest(scope))
                call = self._hook_call(hook, scope) if due else None
            except (ExprError, InvalidError) as exc:
                log.warning("workflow %s: hook %s of %s: %s", self.name, hook_name, display, exc)
                fired.add(hook_name)
                continue
            if call is None:
                continue
            fired.add(hook_name)
            self._hook_tasks.append(
                asyncio.create_task(
                    self._execute(
                        f"{node_name}.hooks.{hook_name}", f"{display}.hooks.{hook_name}", call, boundary, scope
                    )
                )
            )

    async def _watch_workflow_hooks(self, hooks: Mapping[str, LifecycleHook]) -> None:
        """Workflow-level hooks: re-evaluated on every status change while the workflow runs."""
        changed = asyncio.Event()
        self.book.change_events.add(changed)
        try:
            while True:
                scope = dict(self.globals)
                scope["workflow.status"] = str(self.status.get("phase") or "Running")
                self._fire_hooks(hooks, self.name, self.name, None, scope, self._fired_wf_hooks)
                if len(self._fired_wf_hooks) == len(hooks):
                    return
                await changed.wait()
                changed.clear()
        finally:
            self.book.change_events.discard(changed)

    async def _watch_step_hooks(
        self,
        hooks: Mapping[str, LifecycleHook],
        kind: str,
        step_name: str,
        node_name: str,
        display: str,
        parent: Node,
        scope: dict[str, str],
    ) -> None:
        """Step/task hooks: evaluated with ``steps.<name>.status`` as the node's phase changes."""
        changed = asyncio.Event()
        self.book.change_events.add(changed)
        fired: set[str] = set()
        nid = node_id(self.name, node_name)
        try:
            while True:
                node = self.nodes.get(nid)
                if node is not None:
                    local = dict(scope)
                    self._record_outputs(kind, step_name, [node], looped=False, scope=local)
                    self._fire_hooks(hooks, node_name, display, parent["id"], local, fired)
                    if node.get("phase") in COMPLETED or len(fired) == len(hooks):
                        return
                await changed.wait()
                changed.clear()
        finally:
            self.book.change_events.discard(changed)

    def _record_outputs(
        self, prefix: str, name: str, nodes: list[Node], *, looped: bool, scope: dict[str, str]
    ) -> None:
        """Put a step's/task's outputs into ``scope`` as ``steps.NAME.*`` / ``tasks.NAME.*``."""
        base = f"{prefix}.{name}"
        if not nodes:
            if looped:
                scope[f"{base}.outputs.parameters"] = "[]"
                scope[f"{base}.outputs.result"] = "[]"
            return
        if looped:
            # Argo's aggregation: succeeded expansions only, results parsed as JSON when they are JSON.
            results: list[Any] = []
            params: list[dict[str, str]] = []
            by_name: dict[str, list[str]] = {}
            for n in nodes:
                outputs = n.get("outputs") or {}
                if n.get("phase") != "Succeeded" or not outputs:
                    continue
                if outputs.get("parameters"):
                    entry = {p["name"]: str(p.get("value", "")) for p in outputs["parameters"]}
                    params.append(entry)
                    for key, value in entry.items():
                        by_name.setdefault(key, []).append(value)
                if "result" in outputs:
                    results.append(_json_or_text(outputs["result"]))
            scope[f"{base}.outputs.result"] = json.dumps(results, separators=(",", ":"))
            scope[f"{base}.outputs.parameters"] = json.dumps(params, separators=(",", ":"))
            for key, values in by_name.items():
                parsed = [_json_or_text(v) for v in values]
                if not all(isinstance(v, dict | list) for v in parsed):
                    parsed = list(values)
                scope[f"{base}.outputs.parameters.{key}"] = json.dumps(parsed, separators=(",", ":"))
            phases = {n.get("phase") for n in nodes}
            scope[f"{base}.status"] = "Succeeded" if phases <= SUCCESSFUL else "Failed"
            return
        node = nodes[0]
        outputs = node.get("outputs") or {}
        scope[f"{base}.id"] = node["id"]
        scope[f"{base}.status"] = node.get("phase", "")
        scope[f"{base}.startedAt"] = node.get("startedAt", "")
        scope[f"{base}.finishedAt"] = node.get("finishedAt", "")
        if "result" in outputs:
            scope[f"{base}.outputs.result"] = outputs["result"]
        if "exitCode" in outputs:
            scope[f"{base}.exitCode"] = outputs["exitCode"]
        for param in outputs.get("parameters", []):
            scope[f"{base}.outputs.parameters.{param['name']}"] = param.get("value", "")
        for record in outputs.get("artifacts", []):
            scope[f"{base}.outputs.artifacts.{record['name']}"] = json.dumps(record, separators=(",", ":"))
        if node.get("phase") in ("Skipped", "Omitted") and not outputs:
            # Outputs of a node that never ran: the producer's declared defaults (Argo >= 3.7.16).
            producer = self.spec.template(str(node.get("templateName") or ""))
            for declared in (producer.outputs.parameters if producer and producer.outputs else None) or []:
                if declared.value_from is not None and declared.value_from.default is not None:
                    scope[f"{base}.outputs.parameters.{declared.name}"] = declared.value_from.default

    def _template_outputs(self, template: Template, scope: Mapping[str, str]) -> dict[str, Any] | None:
        """Outputs of a steps/dag template: ``valueFrom.parameter`` or ``valueFrom.expression``."""
        params = []
        for param in (template.outputs.parameters if template.outputs else None) or []:
            vf = param.value_from
            value: str | None = None
            if vf is not None and (vf.parameter or vf.expression):
                try:
                    if vf.parameter:
                        value = substitute(vf.parameter, scope)
                    else:
                        value = format_value(evaluate(substitute(vf.expression or "", scope), nest(scope)))
                except ExprError:
                    if vf.default is None:
                        raise
                    value = vf.default
            elif param.value is not None:
                value = substitute(param.value, scope)
            if value is None:
                raise InvalidError(f"output parameter {param.name!r} of {template.name!r} has no valueFrom.parameter")
            params.append({"name": param.name, "value": value})
            if param.global_name:
                self._set_global_output(param.global_name, value)
        artifacts: list[Record] = []
        for artifact in _substitute_artifacts(template.outputs.artifacts if template.outputs else None, scope) or []:
            if not artifact.from_:
                continue
            try:
                record = parse_reference(artifact.from_)
            except InvalidError:
                if artifact.optional:
                    continue
                raise
            record = {**record, "name": artifact.name}
            if artifact.global_name:
                self._set_global_artifact(artifact.global_name, record)
            artifacts.append(record)
        result: dict[str, Any] = {}
        if params:
            result["parameters"] = params
        if artifacts:
            result["artifacts"] = artifacts
        return result or None

    # ----------------------------------------------------------------------------- dag

    async def _run_dag(self, node: Node, template: Template, scope: dict[str, str]) -> Node:
        assert template.dag is not None
        tasks = {t.name: t for t in template.dag.tasks}
        deps = {t.name: task_dependencies(t) for t in template.dag.tasks}
        wanted = set(tasks)
        if template.dag.target:
            targets = substitute(template.dag.target, scope).split()
            wanted = set()
            todo = list(targets)
            while todo:
                name = todo.pop()
                if name in wanted or name not in tasks:
                    continue
                wanted.add(name)
                todo.extend(deps[name])
        handled = {d for t in template.dag.tasks if t.depends for d in failure_refs(t.depends)}
        fail_fast = template.fail_fast if template.fail_fast is not None else (template.dag.fail_fast is not False)
        limit = asyncio.Semaphore(template.parallelism) if template.parallelism else None
        results: dict[str, list[Node]] = {}
        phase_of: dict[str, str] = {}
        running: dict[str, asyncio.Task[list[Node]]] = {}
        failed = False

        def runnable(name: str) -> bool | None:
            """True: start; False: never (omit); None: wait."""
            if any(d not in phase_of for d in deps[name]):
                return None
            task = tasks[name]
            if task.depends:
                return evaluate_depends(
                    task.depends,
                    {d: phase_of[d] for d in deps[name]},
                    {d: [n.get("phase", "") for n in results.get(d, [])] for d in deps[name]},
                )
            return all(phase_of[d] in SUCCESSFUL or _continues(tasks[d], phase_of[d]) for d in deps[name])

        while True:
            for name in [n for n in wanted if n not in phase_of and n not in running]:
                if failed and fail_fast:
                    continue
                ok = runnable(name)
                if ok is None:
                    continue
                if ok is False:
                    task_template = tasks[name].template
                    omitted = self.book.node(f"{node['name']}.{name}", name, "Skipped", task_template, node["id"])
                    self.book.complete(omitted, "Omitted", "omitted: depends condition not met")
                    self._link_task(node, omitted, deps[name], results)
                    results[name] = [omitted]
                    phase_of[name] = "Omitted"
                    self._record_outputs("tasks", name, [omitted], looped=False, scope=scope)
                    continue
                running[name] = asyncio.create_task(
                    self._run_task(tasks[name], node, scope, limit, self._contexts.get(id(template)))
                )
            if not running:
                break
            done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
            for name in [n for n, t in running.items() if t in done]:
                children = running.pop(name).result()
                results[name] = children
                for child in children:
                    self._link_task(node, child, deps[name], results)
                task = tasks[name]
                looped = task.with_items is not None or task.with_param is not None or task.with_sequence is not None
                phases = [c.get("phase", "Error") for c in children]
                if not phases or all(p in SUCCESSFUL for p in phases):
                    phase = "Succeeded" if not phases or any(p == "Succeeded" for p in phases) else phases[0]
                elif any(p == "Error" for p in phases):
                    phase = "Error"
                else:
                    phase = "Failed"
                phase_of[name] = phase
                self._record_outputs("tasks", name, children, looped=looped, scope=scope)
                if phase not in SUCCESSFUL and not _continues(task, phase) and name not in handled:
                    failed = True
        leaves = [n for n in wanted if not any(n in deps[m] for m in wanted)]
        node["outboundNodes"] = [x for leaf in leaves for c in results.get(leaf, []) for x in self.book.outbound(c)]
        bad = [
            n
            for n in wanted
            if n in phase_of
            and phase_of[n] not in SUCCESSFUL
            and not _continues(tasks[n], phase_of[n])
            and n not in handled
        ]
        if bad or (failed and fail_fast):
            first = results[bad[0]][0]["id"] if bad and results.get(bad[0]) else node["id"]
            return self.book.complete(node, "Failed", f"child '{first}' failed")
        if any(n not in phase_of for n in wanted):
            return self.book.complete(node, "Failed", "some tasks could not run")
        return self.book.complete(node, "Succeeded", "", self._template_outputs(template, scope))

    def _link_task(self, dag: Node, child: Node, deps: list[str], results: dict[str, list[Node]]) -> None:
        if not deps:
            self.book.add_child(dag, child)
            return
        for dep in deps:
            for parent in results.get(dep, []):
                self.book.add_child(parent, child)

    async def _run_task(
        self,
        task: DAGTask,
        dag: Node,
        scope: dict[str, str],
        limit: asyncio.Semaphore | None,
        context: WorkflowSpec | None = None,
    ) -> list[Node]:
        try:
            loop = expansions(task, scope)
        except ExprError as exc:
            errored = self.book.node(f"{dag['name']}.{task.name}", task.name, "Skipped", task.template, dag["id"])
            return [self.book.complete(errored, "Error", _message(exc))]
        jobs = [
            self._run_call(task, suffix, item, dag["name"], dag, scope, limit, context=context) for suffix, item in loop
        ]
        return list(await asyncio.gather(*jobs))

    # ----------------------------------------------------------------------------- status writes

    async def _finish(self, phase: str, message: str) -> None:
        self.book.cancel_flush()
        self.status["phase"] = phase
        self.status.setdefault("startedAt", now())
        self.status["finishedAt"] = now()
        if message:
            self.status["message"] = message
        else:
            self.status.pop("message", None)
        root = self.nodes.get(self.name)
        if root is not None and root.get("phase") not in COMPLETED:
            self.book.complete(root, phase, message)
        self.status.pop("synchronization", None)  # a finished workflow holds and waits for nothing
        await self.book.write()
        if self.locks is not None:
            self.locks.release_workflow(self.namespace, self.name)

class Call:
    """A call of a template: by name, by templateRef, or inline, with arguments."""

    __slots__ = ("arguments", "context", "inline", "template", "template_ref")

    def __init__(
        self,
        *,
        template: str | None = None,
        template_ref: Any = None,
        inline: Template | None = None,
        arguments: Arguments | None = None,
        context: WorkflowSpec | None = None,
    ) -> None:
        self.template = template
        self.template_ref = template_ref
        self.inline = inline
        self.arguments = arguments
        self.context = context  # the (Cluster)WorkflowTemplate spec ``template`` names are looked up in


# --------------------------------------------------------------------------------- helpers


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"invalid spec: {where}: {first.get('msg')}"
    return str(exc)


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_SOLE_OUTPUT_REF = re.compile(r"^\{\{\s*(steps|tasks)\.([^.{}]+)\.outputs\.(?:parameters\.[^{}]+|result)\s*\}\}$")


def _json_or_text(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def _substitute_arguments(arguments: Arguments | None, scope: Mapping[str, str]) -> Arguments | None:
    """Arguments with their ``{{...}}`` substituted. An argument that is only a reference to an
    output of a Skipped/Omitted step or task is left out, so the input's default applies."""
    if arguments is None or not (arguments.parameters or arguments.artifacts):
        return arguments
    params = []
    for param in arguments.parameters or []:
        data = param.model_dump(by_alias=True, exclude_unset=True, mode="json")
        try:
            data = substitute_all(data, scope)
        except ExprError:
            sole = _SOLE_OUTPUT_REF.match(str(param.value or ""))
            if sole and scope.get(f"{sole.group(1)}.{sole.group(2)}.status") in ("Skipped", "Omitted"):
                continue
            raise
        params.append(Parameter.model_validate(data))
    return Arguments(parameters=params, artifacts=_substitute_artifacts(arguments.artifacts, scope))


def _substitute_artifacts(artifacts: list[Artifact] | None, scope: Mapping[str, str]) -> list[Artifact] | None:
    """Argument/output artifacts with ``{{...}}`` substituted; ``fromExpression`` evaluated into ``from``."""
    if not artifacts:
        return artifacts
    done = []
    for artifact in artifacts:
        data = artifact.model_dump(by_alias=True, exclude_none=True, mode="json")
        expression = data.pop("fromExpression", None)
        data = substitute_all(data, scope)
        if expression:
            value = evaluate(substitute(str(expression), scope), nest(scope))
            data["from"] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        done.append(Artifact.model_validate(data))
    return done


def _continues(step: WorkflowStep | None, phase: str | None) -> bool:
    if step is None or not step.continue_on:
        return False
    return bool(
        (phase == "Failed" and step.continue_on.get("failed")) or (phase == "Error" and step.continue_on.get("error"))
    )


def _backoff_delay(backoff: dict[str, Any], attempt: int) -> float:
    try:
        base = parse_duration(backoff.get("duration")) or 0.0
        factor = float(backoff.get("factor") or 1)
        cap = parse_duration(backoff.get("cap")) if backoff.get("cap") else None
    except ValueError:
        return 0.0
    delay = base * (factor**attempt)
    return min(delay, cap) if cap else delay
