"""Sensor checks that need the expression languages (the models layer cannot import them):
Go templates (``dataTemplate``, ``contextTemplate``, data filter ``template``), govaluate
``exprs``, gjson paths, jq programs and Lua scripts.

:func:`sensor_findings` returns :class:`eventbridge.models.base.Finding` entries with Argo field
paths; lint adds them to :meth:`Sensor.check`'s findings.
"""

from __future__ import annotations

from eventbridge.errors import ExprError
from eventbridge.expr.gotemplate import check_template
from eventbridge.expr.paths import check_path
from eventbridge.models.base import Finding
from eventbridge.models.sensor import Sensor, Trigger, TriggerParameter
from eventbridge.sensor import govaluate
from eventbridge.sensor.scripting import check_jq, check_lua


def _parameters(parameters: list[TriggerParameter] | None, path: str) -> list[Finding]:
    findings: list[Finding] = []
    for index, parameter in enumerate(parameters or []):
        source = parameter.src
        if source is None:
            continue
        here = f"{path}.{index}.src"
        for field, text in (("dataTemplate", source.data_template), ("contextTemplate", source.context_template)):
            if text and (problem := check_template(text)):
                findings.append(Finding(f"{here}.{field}", problem))
        for field, key in (("dataKey", source.data_key), ("contextKey", source.context_key)):
            if key and (problem := check_path(key)):
                findings.append(Finding(f"{here}.{field}", problem))
    return findings


def _trigger(trigger: Trigger, path: str) -> list[Finding]:
    findings = _parameters(trigger.parameters, f"{path}.parameters")
    template = trigger.template
    if template is not None:
        for key in ("argo_workflow", "k8s", "http", "kafka"):
            spec = getattr(template, key)
            if spec is None:
                continue
            alias = {"argo_workflow": "argoWorkflow"}.get(key, key)
            findings += _parameters(getattr(spec, "parameters", None), f"{path}.template.{alias}.parameters")
            findings += _parameters(getattr(spec, "payload", None), f"{path}.template.{alias}.payload")
    if trigger.dlq_trigger is not None:
        findings += _trigger(trigger.dlq_trigger, f"{path}.dlqTrigger")
    return findings


def sensor_findings(sensor: Sensor) -> list[Finding]:
    """Syntax problems in the sensor's templates, expressions, paths, jq programs and Lua scripts."""
    findings: list[Finding] = []
    for index, dependency in enumerate(sensor.spec.dependencies):
        path = f"spec.dependencies.{index}"
        filters = dependency.filters
        if filters is not None:
            for number, data_filter in enumerate(filters.data or []):
                here = f"{path}.filters.data.{number}"
                if data_filter.path and (problem := check_path(data_filter.path)):
                    findings.append(Finding(f"{here}.path", problem))
                if data_filter.template and (problem := check_template(data_filter.template)):
                    findings.append(Finding(f"{here}.template", problem))
            for number, expr_filter in enumerate(filters.exprs or []):
                here = f"{path}.filters.exprs.{number}"
                if expr_filter.expr.strip():
                    try:
                        govaluate.parse(expr_filter.expr)
                    except ExprError as err:
                        findings.append(Finding(f"{here}.expr", str(err)))
                for field_index, payload_field in enumerate(expr_filter.fields):
                    if payload_field.path and (problem := check_path(payload_field.path)):
                        findings.append(Finding(f"{here}.fields.{field_index}.path", problem))
            if filters.script and (problem := check_lua(filters.script)):
                findings.append(Finding(f"{path}.filters.script", f"Lua: {problem}"))
        transform = dependency.transform
        if transform is not None:
            if transform.jq and (problem := check_jq(transform.jq)):
                findings.append(Finding(f"{path}.transform.jq", problem))
            if transform.script and (problem := check_lua(transform.script)):
                findings.append(Finding(f"{path}.transform.script", f"Lua: {problem}"))
            if transform.jq and transform.script:
                findings.append(Finding(f"{path}.transform", "both jq and script are set: only jq runs", "warning"))
    for index, trigger in enumerate(sensor.spec.triggers):
        findings += _trigger(trigger, f"spec.triggers.{index}")
    return findings


__all__ = ["sensor_findings"]
