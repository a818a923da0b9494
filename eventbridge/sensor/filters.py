"""Dependency filters with Argo Events' exact semantics (``pkg/sensors/dependencies/filter.go``).

Every evaluation returns a :class:`FilterResult`: whether the event passed, a human reason
(``data filter 0: body.ref: 'refs/heads/dev' does not match 'main'``) for traces and logs,
and the error text if a filter could not be evaluated.

Semantics, in Argo's evaluation order ``exprs``, ``data``, ``context``, ``time``, ``script``:

* ``data``: ``path`` is a gjson path; a missing path is an error. ``value[]`` entries are
  OR'ed. ``string``: each value is an unanchored regular expression *search*; ``=`` (default)
  passes when it matches, ``!=`` when it does not, other comparators never pass. ``number``:
  float comparison, passes when ANY value satisfies the comparator. ``bool``: Go's ParseBool
  of each value equals the event value; the comparator is ignored. ``dataLogicalOperator``
  ``and`` (default): every filter must pass and the first error fails; ``or``: the first
  passing filter wins, errors are collected.
* ``exprs``: govaluate expressions over ``fields`` bound by gjson paths; a result other than
  ``true`` does not pass. ``exprLogicalOperator`` behaves like ``dataLogicalOperator``.
* ``context``: every non-empty attribute of ``type``, ``subject``, ``source``,
  ``datacontenttype`` must match exactly.
* ``time``: the event's time falls in ``[start, stop)`` (wrapping past midnight when
  ``stop < start``), in ``timezone`` (UTC by default).
* ``filtersLogicalOperator`` ``and`` (default): every kind must pass, the first error fails.
  ``or``: passes when any *configured* kind passes; but, as in Argo's ``Filter``, any error
  reported by a kind discards the event.
* ``script``: a sandboxed Lua filter (:mod:`.scripting`); it passes when the script returns
  ``true``; a script error discards the event whatever the operator (as Argo).
* ``transform`` (``jq`` or Lua ``script``) runs before the filters and replaces the event data;
  a transform error drops the event for that dependency.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventbridge.errors import ExprError
from eventbridge.events import Event
from eventbridge.expr.gotemplate import render_input
from eventbridge.expr.paths import (
    go_bool,
    go_float,
    go_string,
    lookup,
    parse_go_bool,
    parse_go_float,
)
from eventbridge.expr.regex import compile_user_regex, found_in
from eventbridge.models.sensor import (
    DataFilter,
    EventContext,
    EventDependency,
    EventDependencyFilter,
    ExprFilter,
    TimeFilter,
)
from eventbridge.sensor import govaluate
from eventbridge.sensor.scripting import jq_transform, script_filter, script_transform

#: Compiled once per distinct pattern/expression (a sensor's filters are fixed): the filter chain
#: must stay cheap per event.
_regex = compile_user_regex  # RE2 semantics, linear time (cached)
_expression = functools.lru_cache(maxsize=2048)(govaluate.parse)


@dataclass(slots=True)  # not frozen: frozen dataclasses are slow to build, and these are per event
class FilterCheck:
    """The result of one configured filter kind (``data``, ``exprs``, ``context``, ``time``,
    ``script``, ``transform``), for traces and ``sensor test``."""

    kind: str
    passed: bool
    reason: str
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "passed": self.passed, "reason": self.reason}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(slots=True)  # treated as immutable; not frozen for speed (the filter chain is hot)
class FilterResult:
    """Outcome of filtering one event: ``passed``, a human ``reason``, and ``error`` if any;
    ``checks`` has one entry per configured filter kind."""

    passed: bool
    reason: str
    error: str | None = None
    details: tuple[str, ...] = field(default=())
    checks: tuple[FilterCheck, ...] = field(default=())
    #: the event after ``transform`` (set by :func:`filter_dependency` when a transform ran)
    event: Event | None = None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# data filters
# ---------------------------------------------------------------------------------------------


def _compare_numbers(comparator: str, event_value: float, filter_value: float) -> bool:
    if comparator == ">=":
        return event_value >= filter_value
    if comparator == ">":
        return event_value > filter_value
    if comparator == "<":
        return event_value < filter_value
    if comparator == "<=":
        return event_value <= filter_value
    if comparator == "!=":
        return event_value != filter_value
    if comparator in ("", "="):
        return event_value == filter_value
    return False


class _FilterError(Exception):
    """Internal: one filter could not be evaluated (Argo returns an error for it)."""


def _one_data_filter(index: int, data_filter: DataFilter, data: object) -> tuple[bool, str]:
    """Evaluate one data filter: ``(passed, reason)``; raises _FilterError on errors."""
    label = f"data filter {index}: {data_filter.path}"
    try:
        found, value = lookup(data, data_filter.path)
    except ExprError as err:
        raise _FilterError(f"data filter {index}: {err}") from None
    if not found:
        raise _FilterError(f"data filter {index}: path '{data_filter.path}' does not exist")
    if not data_filter.value:
        raise _FilterError(f"data filter {index}: no values specified")
    if data_filter.template:
        try:
            value = render_input(data_filter.template, go_string(value))
        except ExprError as err:
            raise _FilterError(f"data filter {index}: template: {err}") from None
    comparator = data_filter.comparator or ""
    kind = data_filter.type
    if kind == "bool":
        event_bool = go_bool(value)
        for expected in data_filter.value:
            parsed = parse_go_bool(expected)
            if parsed is None:
                raise _FilterError(f"data filter {index}: {expected!r} is not a bool")
            if parsed == event_bool:
                return True, f"{label}: {str(event_bool).lower()} equals {expected!r}"
        return False, f"{label}: {str(event_bool).lower()} does not equal {_values(data_filter)}"
    if kind == "number":
        event_number = go_float(value)
        shown = go_string(value)
        for expected in data_filter.value:
            parsed_number = parse_go_float(expected)
            if parsed_number is None:
                raise _FilterError(f"data filter {index}: {expected!r} is not a number")
            if _compare_numbers(comparator, event_number, parsed_number):
                return True, f"{label}: {shown} {comparator or '='} {expected}"
        return False, f"{label}: {shown} is not {comparator or '='} {_values(data_filter)}"
    if kind == "string":
        text = go_string(value)
        for expected in data_filter.value:
            try:
                pattern = _regex(expected)
            except re.error as err:
                message = f"data filter {index}: invalid regular expression {expected!r}: {err}"
                raise _FilterError(message) from None
            matched = found_in(pattern, text)
            if comparator in ("", "=") and matched:
                return True, f"{label}: {_short(text)!r} matches {expected!r}"
            if comparator == "!=" and not matched:
                return True, f"{label}: {_short(text)!r} does not match {expected!r}"
        if comparator in ("", "="):
            return False, f"{label}: {_short(text)!r} does not match {_values(data_filter)}"
        if comparator == "!=":
            return False, f"{label}: {_short(text)!r} matches {_values(data_filter)}"
        return False, f"{label}: comparator {comparator!r} never matches a string"
    raise _FilterError(f"data filter {index}: unsupported JSON type '{kind}'")


def _values(data_filter: DataFilter) -> str:
    if len(data_filter.value) == 1:
        return repr(data_filter.value[0])
    return "any of " + ", ".join(repr(value) for value in data_filter.value)


def _combine(
    count: int,
    evaluate_one: Callable[[int], tuple[bool, str]],
    operator: str | None,
    kind: str,
) -> FilterResult:
    """Argo's loop shared by data and expr filters: AND stops at the first failure or error,
    OR stops at the first pass and collects errors."""
    use_or = operator == "or"
    reasons: list[str] = []
    errors: list[str] = []
    for index in range(count):
        try:
            passed, reason = evaluate_one(index)
        except _FilterError as err:
            if not use_or:
                return FilterResult(False, str(err), str(err), tuple(reasons))
            errors.append(str(err))
            continue
        if reason:
            reasons.append(reason)
        if use_or and passed:
            return FilterResult(True, reason, None, tuple(reasons))
        if not use_or and not passed:
            return FilterResult(False, reason, None, tuple(reasons))
    if use_or:
        if errors:
            message = f"{kind} filter errors [{' / '.join(errors)}]"
            return FilterResult(False, message, message, tuple(reasons))
        return FilterResult(False, f"no {kind} filter passed: " + "; ".join(reasons), None, tuple(reasons))
    return FilterResult(True, f"all {count} {kind} filters passed", None, tuple(reasons))


def filter_data(filters: list[DataFilter] | None, operator: str | None, data: object) -> FilterResult:
    """Apply ``data`` filters to decoded event data."""
    if not filters:
        return FilterResult(True, "no data filters")
    if data is None:
        return FilterResult(True, "event has no data")
    return _combine(len(filters), lambda index: _one_data_filter(index, filters[index], data), operator, "data")


# ---------------------------------------------------------------------------------------------
# expr filters
# ---------------------------------------------------------------------------------------------


def _one_expr_filter(index: int, expr_filter: ExprFilter, data: object) -> tuple[bool, str]:
    variables: dict[str, object] = {}
    for payload_field in expr_filter.fields:
        try:
            found, value = lookup(data, payload_field.path)
        except ExprError as err:
            raise _FilterError(f"expr filter {index}: {err}") from None
        if not found:
            raise _FilterError(f"expr filter {index}: path '{payload_field.path}' does not exist")
        variables[payload_field.name] = value
    if not variables:
        # Argo skips an expression without bound fields; under AND that counts as passing.
        return True, ""
    try:
        result = govaluate.evaluate(_expression(expr_filter.expr), variables)
    except ExprError as err:
        raise _FilterError(f"expr filter {index}: {expr_filter.expr!r}: {err}") from None
    if result is True:
        return True, f"expr filter {index}: {expr_filter.expr!r} is true"
    return False, f"expr filter {index}: {expr_filter.expr!r} is {govaluate.go_text(result)}"


def filter_exprs(filters: list[ExprFilter] | None, operator: str | None, data: object) -> FilterResult:
    """Apply ``exprs`` filters (govaluate) to decoded event data."""
    if filters is None:
        return FilterResult(True, "no expr filters")
    if data is None:
        return FilterResult(True, "event has no data")
    return _combine(len(filters), lambda index: _one_expr_filter(index, filters[index], data), operator, "expr")


# ---------------------------------------------------------------------------------------------
# context and time filters
# ---------------------------------------------------------------------------------------------


def filter_context(expected: EventContext | None, event: Event) -> FilterResult:
    """Every non-empty ``type``, ``subject``, ``source``, ``datacontenttype`` must match exactly."""
    if expected is None:
        return FilterResult(True, "no context filter")
    for key in ("type", "subject", "source", "datacontenttype"):
        wanted = getattr(expected, key)
        actual = getattr(event, key)
        if wanted and wanted != actual:
            return FilterResult(False, f"context filter: {key} is {actual!r}, not {wanted!r}")
    return FilterResult(True, "context filter matched")


_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})")


def _time_of_day(text: str, which: str) -> time:
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        raise _FilterError(f"time filter: {which} {text!r} is not a time of day (hh:mm:ss)")
    hour, minute, second = (int(part) for part in match.groups())
    if hour > 23 or minute > 59 or second > 59:
        raise _FilterError(f"time filter: {which} {text!r} is out of range")
    return time(hour, minute, second)


def _check_time(time_filter: TimeFilter, moment: datetime) -> FilterResult:
    try:
        zone = ZoneInfo(time_filter.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise _FilterError(f"time filter: invalid timezone '{time_filter.timezone}'") from None
    local = moment.astimezone(zone)
    start = datetime.combine(local.date(), _time_of_day(time_filter.start, "start"), zone)
    stop = datetime.combine(local.date(), _time_of_day(time_filter.stop, "stop"), zone)
    # [start, stop) of that day; when stop <= start the window wraps past midnight.
    inside = start <= local < stop if start < stop else (local >= start or local < stop)
    shown = local.strftime("%H:%M:%S")
    window = f"[{time_filter.start}, {time_filter.stop})"
    if inside:
        return FilterResult(True, f"time filter: {shown} is within {window}")
    return FilterResult(False, f"time filter: {shown} is outside {window}")


def filter_time(time_filter: TimeFilter | None, moment: datetime) -> FilterResult:
    """The event time lies in ``[start, stop)`` of the event's day in ``timezone``."""
    if time_filter is None:
        return FilterResult(True, "no time filter")
    try:
        return _check_time(time_filter, moment)
    except _FilterError as err:
        return FilterResult(False, str(err), str(err))


# ---------------------------------------------------------------------------------------------
# all filters of a dependency
# ---------------------------------------------------------------------------------------------


def filter_script(script: str | None, data: object) -> FilterResult:
    """Argo's Lua ``script`` filter (sandboxed, :mod:`.scripting`): passes when it returns ``true``."""
    if not script:
        return FilterResult(True, "no script filter")
    try:
        passed = script_filter(script, data)
    except ExprError as err:
        message = f"script filter: {err}"
        return FilterResult(False, message, message)
    if passed:
        return FilterResult(True, "script filter returned true")
    return FilterResult(False, "script filter did not return true")


def filter_event(filters: EventDependencyFilter | None, operator: str | None, event: Event) -> FilterResult:
    """Apply every configured filter kind and combine them with ``filtersLogicalOperator``."""
    if filters is None:
        return FilterResult(True, "no filters")
    use_or = operator == "or"
    # Every configured kind is evaluated (as Argo does), in Argo's order; unconfigured ones pass.
    results: list[tuple[str, FilterResult]] = []
    if filters.exprs is not None:
        results.append(("exprs", filter_exprs(filters.exprs, filters.expr_logical_operator, event.data)))
    if filters.data is not None:
        results.append(("data", filter_data(filters.data, filters.data_logical_operator, event.data)))
    if filters.context is not None:
        results.append(("context", filter_context(filters.context, event)))
    if filters.time is not None:
        results.append(("time", filter_time(filters.time, event.time)))
    if filters.script:
        script_result = filter_script(filters.script, event.data)
        results.append(("script", script_result))
        if script_result.error:
            # Argo returns a script error at once, whatever the operator
            checks = tuple(FilterCheck(kind, r.passed, r.reason, r.error) for kind, r in results)
            return FilterResult(False, script_result.reason, script_result.error, (), checks)
    checks = tuple(FilterCheck(kind, result.passed, result.reason, result.error) for kind, result in results)
    errors = [result.error for _, result in results if result.error]
    details = tuple(result.reason for _, result in results)
    if not use_or:
        for _, result in results:
            if result.error or not result.passed:
                return FilterResult(False, result.reason, result.error, details, checks)
        return FilterResult(True, "; ".join(details) or "no filters", None, details, checks)
    configured_passes = [result for _, result in results if result.passed]
    if errors:
        message = " / ".join(errors)
        return FilterResult(False, f"discarded due to filtering error: {message}", message, details, checks)
    if configured_passes:
        return FilterResult(True, configured_passes[0].reason, None, details, checks)
    return FilterResult(False, "no filter passed: " + "; ".join(details), None, details, checks)


def transform_event(dependency: EventDependency, event: Event) -> Event:
    """Argo's ``transform``: ``jq`` (first) or ``script`` replaces the event data; raises ExprError."""
    transform = dependency.transform
    if transform is None or not (transform.jq or transform.script):
        return event
    if transform.jq:
        data = jq_transform(transform.jq, event.data)
    else:
        data = script_transform(transform.script or "", event.data)
    return dataclasses.replace(event, data=data, datacontenttype="application/json")


def filter_dependency(dependency: EventDependency, event: Event) -> FilterResult:
    """Transform then filter, as Argo processes a dependency. ``result.event`` is the event the
    dependency keeps (transformed); a transform error drops the event."""
    try:
        transformed = transform_event(dependency, event)
    except ExprError as err:
        message = f"transform: {err}"
        check = FilterCheck("transform", False, message, message)
        return FilterResult(False, message, message, (), (check,))
    result = filter_event(dependency.filters, dependency.filters_logical_operator, transformed)
    if transformed is not event:
        check = FilterCheck("transform", True, "transformed the event data")
        result = dataclasses.replace(result, checks=(check, *result.checks), event=transformed)
    return result


__all__ = [
    "FilterCheck",
    "FilterResult",
    "filter_context",
    "filter_data",
    "filter_dependency",
    "filter_event",
    "filter_exprs",
    "filter_script",
    "filter_time",
    "transform_event",
]
