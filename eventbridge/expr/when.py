"""A small, safe evaluator for Argo's ``when`` conditions (govaluate syntax, already substituted).

Supported: ``==  !=  <  <=  >  >=  =~  !~  &&  ||  !``, parentheses, ``+ - * / %`` on numbers,
single/double/back-quoted strings, numbers, ``true``/``false``, and ``in (a, b, ...)``.
As in Argo, a bare word (``heads``, ``Succeeded``) is a string, so
``tails == heads`` needs no quotes. Numbers compare as numbers; ``==`` between a number and a
string is false. Nothing is evaluated with Python's eval; regexes are compiled with ``re``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eventbridge.errors import ExprError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<op>==|!=|<=|>=|=~|!~|&&|\|\||[<>!()+\-*/%,])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num, str, op, word
    text: str
    value: Any


def _unquote(text: str) -> str:
    body = text[1:-1]
    if text[0] == "`":
        return body
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None or match.end() == pos:
            raise ExprError(f"invalid 'when' expression {text!r}: unexpected {stripped[pos:]!r}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "num":
            tokens.append(_Tok("num", raw, float(raw)))
        elif kind == "str":
            tokens.append(_Tok("str", raw, _unquote(raw)))
        elif kind == "word":
            if raw in ("true", "false"):
                tokens.append(_Tok("bool", raw, raw == "true"))
            elif raw == "in":
                tokens.append(_Tok("op", "in", None))
            else:
                tokens.append(_Tok("str", raw, raw))
        else:
            tokens.append(_Tok("op", raw, None))
        pos = match.end()
    return tokens


class _Parser:
    """Precedence climbing: || < && < comparison < + - < * / % < unary."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def fail(self, why: str) -> ExprError:
        return ExprError(f"invalid 'when' expression {self.text!r}: {why}")

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take_op(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text in ops:
            self.pos += 1
            return tok.text
        return None

    def parse(self) -> Any:
        if not self.tokens:
            raise self.fail("empty")
        value = self.or_()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return value

    def or_(self) -> Any:
        left = self.and_()
        while self.take_op("||"):
            right = self.and_()
            left = _truth(left, self) or _truth(right, self)
        return left

    def and_(self) -> Any:
        left = self.compare()
        while self.take_op("&&"):
            right = self.compare()
            left = _truth(left, self) and _truth(right, self)
        return left

    def compare(self) -> Any:
        left = self.additive()
        op = self.take_op("==", "!=", "<", "<=", ">", ">=", "=~", "!~", "in")
        if op is None:
            return left
        if op == "in":
            if not self.take_op("("):
                raise self.fail("'in' needs a parenthesised list")
            items = [self.additive()]
            while self.take_op(","):
                items.append(self.additive())
            if not self.take_op(")"):
                raise self.fail("missing ')'")
            return any(_equal(left, item) for item in items)
        right = self.additive()
        if op == "==":
            return _equal(left, right)
        if op == "!=":
            return not _equal(left, right)
        if op in ("=~", "!~"):
            try:
                found = re.search(str(_text(right)), str(_text(left))) is not None
            except re.error as exc:
                raise self.fail(f"bad regular expression: {exc}") from exc
            return found if op == "=~" else not found
        if isinstance(left, float) and isinstance(right, float):
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        if isinstance(left, str) and isinstance(right, str):
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        raise self.fail(f"cannot compare {_text(left)!r} {op} {_text(right)!r}")

    def additive(self) -> Any:
        left = self.term()
        while (op := self.take_op("+", "-")) is not None:
            right = self.term()
            if op == "+" and isinstance(left, str) and isinstance(right, str):
                left = left + right
                continue
            left = _num(left, self) + _num(right, self) if op == "+" else _num(left, self) - _num(right, self)
        return left

    def term(self) -> Any:
        left = self.unary()
        while (op := self.take_op("*", "/", "%")) is not None:
            a, b = _num(left, self), _num(self.unary(), self)
            if op == "*":
                left = a * b
            elif b == 0:
                raise self.fail("division by zero")
            else:
                left = a / b if op == "/" else a % b
        return left

    def unary(self) -> Any:
        if self.take_op("!"):
            return not _truth(self.unary(), self)
        if self.take_op("-"):
            return -_num(self.unary(), self)
        if self.take_op("("):
            value = self.or_()
            if not self.take_op(")"):
                raise self.fail("missing ')'")
            return value
        tok = self.peek()
        if tok is None or tok.kind == "op":
            raise self.fail("expected a value" + (f" before {tok.text!r}" if tok else " at the end"))
        self.pos += 1
        return tok.value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return str(value)


def _equal(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _num(value: Any, parser: _Parser) -> float:
    if isinstance(value, float):
        return value
    raise parser.fail(f"{_text(value)!r} is not a number")


def _truth(value: Any, parser: _Parser) -> bool:
    if isinstance(value, bool):
        return value
    raise parser.fail(f"{_text(value)!r} is not a boolean")


def evaluate_when(expression: str) -> bool:
    """Evaluate a substituted ``when``; ExprError when it is malformed or not boolean."""
    if not expression.strip():
        return True
    value = _Parser(expression).parse()
    if not isinstance(value, bool):
        raise ExprError(f"'when' expression {expression!r} does not evaluate to true or false")
    return value
