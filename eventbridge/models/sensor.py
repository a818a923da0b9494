"""Argo Events Sensor (``argoproj.io/v1alpha1``, kind ``Sensor``) with Argo's field names.

The shapes follow Argo's ``sensor_types.go``. Fields eventbridge does not implement yet are
declared with :func:`unsupported` so that lint warns instead of silently ignoring them.
:meth:`Sensor.check` reports semantic problems (duplicate names, unknown dependencies, bad
regular expressions...) with paths such as ``spec.dependencies.0.filters.data.1.value.0``.

This module also holds the tiny parser of trigger ``conditions`` (``dep-a && (b || c)``): lint
needs it to find unknown dependency names, and the sensor engine evaluates the same tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from eventbridge.models.base import ArgoModel, Finding, Manifest, unsupported


def _go_scalar_text(value: Any) -> Any:
    """Accept YAML scalars where Argo has a string (``value: [50]`` -> ``"50"``, ``true`` -> ``"true"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


GoString = Annotated[str, BeforeValidator(_go_scalar_text)]


# --------------------------------------------------------------------------------------------
# Shared sub-objects
# --------------------------------------------------------------------------------------------


class Backoff(ArgoModel):
    """Argo's Backoff: ``duration`` (Go duration string like ``1s`` or integer nanoseconds),
    ``factor`` (multiplier per step), ``jitter`` (fraction of random extra wait), ``steps``."""

    duration: int | str | None = None
    factor: float | None = None
    jitter: float | None = None
    steps: int | None = None


class SecretKeySelector(ArgoModel):
    """A ``{name, key}`` reference to a Secret (or ConfigMap) key."""

    name: str | None = None
    key: str | None = None
    optional: bool | None = None


# --------------------------------------------------------------------------------------------
# Dependencies and filters
# --------------------------------------------------------------------------------------------


class EventContext(ArgoModel):
    """CloudEvents context attributes; as a ``context`` filter every non-empty one must match."""

    id: str | None = None
    source: str | None = None
    specversion: str | None = None
    type: str | None = None
    datacontenttype: str | None = None
    subject: str | None = None
    time: str | None = None


class TimeFilter(ArgoModel):
    """Window ``[start, stop)`` in ``hh:mm:ss``; wraps past midnight when stop < start."""

    start: str = ""
    stop: str = ""
    timezone: str | None = None


class DataFilter(ArgoModel):
    """Argo's data filter: gjson ``path``, ``type`` (string/number/bool), ``value[]`` (OR'ed),
    ``comparator`` (``=`` default, ``!=``, ``>``, ``>=``, ``<``, ``<=``)."""

    path: str = ""
    type: str = ""
    value: list[GoString] = Field(default_factory=list)
    comparator: str | None = None
    #: Go text/template applied to the value (as a string, ``.Input``) before comparing
    template: str | None = None


class PayloadField(ArgoModel):
    """Binds the gjson ``path`` to the variable ``name`` of an ``exprs`` filter."""

    path: str = ""
    name: str = ""


class ExprFilter(ArgoModel):
    """A govaluate boolean ``expr`` over variables bound by ``fields``."""

    expr: str = ""
    fields: list[PayloadField] = Field(default_factory=list)


class EventDependencyFilter(ArgoModel):
    time: TimeFilter | None = None
    context: EventContext | None = None
    data: list[DataFilter] | None = None
    exprs: list[ExprFilter] | None = None
    data_logical_operator: str | None = None
    expr_logical_operator: str | None = None
    #: Lua filter (sandboxed); passes when it returns true
    script: str | None = None


class EventDependencyTransformer(ArgoModel):
    """Replaces the event data before filtering: ``jq`` (first output, an object) or Lua ``script``."""

    jq: str | None = None
    script: str | None = None


class EventDependency(ArgoModel):
    """An event the sensor waits for: ``source == eventSourceName`` and ``subject == eventName``."""

    name: str = ""
    event_source_name: str = ""
    event_name: str = ""
    filters: EventDependencyFilter | None = None
    transform: EventDependencyTransformer | None = None
    filters_logical_operator: str | None = None


# --------------------------------------------------------------------------------------------
# Triggers
# --------------------------------------------------------------------------------------------


class TriggerParameterSource(ArgoModel):
    """Where a parameter's value comes from (see :mod:`eventbridge.sensor.params`)."""

    dependency_name: str = ""
    context_key: str | None = None
    context_template: str | None = None
    data_key: str | None = None
    data_template: str | None = None
    value: GoString | None = None
    use_raw_data: bool | None = None


class TriggerParameter(ArgoModel):
    """``src`` -> ``dest`` (sjson path, ``-1`` appends) with ``operation`` overwrite/append/prepend."""

    src: TriggerParameterSource | None = None
    dest: str = ""
    operation: str | None = None


class FileArtifact(ArgoModel):
    """``source.file``: a YAML/JSON file read when the trigger fires."""

    path: str = ""


class URLArtifact(ArgoModel):
    """``source.url``: a YAML/JSON document fetched (GET) when the trigger fires."""

    path: str = ""
    verify_cert: bool | None = None


class ArtifactLocation(ArgoModel):
    """Where a trigger's resource comes from: ``resource`` (inline object), ``inline`` (YAML or
    JSON text), ``file``, ``url`` or ``configmap`` (a key of a ConfigMap)."""

    resource: dict[str, Any] | None = None
    inline: str | None = None
    file: FileArtifact | None = None
    url: URLArtifact | None = None
    configmap: SecretKeySelector | None = None
    git: Any = unsupported("trigger source 'git' is not supported yet")
    s3: Any = unsupported("trigger source 's3' is not supported yet")


ARGO_WORKFLOW_OPERATIONS = (
    "submit",
    "submit-from",
    "resubmit",
    "retry",
    "resume",
    "suspend",
    "terminate",
    "stop",
)
SUPPORTED_ARGO_WORKFLOW_OPERATIONS = ARGO_WORKFLOW_OPERATIONS


class ArgoWorkflowTrigger(ArgoModel):
    """Creates (``submit``, the default) an Argo Workflow from ``source``; ``parameters`` are
    applied to the resource before it is created."""

    source: ArtifactLocation | None = None
    operation: str | None = None
    parameters: list[TriggerParameter] | None = None
    args: list[str] | None = unsupported("argo CLI args have no meaning without the argo CLI; they are ignored")


class ClientTLS(ArgoModel):
    """Argo's TLSConfig for trigger clients: CA, client certificate and key from Secrets."""

    ca_cert_secret: SecretKeySelector | None = None
    client_cert_secret: SecretKeySelector | None = None
    client_key_secret: SecretKeySelector | None = None
    insecure_skip_verify: bool | None = None


class BasicAuthSecrets(ArgoModel):
    username: SecretKeySelector | None = None
    password: SecretKeySelector | None = None


class ValueFromSource(ArgoModel):
    secret_key_ref: SecretKeySelector | None = None
    config_map_key_ref: SecretKeySelector | None = None


class SecureHeader(ArgoModel):
    """A header whose value comes from a Secret or ConfigMap key (never logged)."""

    name: str = ""
    value_from: ValueFromSource | None = None


class HTTPTrigger(ArgoModel):
    """Sends an HTTP request: ``payload`` parameters build the JSON body (Argo's ConstructPayload),
    ``parameters`` change this object (e.g. the ``url``) before the request."""

    url: str = ""
    method: str | None = None
    payload: list[TriggerParameter] | None = None
    parameters: list[TriggerParameter] | None = None
    headers: dict[str, str] | None = None
    secure_headers: list[SecureHeader] | None = None
    dynamic_headers: list[TriggerParameter] | None = None
    timeout: int | None = None
    basic_auth: BasicAuthSecrets | None = None
    tls: ClientTLS | None = None
    host: str | None = None


class KafkaTrigger(ArgoModel):
    """Produces one record: ``payload`` parameters build the value, ``partitioningKey`` is the key."""

    url: str = ""
    topic: str = ""
    partition: int | None = None
    parameters: list[TriggerParameter] | None = None
    payload: list[TriggerParameter] | None = None
    partitioning_key: str | None = None
    headers: dict[str, str] | None = None
    secure_headers: list[SecureHeader] | None = None
    required_acks: int | None = None
    compress: bool | None = None
    flush_frequency: int | None = None
    version: str | None = None
    tls: ClientTLS | None = None
    sasl: Any = unsupported("SASL for the kafka trigger is not supported yet")
    schema_registry: Any = unsupported("schemaRegistry (Avro) for the kafka trigger is not supported yet")


class StandardK8STrigger(ArgoModel):
    """Creates, updates, patches or deletes the ``source`` object (embedded mode: argoproj kinds in
    the Store)."""

    source: ArtifactLocation | None = None
    operation: str | None = None
    parameters: list[TriggerParameter] | None = None
    patch_strategy: str | None = None
    live_object: bool | None = None


class LogTrigger(ArgoModel):
    """Prints the events that fired the trigger; ``intervalSeconds`` throttles the output."""

    interval_seconds: int | None = None


class ConditionsResetByTime(ArgoModel):
    cron: str = ""
    timezone: str | None = None


class ConditionsResetCriteria(ArgoModel):
    by_time: ConditionsResetByTime | None = None


#: Argo's trigger type keys, as found in ``TriggerTemplate``.
TRIGGER_TYPE_KEYS = (
    "k8s",
    "argoWorkflow",
    "http",
    "awsLambda",
    "custom",
    "kafka",
    "nats",
    "slack",
    "openWhisk",
    "log",
    "azureEventHubs",
    "pulsar",
    "azureServiceBus",
    "email",
)


class TriggerTemplate(ArgoModel):
    """Argo's TriggerTemplate: ``name``, ``conditions`` and exactly one trigger type."""

    name: str = ""
    conditions: str | None = None
    #: clears the held events of ``&&`` conditions at cron times
    conditions_reset: list[ConditionsResetCriteria] | None = None
    argo_workflow: ArgoWorkflowTrigger | None = None
    log: LogTrigger | None = None
    k8s: StandardK8STrigger | None = None
    http: HTTPTrigger | None = None
    aws_lambda: Any = unsupported("the awsLambda trigger is not supported yet")
    custom: Any = unsupported("the custom trigger is not supported yet")
    kafka: KafkaTrigger | None = None
    nats: Any = unsupported("the nats trigger is not supported yet")
    slack: Any = unsupported("the slack trigger is not supported yet")
    open_whisk: Any = unsupported("the openWhisk trigger is not supported yet")
    azure_event_hubs: Any = unsupported("the azureEventHubs trigger is not supported yet")
    pulsar: Any = unsupported("the pulsar trigger is not supported yet")
    azure_service_bus: Any = unsupported("the azureServiceBus trigger is not supported yet")
    email: Any = unsupported("the email trigger is not supported yet")

    def type_keys(self) -> list[str]:
        """The Argo keys of the trigger types set in this template (normally exactly one)."""
        dumped = self.model_dump(by_alias=True, exclude_none=True)
        return [key for key in TRIGGER_TYPE_KEYS if key in dumped]


class K8SResourcePolicy(ArgoModel):
    labels: dict[str, str] | None = None
    backoff: Backoff | None = None
    error_on_backoff_timeout: bool | None = None


class StatusPolicy(ArgoModel):
    allow: list[int] | None = None


class TriggerPolicy(ArgoModel):
    k8s: K8SResourcePolicy | None = None
    status: StatusPolicy | None = None


class RateLimit(ArgoModel):
    """At most ``requestsPerUnit`` executions per ``unit`` (Second, Minute, Hour); delays, never drops."""

    unit: str | None = None
    requests_per_unit: int | None = None


class Debounce(ArgoModel):
    """eventbridge extension (not Argo's): coalesce the firings of a trigger within ``window`` (a Go
    duration such as ``30s``; an integer is nanoseconds) into one firing with the latest events.

    The first firing opens the window; firings inside it replace the events; when the window
    closes the trigger runs once. Coalesced events are acknowledged; the latest ones are
    acknowledged after the firing ran."""

    window: int | str = ""


class Trigger(ArgoModel):
    template: TriggerTemplate | None = None
    parameters: list[TriggerParameter] | None = None
    policy: TriggerPolicy | None = None
    retry_strategy: Backoff | None = None
    rate_limit: RateLimit | None = None
    at_least_once: bool | None = None
    #: runs with the same events after the last retry of this trigger failed
    dlq_trigger: Trigger | None = None
    #: eventbridge extension, see :class:`Debounce` (the ``eventbridge`` prefix cannot collide with Argo)
    eventbridge_debounce: Debounce | None = None

    @property
    def name(self) -> str:
        return self.template.name if self.template else ""


class SensorSpec(ArgoModel):
    """Argo's SensorSpec."""

    dependencies: list[EventDependency] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)
    template: dict[str, Any] | None = None
    event_bus_name: str | None = None
    replicas: int | None = None
    revision_history_limit: int | None = None
    logging_fields: dict[str, str] | None = None
    error_on_failed_round: bool | None = None


class Sensor(Manifest):
    kind: Literal["Sensor"] = "Sensor"
    spec: SensorSpec = Field(default_factory=SensorSpec)
    status: dict[str, Any] | None = None

    def check(self) -> list[Finding]:
        return _check_sensor(self)


# --------------------------------------------------------------------------------------------
# Trigger conditions: `dep-a && (dep-b || !dep-c)`
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConditionName:
    name: str


@dataclass(frozen=True, slots=True)
class ConditionNot:
    operand: ConditionNode


@dataclass(frozen=True, slots=True)
class ConditionBinary:
    operator: Literal["&&", "||"]
    left: ConditionNode
    right: ConditionNode


ConditionNode = ConditionName | ConditionNot | ConditionBinary

_CONDITION_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|([A-Za-z0-9_][A-Za-z0-9_\-.:]*))")


class ConditionSyntaxError(ValueError):
    """A trigger ``conditions`` expression could not be parsed."""


def parse_conditions(text: str) -> ConditionNode:
    """Parse a trigger ``conditions`` expression (``&&``, ``||``, ``!``, parentheses, names).

    Dependency names may contain ``-`` (Argo escapes it for govaluate). ``&&`` binds tighter
    than ``||``. Raises :class:`ConditionSyntaxError` with the column of the problem.
    """
    tokens: list[tuple[str, str, int]] = []
    position = 0
    stripped_end = len(text.rstrip())
    while position < stripped_end:
        match = _CONDITION_TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = position + len(text[position:]) - len(text[position:].lstrip()) + 1
            raise ConditionSyntaxError(f"unexpected character {text[column - 1]!r} at column {column}")
        operator, name = match.group(1), match.group(2)
        start = match.start(1) if operator else match.start(2)
        tokens.append(("op", operator, start) if operator else ("name", name, start))
        position = match.end()
    if not tokens:
        raise ConditionSyntaxError("empty conditions expression")
    index = 0

    def peek() -> tuple[str, str, int] | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> tuple[str, str, int]:
        nonlocal index
        token = tokens[index]
        index += 1
        return token

    def parse_or() -> ConditionNode:
        node = parse_and()
        while (token := peek()) is not None and token[:2] == ("op", "||"):
            take()
            node = ConditionBinary("||", node, parse_and())
        return node

    def parse_and() -> ConditionNode:
        node = parse_unary()
        while (token := peek()) is not None and token[:2] == ("op", "&&"):
            take()
            node = ConditionBinary("&&", node, parse_unary())
        return node

    def parse_unary() -> ConditionNode:
        token = peek()
        if token is None:
            raise ConditionSyntaxError("expression ends where a dependency name was expected")
        kind, value, column = take()
        if kind == "name":
            return ConditionName(value)
        if value == "!":
            return ConditionNot(parse_unary())
        if value == "(":
            node = parse_or()
            closing = peek()
            if closing is None or closing[:2] != ("op", ")"):
                raise ConditionSyntaxError(f"missing ')' for the '(' at column {column + 1}")
            take()
            return node
        raise ConditionSyntaxError(f"unexpected {value!r} at column {column + 1}")

    tree = parse_or()
    if index < len(tokens):
        raise ConditionSyntaxError(f"unexpected {tokens[index][1]!r} at column {tokens[index][2] + 1}")
    return tree


def condition_names(node: ConditionNode) -> list[str]:
    """The dependency names a conditions tree refers to, in order of appearance."""
    if isinstance(node, ConditionName):
        return [node.name]
    if isinstance(node, ConditionNot):
        return condition_names(node.operand)
    return condition_names(node.left) + condition_names(node.right)


def evaluate_conditions(node: ConditionNode, present: set[str] | frozenset[str]) -> bool:
    """True when the expression holds, each name being true iff its dependency has an event."""
    if isinstance(node, ConditionName):
        return node.name in present
    if isinstance(node, ConditionNot):
        return not evaluate_conditions(node.operand, present)
    if node.operator == "&&":
        return evaluate_conditions(node.left, present) and evaluate_conditions(node.right, present)
    return evaluate_conditions(node.left, present) or evaluate_conditions(node.right, present)


# --------------------------------------------------------------------------------------------
# Semantic checks
# --------------------------------------------------------------------------------------------

DATA_FILTER_TYPES = ("string", "number", "bool")
COMPARATORS = ("", "=", "!=", ">", ">=", "<", "<=")
LOGICAL_OPERATORS = ("", "and", "or")
PARAMETER_OPERATIONS = ("", "overwrite", "append", "prepend")
RATE_LIMIT_UNITS = ("Second", "Minute", "Hour")
_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}:\d{2}")
_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)
_GO_BOOL = ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")


def _check_sensor(sensor: Sensor) -> list[Finding]:
    findings: list[Finding] = []
    spec = sensor.spec
    dependency_names: set[str] = set()
    if not spec.dependencies:
        findings.append(Finding("spec.dependencies", "a sensor needs at least one dependency"))
    for index, dependency in enumerate(spec.dependencies):
        path = f"spec.dependencies.{index}"
        if not dependency.name:
            findings.append(Finding(f"{path}.name", "dependency name is required"))
        elif dependency.name in dependency_names:
            findings.append(Finding(f"{path}.name", f"duplicate dependency name {dependency.name!r}"))
        dependency_names.add(dependency.name)
        if not dependency.event_source_name:
            findings.append(
                Finding(
                    f"{path}.eventSourceName",
                    "eventSourceName is required: without it the dependency never receives an event",
                )
            )
        if not dependency.event_name:
            findings.append(
                Finding(
                    f"{path}.eventName",
                    "eventName is required: without it the dependency never receives an event",
                )
            )
        findings += _check_operator(dependency.filters_logical_operator, f"{path}.filtersLogicalOperator")
        if dependency.filters is not None:
            findings += _check_filters(dependency.filters, f"{path}.filters")

    trigger_names: set[str] = set()
    if not spec.triggers:
        findings.append(Finding("spec.triggers", "a sensor needs at least one trigger"))
    for index, trigger in enumerate(spec.triggers):
        findings += _check_trigger(trigger, f"spec.triggers.{index}", dependency_names, trigger_names)
    return findings


def _check_operator(value: str | None, path: str) -> list[Finding]:
    if (value or "") not in LOGICAL_OPERATORS:
        return [Finding(path, f"unknown logical operator {value!r}: use 'and' or 'or' (lower case)")]
    return []


def _check_filters(filters: EventDependencyFilter, path: str) -> list[Finding]:
    findings: list[Finding] = []
    findings += _check_operator(filters.data_logical_operator, f"{path}.dataLogicalOperator")
    findings += _check_operator(filters.expr_logical_operator, f"{path}.exprLogicalOperator")
    for index, data_filter in enumerate(filters.data or []):
        findings += _check_data_filter(data_filter, f"{path}.data.{index}")
    for index, expr_filter in enumerate(filters.exprs or []):
        here = f"{path}.exprs.{index}"
        if not expr_filter.expr.strip():
            findings.append(Finding(f"{here}.expr", "expr is empty"))
        for field_index, payload_field in enumerate(expr_filter.fields):
            if not payload_field.path:
                findings.append(Finding(f"{here}.fields.{field_index}.path", "path is required"))
            if not payload_field.name:
                findings.append(Finding(f"{here}.fields.{field_index}.name", "name is required"))
    if filters.time is not None:
        for key in ("start", "stop"):
            text = getattr(filters.time, key)
            if not _TIME_OF_DAY.fullmatch(text):
                findings.append(Finding(f"{path}.time.{key}", f"{text!r} is not a time of day: use hh:mm:ss"))
        if filters.time.timezone:
            findings += _check_timezone(filters.time.timezone, f"{path}.time.timezone")
    return findings


def _check_timezone(name: str, path: str) -> list[Finding]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return [Finding(path, f"unknown timezone {name!r}: use an IANA name such as Europe/Berlin")]
    return []


def _check_data_filter(data_filter: DataFilter, path: str) -> list[Finding]:
    findings: list[Finding] = []
    if not data_filter.path:
        findings.append(Finding(f"{path}.path", "path is required (a gjson path such as body.ref)"))
    if data_filter.type not in DATA_FILTER_TYPES:
        findings.append(Finding(f"{path}.type", f"unknown type {data_filter.type!r}: use string, number or bool"))
    comparator = data_filter.comparator or ""
    if comparator not in COMPARATORS:
        findings.append(Finding(f"{path}.comparator", f"unknown comparator {comparator!r}: use =, !=, >, >=, < or <="))
    elif data_filter.type == "string" and comparator not in ("", "=", "!="):
        findings.append(
            Finding(
                f"{path}.comparator",
                f"comparator {comparator!r} never matches a string filter: use = or !=",
            )
        )
    elif data_filter.type == "bool" and comparator not in ("", "="):
        findings.append(Finding(f"{path}.comparator", "the comparator is ignored for bool filters", "warning"))
    if not data_filter.value:
        findings.append(Finding(f"{path}.value", "value list is empty: give at least one value"))
    for index, value in enumerate(data_filter.value):
        here = f"{path}.value.{index}"
        if data_filter.type == "string":
            try:
                re.compile(value)
            except re.error as err:
                findings.append(Finding(here, f"invalid regular expression {value!r}: {err}"))
        elif data_filter.type == "number" and not _GO_FLOAT.fullmatch(value):
            findings.append(Finding(here, f"{value!r} is not a number"))
        elif data_filter.type == "bool" and value not in _GO_BOOL:
            findings.append(Finding(here, f"{value!r} is not a bool: use true or false"))
    if data_filter.type == "number" and comparator == "!=" and len(data_filter.value) > 1:
        findings.append(
            Finding(
                f"{path}.value",
                "'!=' with several values matches if the event differs from ANY of them, which is nearly always true",
                "warning",
            )
        )
    return findings


def _check_parameters(
    parameters: list[TriggerParameter] | None, path: str, dependency_names: set[str], *, dest_required: bool = True
) -> list[Finding]:
    findings: list[Finding] = []
    for index, parameter in enumerate(parameters or []):
        here = f"{path}.{index}"
        if parameter.src is None:
            findings.append(Finding(f"{here}.src", "src is required"))
        elif parameter.src.dependency_name not in dependency_names:
            findings.append(
                Finding(
                    f"{here}.src.dependencyName",
                    f"unknown dependency {parameter.src.dependency_name!r}"
                    f" (known: {', '.join(sorted(dependency_names)) or 'none'})",
                )
            )
        if not parameter.dest and dest_required:
            findings.append(Finding(f"{here}.dest", "dest is required"))
        if (parameter.operation or "") not in PARAMETER_OPERATIONS:
            findings.append(
                Finding(
                    f"{here}.operation",
                    f"unknown operation {parameter.operation!r}: use overwrite, append or prepend",
                )
            )
    return findings


def _check_trigger(trigger: Trigger, path: str, dependency_names: set[str], seen: set[str]) -> list[Finding]:
    findings: list[Finding] = []
    template = trigger.template
    if template is None:
        return [Finding(f"{path}.template", "template is required")]
    if not template.name:
        findings.append(Finding(f"{path}.template.name", "trigger name is required"))
    elif template.name in seen:
        findings.append(Finding(f"{path}.template.name", f"duplicate trigger name {template.name!r}"))
    seen.add(template.name)
    if template.conditions:
        try:
            names = condition_names(parse_conditions(template.conditions))
        except ConditionSyntaxError as err:
            findings.append(Finding(f"{path}.template.conditions", str(err)))
        else:
            for name in dict.fromkeys(names):
                if name not in dependency_names:
                    findings.append(
                        Finding(f"{path}.template.conditions", f"unknown dependency {name!r} in conditions")
                    )
    keys = template.type_keys()
    if not keys:
        findings.append(Finding(f"{path}.template", f"no trigger type set: add one of {', '.join(TRIGGER_TYPE_KEYS)}"))
    elif len(keys) > 1:
        findings.append(Finding(f"{path}.template", f"several trigger types set ({', '.join(keys)}): keep one"))
    findings += _check_parameters(trigger.parameters, f"{path}.parameters", dependency_names)
    workflow = template.argo_workflow
    if workflow is not None:
        here = f"{path}.template.argoWorkflow"
        operation = workflow.operation or "submit"
        if operation not in ARGO_WORKFLOW_OPERATIONS:
            findings.append(Finding(f"{here}.operation", f"unknown operation {operation!r}"))
        elif operation not in SUPPORTED_ARGO_WORKFLOW_OPERATIONS:
            findings.append(Finding(f"{here}.operation", f"operation {operation!r} is not supported yet", "warning"))
        source = workflow.source
        if source is None or not any(
            getattr(source, key) is not None for key in ("resource", "inline", "file", "url", "configmap", "git", "s3")
        ):
            findings.append(Finding(f"{here}.source", "source is required: set source.resource"))
        findings += _check_parameters(workflow.parameters, f"{here}.parameters", dependency_names)
    findings += _check_trigger_options(trigger, template, path, dependency_names)
    if trigger.rate_limit is not None:
        unit = trigger.rate_limit.unit or "Second"
        if unit not in RATE_LIMIT_UNITS:
            findings.append(Finding(f"{path}.rateLimit.unit", f"unknown unit {unit!r}: use Second, Minute or Hour"))
        if trigger.rate_limit.requests_per_unit is not None and trigger.rate_limit.requests_per_unit <= 0:
            findings.append(Finding(f"{path}.rateLimit.requestsPerUnit", "must be positive"))
    return findings


_GO_DURATION = re.compile(
    r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))*|0"
)
K8S_OPERATIONS = ("create", "update", "patch", "delete")


def _check_trigger_options(
    trigger: Trigger, template: TriggerTemplate, path: str, dependency_names: set[str]
) -> list[Finding]:
    """Checks of conditionsReset, debounce, dlqTrigger and the http/kafka/k8s trigger fields."""
    from croniter import croniter

    findings: list[Finding] = []
    for index, criteria in enumerate(template.conditions_reset or []):
        here = f"{path}.template.conditionsReset.{index}.byTime"
        if criteria.by_time is None:
            continue
        if not croniter.is_valid(criteria.by_time.cron) or len(criteria.by_time.cron.split()) != 5:
            findings.append(Finding(f"{here}.cron", f"{criteria.by_time.cron!r} is not a 5-field cron expression"))
        if criteria.by_time.timezone:
            findings += _check_timezone(criteria.by_time.timezone, f"{here}.timezone")
        if template.conditions and "&&" not in template.conditions:
            findings.append(
                Finding(
                    f"{path}.template.conditionsReset",
                    "conditionsReset has no effect: without '&&' no event is ever held",
                    "warning",
                )
            )
    debounce = trigger.eventbridge_debounce
    if debounce is not None:
        window = debounce.window
        if isinstance(window, str) and not _GO_DURATION.fullmatch(window.strip()):
            findings.append(Finding(f"{path}.eventbridgeDebounce.window", f"{window!r} is not a duration such as 30s"))
        elif isinstance(window, int) and window < 0:
            findings.append(Finding(f"{path}.eventbridgeDebounce.window", "must not be negative"))
    if trigger.dlq_trigger is not None:
        dlq_seen: set[str] = set()
        for finding in _check_trigger(trigger.dlq_trigger, f"{path}.dlqTrigger", dependency_names, dlq_seen):
            findings.append(finding)
    if trigger.policy is not None and trigger.policy.status is not None and template.http is None:
        findings.append(Finding(f"{path}.policy.status", "policy.status only applies to http triggers", "warning"))
    if template.http is not None:
        here = f"{path}.template.http"
        if not template.http.url and not template.http.parameters:
            findings.append(Finding(f"{here}.url", "url is required"))
        findings += _check_parameters(template.http.payload, f"{here}.payload", dependency_names, dest_required=False)
        findings += _check_parameters(template.http.parameters, f"{here}.parameters", dependency_names)
    if template.kafka is not None:
        here = f"{path}.template.kafka"
        if not template.kafka.url:
            findings.append(Finding(f"{here}.url", "url is required (comma-separated brokers)"))
        if not template.kafka.topic:
            findings.append(Finding(f"{here}.topic", "topic is required"))
        if template.kafka.payload is None:
            findings.append(Finding(f"{here}.payload", "payload parameters are required"))
        findings += _check_parameters(template.kafka.payload, f"{here}.payload", dependency_names, dest_required=False)
        findings += _check_parameters(template.kafka.parameters, f"{here}.parameters", dependency_names)
    if template.k8s is not None:
        here = f"{path}.template.k8s"
        if (template.k8s.operation or "create") not in K8S_OPERATIONS:
            findings.append(
                Finding(
                    f"{here}.operation",
                    f"unknown operation {template.k8s.operation!r}: use create, update, patch or delete",
                )
            )
        source = template.k8s.source
        if source is None or not any(
            getattr(source, key) is not None for key in ("resource", "inline", "file", "url", "configmap", "git", "s3")
        ):
            findings.append(Finding(f"{here}.source", "source is required: set source.resource"))
        findings += _check_parameters(template.k8s.parameters, f"{here}.parameters", dependency_names)
    return findings
