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

A dependency's filters are compiled once (:class:`DependencyFilter`): regular expressions,
expressions, numbers, booleans and time windows are parsed up front, in a way that keeps Argo's
per-event errors (a bad value is reported when the evaluation reaches it, as before). Filtering an
event then does only the per-event work: lookups, comparisons and the reasons. The ``filter_*``
functions compile and run in one call (for one-off use and tests).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
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
from eventbridge.expr.regex import UserPattern, compile_user_regex, found_in
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
    checks: tuple[FilterCheck, ...] = ()
    #: the event after ``transform`` (set by :class:`DependencyFilter` when a transform ran)
    event: Event | None = None


#: Parsed and compiled once per distinct expression (sensors reload, and the ``filter_*`` helpers
#: compile per call).
@functools.lru_cache(maxsize=2048)
def _expression(text: str) -> Callable[[Mapping[str, Any]], Any]:
    return govaluate.compile_tree(govaluate.parse(text))


#: One compiled data or expr filter: ``(passed, reason)`` for the event data, ``explain``: describe
#: a pass too (under AND a pass's reason is never shown, so it is not built); raises _FilterError.
_Check = Callable[[Any, bool], tuple[bool, str]]
#: The verdict of one filter kind: ``(passed, reason, error)``.
_Verdict = tuple[bool, str, str | None]


class _FilterError(Exception):
    """Internal: one filter could not be evaluated (Argo returns an error for it)."""


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _values(values: Sequence[str]) -> str:
    if len(values) == 1:
        return repr(values[0])
    return "any of " + ", ".join(repr(value) for value in values)


def _required(data: Any, path: str, where: str) -> Any:
    """The value at ``path``; a bad or missing path is the filter's error (``where``: "data filter 0")."""
    try:
        found, value = lookup(data, path)
    except ExprError as err:
        raise _FilterError(f"{where}: {err}") from None
    if not found:
        raise _FilterError(f"{where}: path '{path}' does not exist")
    return value


def _combine(checks: Sequence[_Check], use_or: bool, kind: str, all_passed: str, data: Any) -> _Verdict:
    """Argo's loop shared by data and expr filters: AND stops at the first failure or error,
    OR stops at the first pass and collects errors."""
    reasons: list[str] = []
    errors: list[str] = []
    for check in checks:
        try:
            passed, reason = check(data, use_or)
        except _FilterError as err:
            if not use_or:
                return False, str(err), str(err)
            errors.append(str(err))
            continue
        if use_or:
            if passed:
                return True, reason, None
            if reason:
                reasons.append(reason)
        elif not passed:
            return False, reason, None
    if not use_or:
        return True, all_passed, None
    if errors:
        message = f"{kind} filter errors [{' / '.join(errors)}]"
        return False, message, message
    return False, f"no {kind} filter passed: " + "; ".join(reasons), None


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


def _compile_data_filter(index: int, data_filter: DataFilter) -> _Check:
    """One data filter; its values are parsed now and their errors raised when reached."""
    path, template, kind = data_filter.path, data_filter.template, data_filter.type
    values = list(data_filter.value or [])
    comparator = data_filter.comparator or ""
    shown = comparator or "="
    where = f"data filter {index}"
    label = f"{where}: {path}"

    def text_of(value: Any) -> str:
        """The value as gjson's ``String()`` (a value JSON cannot write, e.g. an infinite float,
        fails this filter instead of the whole event)."""
        try:
            return go_string(value)
        except ExprError as err:
            raise _FilterError(f"{where}: {err}") from None

    def value_of(data: Any) -> Any:
        value = _required(data, path, where)
        if not values:
            raise _FilterError(f"data filter {index}: no values specified")
        if template:
            try:
                value = render_input(template, text_of(value))
            except ExprError as err:
                raise _FilterError(f"data filter {index}: template: {err}") from None
        return value

    if kind == "bool":
        bools = [(expected, parse_go_bool(expected)) for expected in values]

        def check_bool(data: Any, explain: bool) -> tuple[bool, str]:
            event_bool = go_bool(value_of(data))
            for expected, parsed in bools:
                if parsed is None:
                    raise _FilterError(f"data filter {index}: {expected!r} is not a bool")
                if parsed == event_bool:
                    return True, f"{label}: {str(event_bool).lower()} equals {expected!r}" if explain else ""
            return False, f"{label}: {str(event_bool).lower()} does not equal {_values(values)}"

        return check_bool
    if kind == "number":
        numbers = [(expected, parse_go_float(expected)) for expected in values]

        def check_number(data: Any, explain: bool) -> tuple[bool, str]:
            value = value_of(data)
            event_number, text = go_float(value), text_of(value)
            for expected, parsed in numbers:
                if parsed is None:
                    raise _FilterError(f"data filter {index}: {expected!r} is not a number")
                if _compare_numbers(comparator, event_number, parsed):
                    return True, f"{label}: {text} {shown} {expected}" if explain else ""
            return False, f"{label}: {text} is not {shown} {_values(values)}"

        return check_number
    if kind == "string":
        patterns: list[tuple[str, UserPattern | None, str]] = []
        for expected in values:
            try:
                patterns.append((expected, compile_user_regex(expected), ""))
            except re.error as err:
                problem = f"data filter {index}: invalid regular expression {expected!r}: {err}"
                patterns.append((expected, None, problem))
        equal, unequal = comparator in ("", "="), comparator == "!="

        def check_string(data: Any, explain: bool) -> tuple[bool, str]:
            text = text_of(value_of(data))
            for expected, pattern, problem in patterns:
                if pattern is None:
                    raise _FilterError(problem)
                matched = found_in(pattern, text)
                if equal and matched:
                    return True, f"{label}: {_short(text)!r} matches {expected!r}" if explain else ""
                if unequal and not matched:
                    return True, f"{label}: {_short(text)!r} does not match {expected!r}" if explain else ""
            if equal:
                return False, f"{label}: {_short(text)!r} does not match {_values(values)}"
            if unequal:
                return False, f"{label}: {_short(text)!r} matches {_values(values)}"
            return False, f"{label}: comparator {comparator!r} never matches a string"

        return check_string

    def check_unsupported(data: Any, explain: bool) -> tuple[bool, str]:
        value_of(data)
        raise _FilterError(f"data filter {index}: unsupported JSON type '{kind}'")

    return check_unsupported


def _compile_list(
    kind: str, checks: list[_Check], nothing: str | None, operator: str | None
) -> Callable[[Any], _Verdict]:
    """A list of data or expr filters as one verdict on the event data. ``nothing``: the passing
    reason when there is nothing to evaluate (None: evaluate even an empty list, as Argo does for
    ``exprs: []``)."""
    use_or, all_passed = operator == "or", f"all {len(checks)} {kind} filters passed"

    def verdict(data: Any) -> _Verdict:
        if nothing is not None:
            return True, nothing, None
        if data is None:
            return True, "event has no data", None
        return _combine(checks, use_or, kind, all_passed, data)

    return verdict


def _compile_data(filters: list[DataFilter] | None, operator: str | None) -> Callable[[Any], _Verdict]:
    checks = [_compile_data_filter(index, data_filter) for index, data_filter in enumerate(filters or [])]
    return _compile_list("data", checks, None if checks else "no data filters", operator)


def filter_data(filters: list[DataFilter] | None, operator: str | None, data: object) -> FilterResult:
    """Apply ``data`` filters to decoded event data."""
    return FilterResult(*_compile_data(filters, operator)(data))


# ---------------------------------------------------------------------------------------------
# expr filters
# ---------------------------------------------------------------------------------------------


def _compile_expr_filter(index: int, expr_filter: ExprFilter) -> _Check:
    """One govaluate filter; the expression is parsed now, its error raised when reached."""
    fields = [(payload_field.name, payload_field.path) for payload_field in expr_filter.fields]
    expr = expr_filter.expr
    program: Callable[[Mapping[str, Any]], Any] | None = None
    problem = ""
    try:
        program = _expression(expr)
    except ExprError as err:
        problem = f"expr filter {index}: {expr!r}: {err}"
    where = f"expr filter {index}"
    is_true = f"{where}: {expr!r} is true"

    def check_expr(data: Any, explain: bool) -> tuple[bool, str]:
        if not fields:
            return True, ""  # Argo skips an expression without bound fields; under AND that passes
        variables = {name: _required(data, path, where) for name, path in fields}
        if program is None:
            raise _FilterError(problem)
        try:
            result = program(variables)
        except ExprError as err:
            raise _FilterError(f"expr filter {index}: {expr!r}: {err}") from None
        if result is True:
            return True, is_true
        return False, f"expr filter {index}: {expr!r} is {govaluate.go_text(result)}"

    return check_expr


def _compile_exprs(filters: list[ExprFilter] | None, operator: str | None) -> Callable[[Any], _Verdict]:
    checks = [_compile_expr_filter(index, expr_filter) for index, expr_filter in enumerate(filters or [])]
    return _compile_list("expr", checks, None if filters is not None else "no expr filters", operator)


def filter_exprs(filters: list[ExprFilter] | None, operator: str | None, data: object) -> FilterResult:
    """Apply ``exprs`` filters (govaluate) to decoded event data."""
    return FilterResult(*_compile_exprs(filters, operator)(data))


# ---------------------------------------------------------------------------------------------
# context and time filters
# ---------------------------------------------------------------------------------------------


def _compile_context(expected: EventContext | None) -> Callable[[Event], _Verdict]:
    wanted = [] if expected is None else [
        (key, value) for key in ("type", "subject", "source", "datacontenttype") if (value := getattr(expected, key))
    ]  # fmt: skip
    configured = expected is not None

    def context_verdict(event: Event) -> _Verdict:
        if not configured:
            return True, "no context filter", None
        for key, value in wanted:
            actual = getattr(event, key)
            if value != actual:
                return False, f"context filter: {key} is {actual!r}, not {value!r}", None
        return True, "context filter matched", None

    return context_verdict


def filter_context(expected: EventContext | None, event: Event) -> FilterResult:
    """Every non-empty ``type``, ``subject``, ``source``, ``datacontenttype`` must match exactly."""
    return FilterResult(*_compile_context(expected)(event))


_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})")


def _time_of_day(text: str, which: str) -> time:
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        raise _FilterError(f"time filter: {which} {text!r} is not a time of day (hh:mm:ss)")
    hour, minute, second = (int(part) for part in match.groups())
    if hour > 23 or minute > 59 or second > 59:
        raise _FilterError(f"time filter: {which} {text!r} is out of range")
    return time(hour, minute, second)


def _compile_time(time_filter: TimeFilter | None) -> Callable[[datetime], _Verdict]:
    if time_filter is None:
        return lambda _moment: (True, "no time filter", None)
    try:
        try:
            zone = ZoneInfo(time_filter.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise _FilterError(f"time filter: invalid timezone '{time_filter.timezone}'") from None
        start_time = _time_of_day(time_filter.start, "start")
        stop_time = _time_of_day(time_filter.stop, "stop")
    except _FilterError as err:
        problem = str(err)
        return lambda _moment: (False, problem, problem)
    window = f"[{time_filter.start}, {time_filter.stop})"

    def time_verdict(moment: datetime) -> _Verdict:
        local = moment.astimezone(zone)
        start = datetime.combine(local.date(), start_time, zone)
        stop = datetime.combine(local.date(), stop_time, zone)
        # [start, stop) of that day; when stop <= start the window wraps past midnight.
        inside = start <= local < stop if start < stop else (local >= start or local < stop)
        shown = local.strftime("%H:%M:%S")
        if inside:
            return True, f"time filter: {shown} is within {window}", None
        return False, f"time filter: {shown} is outside {window}", None

    return time_verdict


def filter_time(time_filter: TimeFilter | None, moment: datetime) -> FilterResult:
    """The event time lies in ``[start, stop)`` of the event's day in ``timezone``."""
    return FilterResult(*_compile_time(time_filter)(moment))


def _script_verdict(script: str, data: object) -> _Verdict:
    try:
        passed = script_filter(script, data)
    except ExprError as err:
        message = f"script filter: {err}"
        return False, message, message
    if passed:
        return True, "script filter returned true", None
    return False, "script filter did not return true", None


def filter_script(script: str | None, data: object) -> FilterResult:
    """Argo's Lua ``script`` filter (sandboxed, :mod:`.scripting`): passes when it returns ``true``."""
    if not script:
        return FilterResult(True, "no script filter")
    return FilterResult(*_script_verdict(script, data))


# ---------------------------------------------------------------------------------------------
# all filters of a dependency
# ---------------------------------------------------------------------------------------------


def _compile_filters(filters: EventDependencyFilter | None, operator: str | None) -> Callable[[Event], FilterResult]:
    """Every configured filter kind, combined with ``filtersLogicalOperator``."""
    if filters is None:
        return lambda _event: FilterResult(True, "no filters")
    use_or = operator == "or"
    # Every configured kind is evaluated (as Argo does), in Argo's order; unconfigured ones pass.
    kinds: list[tuple[str, Callable[[Event], _Verdict]]] = []
    if filters.exprs is not None:
        exprs = _compile_exprs(filters.exprs, filters.expr_logical_operator)
        kinds.append(("exprs", lambda event: exprs(event.data)))
    if filters.data is not None:
        data = _compile_data(filters.data, filters.data_logical_operator)
        kinds.append(("data", lambda event: data(event.data)))
    if filters.context is not None:
        kinds.append(("context", _compile_context(filters.context)))
    if filters.time is not None:
        moment = _compile_time(filters.time)
        kinds.append(("time", lambda event: moment(event.time)))
    script = filters.script

    def filter_one(event: Event) -> FilterResult:
        checks = [FilterCheck(kind, *verdict(event)) for kind, verdict in kinds]
        if script:
            passed, reason, error = _script_verdict(script, event.data)
            checks.append(FilterCheck("script", passed, reason, error))
            if error:  # Argo returns a script error at once, whatever the operator
                return FilterResult(False, reason, error, tuple(checks))
        if not use_or:
            for check in checks:
                if check.error or not check.passed:
                    return FilterResult(False, check.reason, check.error, tuple(checks))
            return FilterResult(
                True, "; ".join([check.reason for check in checks]) or "no filters", None, tuple(checks)
            )
        errors = [check.error for check in checks if check.error]
        if errors:
            message = " / ".join(errors)
            return FilterResult(False, f"discarded due to filtering error: {message}", message, tuple(checks))
        for check in checks:
            if check.passed:
                return FilterResult(True, check.reason, None, tuple(checks))
        return FilterResult(False, "no filter passed: " + "; ".join(check.reason for check in checks), None,
                            tuple(checks))  # fmt: skip

    return filter_one


def filter_event(filters: EventDependencyFilter | None, operator: str | None, event: Event) -> FilterResult:
    """Apply every configured filter kind and combine them with ``filtersLogicalOperator``."""
    return _compile_filters(filters, operator)(event)


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


class DependencyFilter:
    """A dependency's transform and filters, compiled once; :meth:`apply` runs them on an event
    as Argo processes a dependency."""

    def __init__(self, dependency: EventDependency) -> None:
        self.dependency = dependency
        transform = dependency.transform
        self._transforms = transform is not None and bool(transform.jq or transform.script)
        self._filter = _compile_filters(dependency.filters, dependency.filters_logical_operator)

    def apply(self, event: Event) -> FilterResult:
        """Transform then filter. ``result.event`` is the event the dependency keeps (transformed);
        a transform error drops the event."""
        if not self._transforms:
            return self._filter(event)
        try:
            transformed = transform_event(self.dependency, event)
        except ExprError as err:
            message = f"transform: {err}"
            return FilterResult(False, message, message, (FilterCheck("transform", False, message, message),))
        result = self._filter(transformed)
        check = FilterCheck("transform", True, "transformed the event data")
        return dataclasses.replace(result, checks=(check, *result.checks), event=transformed)


def filter_dependency(dependency: EventDependency, event: Event) -> FilterResult:
    """Transform then filter one event (compiles the dependency's filters for this one call)."""
    return DependencyFilter(dependency).apply(event)


__all__ = [
    "DependencyFilter",
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
