"""Argo Workflows kinds: Workflow, WorkflowTemplate, ClusterWorkflowTemplate, CronWorkflow.

Field names follow Argo's ``io.argoproj.workflow.v1alpha1`` types. Fields the bundled controller
does not act on are declared with :func:`unsupported` so lint says so; pod-only fields (resources,
security contexts, volumes...) are carried for cluster mode and ignored by the host executor.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BeforeValidator, Field

from eventbridge.models.base import ArgoModel, Finding, Manifest, unsupported

POD_ONLY = "carried for cluster mode; ignored by the host executor"

# The template kinds a Template may hold, in Argo's spelling; exactly one must be set.
TEMPLATE_TYPES = (
    "container",
    "script",
    "steps",
    "dag",
    "suspend",
    "resource",
    "http",
    "container_set",
    "data",
    "plugin",
)


# --- parameters, arguments -----------------------------------------------------------------


class KeySelectorName(ArgoModel):
    """A ``{name}`` reference (a ConfigMap by name; ``key`` is accepted and unused)."""

    name: str
    key: str | None = None


class KeySelector(ArgoModel):
    """A ``{name, key, optional}`` Secret or ConfigMap key selector."""

    name: str | None = None
    key: str
    optional: bool | None = None


class ValueFrom(ArgoModel):
    """Where a parameter's value comes from (``valueFrom``)."""

    path: str | None = None
    expression: str | None = None
    parameter: str | None = None
    default: AnyStr | None = None
    supplied: dict[str, Any] | None = None
    config_map_key_ref: KeySelector | None = None
    json_path: str | None = None
    jq_filter: str | None = None
    event: str | None = None


def _stringify(value: Any) -> Any:
    """Argo's AnyString / IntOrString: numbers and booleans given in YAML are kept as strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


AnyStr = Annotated[str, BeforeValidator(_stringify)]

_DEPENDS_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|([A-Za-z0-9_][A-Za-z0-9_-]*)(?:\.([A-Za-z]+))?)")
DEPENDS_RESULTS = (
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
)


def depends_names(expression: str) -> list[str]:
    """The task names a DAG ``depends`` expression mentions; ValueError on a malformed one."""
    names: list[str] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        match = _DEPENDS_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"depends {expression!r}: unexpected text at {text[pos:]!r}")
        if match.group(2):
            if match.group(3) and match.group(3) not in DEPENDS_RESULTS:
                raise ValueError(f"depends {expression!r}: unknown task result {match.group(3)!r}")
            if match.group(2) not in names:
                names.append(match.group(2))
        pos = match.end()
    return names


class Parameter(ArgoModel):
    """An input/output/argument parameter."""

    name: str
    value: AnyStr | None = None
    default: AnyStr | None = None
    enum: list[AnyStr] | None = None
    value_from: ValueFrom | None = None
    global_name: str | None = None
    description: str | None = None


NOT_YET_CLOUD = "this cloud artifact store is not supported yet (raw, http, git, s3 and passing between steps are)"


class Artifact(ArgoModel):
    """An input/output/argument artifact (see eventbridge/workflow/artifacts.py for what moves them)."""

    name: str
    path: str | None = None
    mode: int | None = None
    optional: bool | None = None
    from_: str | None = Field(default=None, alias="from")
    from_expression: str | None = None
    global_name: str | None = None
    sub_path: str | None = None
    archive: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    s3: dict[str, Any] | None = None
    gcs: dict[str, Any] | None = unsupported(NOT_YET_CLOUD)
    azure: dict[str, Any] | None = unsupported(NOT_YET_CLOUD)
    oss: dict[str, Any] | None = unsupported(NOT_YET_CLOUD)
    hdfs: dict[str, Any] | None = unsupported(NOT_YET_CLOUD)
    artifactory: dict[str, Any] | None = unsupported(NOT_YET_CLOUD)
    artifact_gc: dict[str, Any] | None = unsupported()
    archive_logs: bool | None = unsupported()
    recurse_mode: bool | None = None
    deleted: bool | None = None


class Arguments(ArgoModel):
    parameters: list[Parameter] | None = None
    artifacts: list[Artifact] | None = None


class Inputs(ArgoModel):
    parameters: list[Parameter] | None = None
    artifacts: list[Artifact] | None = None


class Outputs(ArgoModel):
    parameters: list[Parameter] | None = None
    artifacts: list[Artifact] | None = None
    result: str | None = None
    exit_code: str | None = None


# --- template kinds ------------------------------------------------------------------------


class EnvVar(ArgoModel):
    name: str
    value: AnyStr | None = None
    value_from: dict[str, Any] | None = None


class Container(ArgoModel):
    """A container; on the host, ``command + args`` is run as a process (the image is ignored)."""

    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    working_dir: str | None = None
    image_pull_policy: str | None = unsupported(POD_ONLY)
    resources: dict[str, Any] | None = unsupported(POD_ONLY)
    volume_mounts: list[dict[str, Any]] | None = None
    security_context: dict[str, Any] | None = unsupported(POD_ONLY)
    env_from: list[dict[str, Any]] | None = unsupported(POD_ONLY)
    ports: list[dict[str, Any]] | None = unsupported(POD_ONLY)


class ScriptTemplate(Container):
    """A container whose ``source`` is written to a file and passed to ``command``."""

    source: str = ""


class ContainerNode(Container):
    dependencies: list[str] | None = None


class ContainerSetTemplate(ArgoModel):
    """Containers run as one "pod": each a host step, in ``dependencies`` order, sharing the
    set's ``volumeMounts``; the template's outputs come from the container named ``main``."""

    containers: list[ContainerNode] = Field(default_factory=list)
    volume_mounts: list[dict[str, Any]] | None = None
    retry_strategy: dict[str, Any] | None = None


class Sequence(ArgoModel):
    """``withSequence``: count or start/end, and an optional printf format."""

    count: AnyStr | None = None
    start: AnyStr | None = None
    end: AnyStr | None = None
    format: str | None = None


class Mutex(ArgoModel):
    """A mutex (``synchronization.mutexes[]``); ``database: true`` locks are kept by this controller."""

    name: str = ""
    namespace: str | None = None
    database: bool | None = None


class SemaphoreRef(ArgoModel):
    """A semaphore whose limit is one key of a ConfigMap (``configMapKeyRef``)."""

    config_map_key_ref: KeySelector | None = None
    namespace: str | None = None
    database: dict[str, Any] | None = unsupported(
        "database semaphores need Argo's sync_limit table; use configMapKeyRef"
    )


class Synchronization(ArgoModel):
    """``synchronization``: mutexes and semaphores (the singular forms are Argo's older spelling)."""

    mutex: Mutex | None = None
    semaphore: SemaphoreRef | None = None
    mutexes: list[Mutex] | None = None
    semaphores: list[SemaphoreRef] | None = None


class MemoizeCache(ArgoModel):
    config_map: KeySelectorName | None = None


class Memoize(ArgoModel):
    """``memoize``: outputs cached under ``key`` in a ConfigMap-shaped cache, valid for ``maxAge``."""

    key: str
    max_age: str | None = None
    cache: MemoizeCache | None = None


class RetryStrategy(ArgoModel):
    limit: AnyStr | None = None
    retry_policy: str | None = None
    backoff: dict[str, Any] | None = None
    expression: str | None = None
    affinity: dict[str, Any] | None = unsupported(POD_ONLY)


class TemplateRef(ArgoModel):
    name: str
    template: str
    cluster_scope: bool | None = None


class LifecycleHook(ArgoModel):
    template: str | None = None
    template_ref: TemplateRef | None = None
    arguments: Arguments | None = None
    expression: str | None = None


class WorkflowStep(ArgoModel):
    """One step of a ``steps`` template (also the shape of ``onExit`` style calls)."""

    name: str
    template: str | None = None
    template_ref: TemplateRef | None = None
    inline: Template | None = None
    arguments: Arguments | None = None
    when: str | None = None
    with_items: list[Any] | None = None
    with_param: str | None = None
    with_sequence: Sequence | None = None
    continue_on: dict[str, bool] | None = None
    on_exit: str | None = None
    hooks: dict[str, LifecycleHook] | None = None


class DAGTask(WorkflowStep):
    """One task of a ``dag`` template."""

    dependencies: list[str] | None = None
    depends: str | None = None


class DAGTemplate(ArgoModel):
    tasks: list[DAGTask] = Field(default_factory=list)
    target: str | None = None
    fail_fast: bool | None = None


class SuspendTemplate(ArgoModel):
    duration: str | None = None


class ResourceTemplate(ArgoModel):
    action: str
    manifest: str | None = None
    manifest_from: dict[str, Any] | None = None
    success_condition: str | None = None
    failure_condition: str | None = None
    set_owner_reference: bool | None = None
    merge_strategy: str | None = None
    flags: list[str] | None = None


class HTTPTemplate(ArgoModel):
    """An HTTP request made by the controller; ``successCondition`` is an expr-lang expression over
    ``request.*`` and ``response.*`` (default: a 2xx status)."""

    url: str
    method: str | None = None
    headers: list[dict[str, Any]] | None = None
    body: str | None = None
    body_from: dict[str, Any] | None = None
    timeout_seconds: int | None = None
    success_condition: str | None = None
    insecure_skip_verify: bool | None = None


class DataTemplate(ArgoModel):
    """``data``: a list from ``source`` (file paths of an artifact) through expr ``transformations``."""

    source: dict[str, Any] = Field(default_factory=dict)
    transformation: list[dict[str, Any]] = Field(default_factory=list)


class Template(ArgoModel):
    """One entry of ``spec.templates`` (or an ``inline`` template, which needs no name)."""

    name: str = ""
    inputs: Inputs | None = None
    outputs: Outputs | None = None
    container: Container | None = None
    script: ScriptTemplate | None = None
    steps: list[list[WorkflowStep]] | None = None
    dag: DAGTemplate | None = None
    suspend: SuspendTemplate | None = None
    resource: ResourceTemplate | None = None
    http: HTTPTemplate | None = None
    container_set: ContainerSetTemplate | None = None
    data: DataTemplate | None = None
    plugin: dict[str, Any] | None = None
    retry_strategy: RetryStrategy | None = None
    timeout: AnyStr | None = None
    active_deadline_seconds: AnyStr | None = None
    parallelism: int | None = None
    fail_fast: bool | None = None
    memoize: Memoize | None = None
    synchronization: Synchronization | None = None
    metrics: dict[str, Any] | None = unsupported()
    daemon: bool | None = unsupported()
    init_containers: list[dict[str, Any]] | None = unsupported(POD_ONLY)
    sidecars: list[dict[str, Any]] | None = unsupported(POD_ONLY)
    volumes: list[dict[str, Any]] | None = None  # emptyDir volumes become shared host directories
    node_selector: dict[str, str] | None = unsupported(POD_ONLY)
    affinity: dict[str, Any] | None = unsupported(POD_ONLY)
    tolerations: list[dict[str, Any]] | None = unsupported(POD_ONLY)
    metadata: dict[str, Any] | None = unsupported(POD_ONLY)
    service_account_name: str | None = unsupported(POD_ONLY)
    security_context: dict[str, Any] | None = unsupported(POD_ONLY)
    pod_spec_patch: str | None = unsupported(POD_ONLY)
    priority_class_name: str | None = unsupported(POD_ONLY)
    scheduler_name: str | None = unsupported(POD_ONLY)
    archive_location: dict[str, Any] | None = unsupported(
        "archiveLocation is not supported yet (outputs go to the workflow's artifact repository)"
    )

    def kinds(self) -> list[str]:
        """The template kinds set on this template (Argo's names), normally exactly one."""
        return [kind for kind in TEMPLATE_TYPES if getattr(self, kind) is not None]

    def calls(self) -> Iterator[tuple[str, WorkflowStep]]:
        """Every (field path, step or task) this template holds."""
        for gi, group in enumerate(self.steps or []):
            for si, step in enumerate(group):
                yield f"steps.{gi}.{si}", step
        if self.dag is not None:
            for ti, task in enumerate(self.dag.tasks):
                yield f"dag.tasks.{ti}", task


# --- workflow spec -------------------------------------------------------------------------


class TTLStrategy(ArgoModel):
    seconds_after_completion: int | None = None
    seconds_after_success: int | None = None
    seconds_after_failure: int | None = None


class PodGC(ArgoModel):
    strategy: str | None = None
    label_selector: dict[str, Any] | None = None
    delete_delay_duration: str | None = None


class WorkflowTemplateRef(ArgoModel):
    name: str
    cluster_scope: bool | None = None


class WorkflowSpec(ArgoModel):
    """Argo's WorkflowSpec."""

    entrypoint: str | None = None
    arguments: Arguments | None = None
    templates: list[Template] | None = None
    on_exit: str | None = None
    parallelism: int | None = None
    workflow_template_ref: WorkflowTemplateRef | None = None
    active_deadline_seconds: int | None = None
    suspend: bool | None = None
    shutdown: str | None = None
    ttl_strategy: TTLStrategy | None = None
    pod_gc: PodGC | None = None
    workflow_metadata: dict[str, Any] | None = None
    hooks: dict[str, LifecycleHook] | None = None
    retry_strategy: RetryStrategy | None = None  # the default of every template without its own
    fail_fast: bool | None = None
    service_account_name: str | None = unsupported(POD_ONLY)
    automount_service_account_token: bool | None = unsupported(POD_ONLY)
    executor: dict[str, Any] | None = unsupported(POD_ONLY)
    volumes: list[dict[str, Any]] | None = None  # emptyDir volumes become shared host directories
    volume_claim_templates: list[dict[str, Any]] | None = None
    volume_claim_gc: dict[str, Any] | None = unsupported(POD_ONLY)
    node_selector: dict[str, str] | None = unsupported(POD_ONLY)
    affinity: dict[str, Any] | None = unsupported(POD_ONLY)
    tolerations: list[dict[str, Any]] | None = unsupported(POD_ONLY)
    image_pull_secrets: list[dict[str, Any]] | None = unsupported(POD_ONLY)
    host_network: bool | None = unsupported(POD_ONLY)
    dns_policy: str | None = unsupported(POD_ONLY)
    dns_config: dict[str, Any] | None = unsupported(POD_ONLY)
    security_context: dict[str, Any] | None = unsupported(POD_ONLY)
    pod_priority_class_name: str | None = unsupported(POD_ONLY)
    scheduler_name: str | None = unsupported(POD_ONLY)
    pod_metadata: dict[str, Any] | None = unsupported(POD_ONLY)
    pod_spec_patch: str | None = unsupported(POD_ONLY)
    pod_disruption_budget: dict[str, Any] | None = unsupported(POD_ONLY)
    host_aliases: list[dict[str, Any]] | None = unsupported(POD_ONLY)
    template_defaults: dict[str, Any] | None = None
    artifact_repository_ref: dict[str, Any] | None = None  # an s3 repository from a ConfigMap key
    artifact_gc: dict[str, Any] | None = unsupported("artifact garbage collection is not supported yet")
    archive_logs: bool | None = unsupported()
    synchronization: Synchronization | None = None
    metrics: dict[str, Any] | None = unsupported()
    priority: int | None = None  # orders workflows waiting for the same lock
    executor_plugins: list[dict[str, Any]] | None = None  # called at localhost:<containerPort>

    def template(self, name: str) -> Template | None:
        for tmpl in self.templates or []:
            if tmpl.name == name:
                return tmpl
        return None


def _dag_cycle(tasks: list[DAGTask]) -> list[str] | None:
    """A dependency cycle among ``tasks`` (names in order), or None."""
    graph: dict[str, list[str]] = {}
    for task in tasks:
        deps = list(task.dependencies or [])
        if task.depends:
            with contextlib.suppress(ValueError):
                deps += depends_names(task.depends)
        graph[task.name] = [d for d in deps]
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep in graph and state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for name in graph:
        if state.get(name) is None:
            found = visit(name)
            if found:
                return found
    return None


def sync_findings(sync: Synchronization | None, where: str) -> list[Finding]:
    """Problems Argo rejects in a ``synchronization`` block (a mutex without a name...)."""
    if sync is None:
        return []
    findings: list[Finding] = []
    mutexes = [(f"{where}.mutex", sync.mutex)] if sync.mutex is not None else []
    mutexes += [(f"{where}.mutexes.{i}", m) for i, m in enumerate(sync.mutexes or [])]
    for path, mutex in mutexes:
        if not mutex.name:
            findings.append(Finding(f"{path}.name", "a mutex needs a name"))
        if mutex.database:
            findings.append(
                Finding(
                    f"{path}.database",
                    "database mutexes are kept by this controller alone (not shared with other controllers)",
                    "warning",
                )
            )
    semaphores = [(f"{where}.semaphore", sync.semaphore)] if sync.semaphore is not None else []
    semaphores += [(f"{where}.semaphores.{i}", s) for i, s in enumerate(sync.semaphores or [])]
    for path, semaphore in semaphores:
        ref = semaphore.config_map_key_ref
        if ref is not None and semaphore.database is not None:
            findings.append(Finding(path, "a semaphore has either configMapKeyRef or database, not both"))
        elif ref is None and semaphore.database is None:
            findings.append(Finding(path, "a semaphore needs configMapKeyRef (name and key of its limit)"))
        elif ref is not None and not ref.name:
            findings.append(Finding(f"{path}.configMapKeyRef.name", "configMapKeyRef.name is required"))
    return findings


def check_spec(spec: WorkflowSpec, *, prefix: str = "spec", need_entrypoint: bool = True) -> list[Finding]:
    """Semantic checks Argo makes at submission (references resolved within ``spec`` only)."""
    findings: list[Finding] = sync_findings(spec.synchronization, f"{prefix}.synchronization")
    if spec.executor_plugins:
        findings.append(
            Finding(
                f"{prefix}.executorPlugins",
                "the bundled controller does not start plugin sidecars: run each plugin's server yourself; it is "
                "called at http://localhost:<its first containerPort>",
                "warning",
            )
        )
    templates = spec.templates or []
    names: set[str] = set()
    for i, tmpl in enumerate(templates):
        findings += sync_findings(tmpl.synchronization, f"{prefix}.templates.{i}.synchronization")
        if tmpl.memoize is not None and (tmpl.memoize.cache is None or tmpl.memoize.cache.config_map is None):
            findings.append(
                Finding(f"{prefix}.templates.{i}.memoize.cache", "memoize.cache.configMap.name is required")
            )
        if not tmpl.name:
            findings.append(Finding(f"{prefix}.templates.{i}.name", "template name is required"))
        if tmpl.name in names:
            findings.append(Finding(f"{prefix}.templates.{i}.name", f"template name {tmpl.name!r} is used twice"))
        names.add(tmpl.name)
        kinds = tmpl.kinds()
        if not kinds:
            findings.append(
                Finding(
                    f"{prefix}.templates.{i}",
                    f"template {tmpl.name!r} has no type (container, script, steps, dag, suspend...)",
                )
            )
        elif len(kinds) > 1:
            findings.append(
                Finding(
                    f"{prefix}.templates.{i}",
                    f"template {tmpl.name!r} has more than one type: {', '.join(kinds)}",
                )
            )
        if tmpl.resource is not None:
            findings.append(
                Finding(
                    f"{prefix}.templates.{i}.resource",
                    f"template {tmpl.name!r} is a resource template: it needs cluster mode (a Kubernetes API); "
                    "the bundled controller fails it when it runs",
                    "warning",
                )
            )
        if tmpl.container_set is not None:
            container_names = [c.name for c in tmpl.container_set.containers]
            for ci, container in enumerate(tmpl.container_set.containers):
                for dep in container.dependencies or []:
                    if dep not in container_names:
                        findings.append(
                            Finding(
                                f"{prefix}.templates.{i}.containerSet.containers.{ci}.dependencies",
                                f"container {container.name!r} depends on unknown container {dep!r}",
                            )
                        )
        if tmpl.script is not None and not tmpl.script.source:
            findings.append(Finding(f"{prefix}.templates.{i}.script.source", "script.source is required"))
        if tmpl.container is not None and not (tmpl.container.command or tmpl.container.args):
            findings.append(
                Finding(
                    f"{prefix}.templates.{i}.container",
                    f"template {tmpl.name!r} has no command or args: the host executor cannot run an image's "
                    "default entrypoint",
                    "warning",
                )
            )
    if spec.workflow_template_ref is not None:
        return findings  # the referenced template supplies the rest; checked when resolved
    if need_entrypoint:
        if not spec.entrypoint:
            findings.append(Finding(f"{prefix}.entrypoint", "spec.entrypoint is required"))
        elif spec.entrypoint not in names:
            findings.append(
                Finding(
                    f"{prefix}.entrypoint",
                    f"entrypoint template {spec.entrypoint!r} is not defined in spec.templates",
                )
            )
    elif spec.entrypoint and spec.entrypoint not in names:
        findings.append(
            Finding(
                f"{prefix}.entrypoint",
                f"entrypoint template {spec.entrypoint!r} is not defined in spec.templates",
            )
        )
    if spec.on_exit and spec.on_exit not in names:
        findings.append(Finding(f"{prefix}.onExit", f"onExit template {spec.on_exit!r} is not defined"))
    for i, tmpl in enumerate(templates):
        for path, call in tmpl.calls():
            where = f"{prefix}.templates.{i}.{path}"
            if call.template is None and call.template_ref is None and call.inline is None:
                findings.append(Finding(where, f"step {call.name!r} names no template"))
            elif call.template is not None and call.template not in names:
                findings.append(
                    Finding(
                        f"{where}.template",
                        f"step {call.name!r} references unknown template {call.template!r}",
                    )
                )
            if call.on_exit and call.on_exit not in names:
                findings.append(Finding(f"{where}.onExit", f"unknown onExit template {call.on_exit!r}"))
            given = sum(x is not None for x in (call.with_items, call.with_param, call.with_sequence))
            if given > 1:
                findings.append(Finding(where, "only one of withItems, withParam, withSequence may be set"))
        if tmpl.steps is not None:
            for gi, group in enumerate(tmpl.steps):
                seen: set[str] = set()
                for si, step in enumerate(group):
                    if step.name in seen:
                        findings.append(
                            Finding(
                                f"{prefix}.templates.{i}.steps.{gi}.{si}.name",
                                f"step name {step.name!r} is used twice",
                            )
                        )
                    seen.add(step.name)
        if tmpl.dag is not None:
            task_names = [t.name for t in tmpl.dag.tasks]
            if len(set(task_names)) != len(task_names):
                findings.append(Finding(f"{prefix}.templates.{i}.dag.tasks", "task names must be unique"))
            for ti, task in enumerate(tmpl.dag.tasks):
                where = f"{prefix}.templates.{i}.dag.tasks.{ti}"
                if task.dependencies and task.depends:
                    findings.append(Finding(where, "use either dependencies or depends, not both"))
                deps = list(task.dependencies or [])
                if task.depends:
                    try:
                        deps += depends_names(task.depends)
                    except ValueError as exc:
                        findings.append(Finding(f"{where}.depends", str(exc)))
                for dep in deps:
                    if dep not in task_names:
                        findings.append(Finding(where, f"task {task.name!r} depends on unknown task {dep!r}"))
            if tmpl.dag.target and "{{" not in tmpl.dag.target:
                for target in tmpl.dag.target.split():
                    if target not in task_names:
                        findings.append(Finding(f"{prefix}.templates.{i}.dag.target", f"unknown target {target!r}"))
            cycle = _dag_cycle(tmpl.dag.tasks)
            if cycle:
                findings.append(Finding(f"{prefix}.templates.{i}.dag", f"dependency cycle: {' -> '.join(cycle)}"))
    return findings


class Workflow(Manifest):
    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec = Field(default_factory=WorkflowSpec)
    status: dict[str, Any] | None = None

    def check(self) -> list[Finding]:
        return check_spec(self.spec)


class WorkflowTemplate(Manifest):
    kind: Literal["WorkflowTemplate"] = "WorkflowTemplate"
    spec: WorkflowSpec = Field(default_factory=WorkflowSpec)

    def check(self) -> list[Finding]:
        return check_spec(self.spec, need_entrypoint=False)


class ClusterWorkflowTemplate(Manifest):
    kind: Literal["ClusterWorkflowTemplate"] = "ClusterWorkflowTemplate"
    spec: WorkflowSpec = Field(default_factory=WorkflowSpec)

    def check(self) -> list[Finding]:
        return check_spec(self.spec, need_entrypoint=False)


class StopStrategy(ArgoModel):
    expression: str | None = None
    condition: str | None = None


class CronWorkflowSpec(ArgoModel):
    """Argo's CronWorkflowSpec; ``schedule`` (singular, legacy) is accepted as well as ``schedules``."""

    workflow_spec: WorkflowSpec = Field(default_factory=WorkflowSpec)
    schedule: str | None = None
    schedules: list[str] | None = None
    timezone: str | None = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] | None = None
    suspend: bool | None = None
    starting_deadline_seconds: int | None = None
    successful_jobs_history_limit: int | None = None
    failed_jobs_history_limit: int | None = None
    workflow_metadata: dict[str, Any] | None = None
    when: str | None = None
    stop_strategy: StopStrategy | None = None

    def all_schedules(self) -> list[str]:
        """The schedules, legacy ``schedule`` first."""
        found = [self.schedule] if self.schedule else []
        return found + [s for s in self.schedules or [] if s]


CRON_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def timezone_problem(name: str | None) -> str | None:
    """Why ``name`` is not a usable IANA timezone, or None (empty means the default)."""
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {name!r}: use an IANA name such as Europe/Paris"
    return None


def schedule_problem(text: str) -> str | None:
    """Why a CronWorkflow schedule would be rejected (robfig/cron's standard syntax), or None."""
    raw = text.strip()
    if raw.startswith(("CRON_TZ=", "TZ=")):
        prefix, _, raw = raw.partition(" ")
        problem = timezone_problem(prefix.split("=", 1)[1])
        if problem:
            return problem
        raw = raw.strip()
    if raw.startswith("@every"):
        rest = raw[len("@every") :].strip()
        if not re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", rest):
            return f"invalid schedule {text!r}: @every needs a duration such as 1h30m"
        return None
    expression = CRON_DESCRIPTORS.get(raw, raw)
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        return f"invalid schedule {text!r}: use 5 cron fields (minute hour day month weekday)"
    return None


class CronWorkflow(Manifest):
    kind: Literal["CronWorkflow"] = "CronWorkflow"
    spec: CronWorkflowSpec = Field(default_factory=CronWorkflowSpec)
    status: dict[str, Any] | None = None

    def check(self) -> list[Finding]:
        findings = check_spec(self.spec.workflow_spec, prefix="spec.workflowSpec")
        if not self.spec.all_schedules():
            findings.append(Finding("spec.schedules", "at least one schedule is required"))
        for index, text in enumerate(self.spec.all_schedules()):
            problem = schedule_problem(text)
            if problem:
                where = "spec.schedule" if self.spec.schedule and index == 0 else "spec.schedules"
                findings.append(Finding(where, problem))
        problem = timezone_problem(self.spec.timezone)
        if problem:
            findings.append(Finding("spec.timezone", problem))
        return findings


WorkflowStep.model_rebuild()
DAGTask.model_rebuild()
