"""Argo's ``when`` conditions: govaluate syntax, evaluated after ``{{...}}`` substitution.

A dialect of the expression parser in :mod:`eventbridge.expr.lang` (``dialect="govaluate"``):
``==  !=  <  <=  >  >=  =~  !~  &&  ||  !``, parentheses, ``+ - * / %`` on numbers, quoted strings,
numbers, ``true``/``false`` and ``in (a, b, ...)``. As in Argo, a bare word (``heads``,
``Succeeded``, ``my-value``) is a string, so ``tails == heads`` needs no quotes. Numbers compare as
numbers; ``==`` between a number and a string is false. Nothing is evaluated with Python's eval.
"""

from __future__ import annotations

from eventbridge.errors import ExprError
from eventbridge.expr.lang import evaluate


def evaluate_when(expression: str) -> bool:
    """Evaluate a substituted ``when``; ExprError when it is malformed or not boolean."""
    if not expression.strip():
        return True
    value = evaluate(expression, dialect="govaluate")
    if not isinstance(value, bool):
        raise ExprError(f"'when' expression {expression!r} does not evaluate to true or false")
    return value
