"""``filter.expression`` of event sources (one place for every source type), as Argo does it.

The expression (expr-lang, :mod:`eventbridge.expr.lang`) is evaluated over the event data map,
with ``-`` in top-level keys replaced by ``_``, before the event is published. ``true`` publishes
the event; ``false``, a non-boolean result or an evaluation error drops it (an error is logged
once per distinct message, a false result at DEBUG), and the sender still gets success (a webhook
caller gets 200 with ``"filtered": true``). An expression that does not parse stops the source
from starting (Argo would drop every event instead).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from eventbridge.errors import ExprError, InvalidError
from eventbridge.expr import lang
from eventbridge.models.eventsource import EventSourceFilter


class EventFilter:
    """Decides whether an event is published (see the module docstring)."""

    def __init__(self, spec: EventSourceFilter | None, logger: logging.Logger, labels: Mapping[str, str]) -> None:
        self.expression = spec.expression.strip() if spec is not None and spec.expression else None
        self._log = logger
        self._labels = dict(labels)
        self._last_error: str | None = None
        if self.expression:
            try:
                lang.parse(self.expression)
            except ExprError as exc:
                raise InvalidError(f"filter.expression: {exc}") from None

    def accepts(self, data: Any) -> bool:
        """True when ``data`` should be published."""
        if not self.expression:
            return True
        env = {str(k).replace("-", "_"): v for k, v in data.items()} if isinstance(data, Mapping) else {}
        try:
            result = lang.evaluate_bool(self.expression, env)
        except ExprError as exc:
            message = str(exc)
            if message != self._last_error:
                self._log.error("filter.expression failed, dropping the event: %s", message, extra=self._labels)
            self._last_error = message
            return False
        self._last_error = None
        if not result:
            self._log.debug("filter.expression is false, dropping the event", extra=self._labels)
        return result
