"""A safe evaluator for expr-lang expressions (Argo's ``{{=...}}`` tags) and govaluate conditions.

Own lexer, Pratt parser and tree-walking evaluator; nothing is evaluated with Python's eval and
no Python attribute is ever reached: values are JSON-like (None, bool, int, float, str, list,
dict) and functions come from an allow-list.

expr-lang (``dialect="expr"``, https://expr-lang.org/docs/language-definition):

* literals: ``1 1_000 0x1f 1.5 1e3 'a' "a\\n" `raw` true false nil [1, 2] {a: 1, "b": 2}``;
* member access ``a.b``, ``a?.b``, ``a["b"]``, ``a[0]``, ``a[-1]``, slices ``a[1:3]``;
* operators ``! not - + * / % ** ^ == != < <= > >= && || and or ?: ?? in not-in .. |``
  and ``matches contains startsWith endsWith``;
* closures ``filter(list, {# > 1})`` / ``map(list, .field)`` with ``#`` (and ``#index``);
* functions: expr builtins (``len upper lower trim split join replace keys values int float
  string toJSON fromJSON ...``), Argo's ``asInt asFloat toJson jsonpath`` and ``sprig.*``.

govaluate (``dialect="govaluate"``, used for ``when``): bare words (``heads``, ``my-val``,
``a.b``) are strings, numbers are floats, ``=~ !~`` are regex matches, ``in (a, b)`` takes a
parenthesised list, no function calls.

Limits: expression length, nesting depth, evaluation steps, string and list sizes. Every
problem is an :class:`ExprError` naming the column (1-based) where it was found.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from eventbridge.errors import ExprError
from eventbridge.expr.regex import UserPattern, compile_user_regex

Dialect = Literal["expr", "govaluate"]

MAX_LENGTH = 10_000  # characters in an expression
MAX_DEPTH = 64  # nesting of the syntax tree
MAX_STEPS = 200_000  # evaluation steps (nodes visited, closure iterations)
MAX_STRING = 1 << 20  # characters in a string value
MAX_ITEMS = 100_000  # items in a list or map value
MAX_REGEX = 1_000  # characters in a regular expression
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _error(message: str, column: int | None, text: str | None = None) -> ExprError:
    where = f" (column {column})" if column is not None else ""
    shown = ""
    if text is not None:
        shown = text if len(text) <= 120 else text[:117] + "..."
        shown = f" in {shown!r}"
    exc = ExprError(f"{message}{where}{shown}")
    exc.column = column
    return exc


# ============================================================================ lexer


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num, str, name, op, word (govaluate bare word), eof
    text: str
    value: Any
    col: int


_OPERATORS = (
    "...",
    "?.[",
    "&&",
    "||",
    "==",
    "!=",
    "<=",
    ">=",
    "=~",
    "!~",
    "??",
    "?.",
    "**",
    "..",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "<",
    ">",
    "!",
    "?",
    ":",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    "|",
    "#",
)
_WORD_OPS = frozenset({"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"})
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:[0-9][0-9_]*)?\.?[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?"
)
_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_GOVALUATE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _string(text: str, start: int) -> tuple[str, int]:
    """Read a quoted string literal at ``start``; (value, end)."""
    quote = text[start]
    if quote == "`":
        end = text.find("`", start + 1)
        if end < 0:
            raise _error("unterminated string", start + 1, text)
        return text[start + 1 : end], end + 1
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == quote:
            return "".join(out), pos + 1
        if char == "\\":
            pos += 1
            if pos >= len(text):
                break
            esc = text[pos]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
            elif esc in "xuU":
                size = {"x": 2, "u": 4, "U": 8}[esc]
                digits = text[pos + 1 : pos + 1 + size]
                if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise _error(f"invalid \\{esc} escape", pos, text)
                code = int(digits, 16)
                if code > 0x10FFFF:
                    raise _error("invalid unicode escape", pos, text)
                out.append(chr(code))
                pos += size
            else:
                out.append(esc)
            pos += 1
            continue
        out.append(char)
        pos += 1
    raise _error("unterminated string", start + 1, text)


def tokenize(text: str, dialect: Dialect = "expr") -> list[Token]:
    """The tokens of ``text``; ExprError on a character that starts no token."""
    tokens: list[Token] = []
    pos = 0
    length = len(text)
    while pos < length:
        char = text[pos]
        if char in " \t\r\n":
            pos += 1
            continue
        col = pos + 1
        if char in "'\"`":
            value, pos = _string(text, pos)
            tokens.append(Token("str", value, value, col))
            continue
        if char in _DIGITS or (char == "." and pos + 1 < length and text[pos + 1] in _DIGITS):
            match = _NUMBER.match(text, pos)
            assert match is not None
            raw = match.group(0)
            # "1..3" is a range, not the float "1." followed by ".3"
            if "." in raw and text.startswith("..", pos + raw.index(".")):
                raw = raw[: raw.index(".")]
            pos += len(raw)
            tokens.append(Token("num", raw, _number(raw, col, text, dialect), col))
            continue
        if dialect == "govaluate" and (char in _LETTERS or char == "_"):
            match = _GOVALUATE_WORD.match(text, pos)
            assert match is not None
            raw = match.group(0).rstrip(".-")
            pos += len(raw)
            if raw in ("true", "false"):
                tokens.append(Token("bool", raw, raw == "true", col))
            elif raw == "in":
                tokens.append(Token("op", "in", None, col))
            else:
                tokens.append(Token("str", raw, raw, col))
            continue
        if char in _LETTERS or char in "_$":
            match = _NAME.match(text, pos)
            assert match is not None
            raw = match.group(0)
            pos += len(raw)
            if raw in _WORD_OPS:
                tokens.append(Token("op", raw, None, col))
            else:
                tokens.append(Token("name", raw, None, col))
            continue
        for op in _OPERATORS:
            if text.startswith(op, pos):
                tokens.append(Token("op", op, None, col))
                pos += len(op)
                break
        else:
            raise _error(f"unexpected character {char!r}", col, text)
    tokens.append(Token("eof", "", None, length + 1))
    return tokens


def _number(raw: str, col: int, text: str, dialect: Dialect) -> int | float:
    clean = raw.replace("_", "")
    try:
        if clean[:2].lower() in ("0x", "0o", "0b"):
            value: int | float = int(clean, 0)
        elif any(c in clean for c in ".eE"):
            value = float(clean)
        else:
            value = int(clean)
    except ValueError:
        raise _error(f"invalid number {raw!r}", col, text) from None
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise _error(f"integer {raw} is out of range", col, text)
    if dialect == "govaluate":
        return float(value)
    return value


# ============================================================================ syntax tree


@dataclass(frozen=True, slots=True)
class Node:
    """One node of the syntax tree. ``op`` says what it is; ``a``, ``b``, ``c`` are its parts."""

    op: str
    col: int
    a: Any = None
    b: Any = None
    c: Any = None


_BINARY: dict[str, tuple[int, bool]] = {  # operator -> (precedence, right associative)
    "|": (0, False),
    "||": (10, False),
    "or": (10, False),
    "&&": (15, False),
    "and": (15, False),
    "==": (20, False),
    "!=": (20, False),
    "<": (20, False),
    ">": (20, False),
    "<=": (20, False),
    ">=": (20, False),
    "in": (20, False),
    "matches": (20, False),
    "contains": (20, False),
    "startsWith": (20, False),
    "endsWith": (20, False),
    "=~": (20, False),
    "!~": (20, False),
    "..": (25, False),
    "+": (30, False),
    "-": (30, False),
    "*": (60, False),
    "/": (60, False),
    "%": (60, False),
    "**": (100, True),
    "^": (100, True),
    "??": (500, False),
}
_UNARY = {"!": 50, "not": 50, "-": 90, "+": 90}
_GOVALUATE_ONLY = frozenset({"=~", "!~"})
_EXPR_ONLY = frozenset({"|", "..", "matches", "contains", "startsWith", "endsWith", "and", "or", "not"})

# Builtins whose argument at these positions is a predicate (a closure over ``#``).
_PREDICATE_ARGS = {
    "all": 1,
    "any": 1,
    "none": 1,
    "one": 1,
    "filter": 1,
    "map": 1,
    "count": 1,
    "find": 1,
    "findIndex": 1,
    "findLast": 1,
    "findLastIndex": 1,
    "sortBy": 1,
    "groupBy": 1,
    "sum": 1,
}


class _Parser:
    def __init__(self, text: str, dialect: Dialect) -> None:
        self.text = text
        self.dialect = dialect
        self.tokens = tokenize(text, dialect)
        self.pos = 0
        self.depth = 0

    # helpers
    def fail(self, message: str, tok: Token | None = None) -> ExprError:
        return _error(message, (tok or self.peek()).col, self.text)

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    def expect(self, op: str) -> Token:
        if not self.is_op(op):
            tok = self.peek()
            found = "the end" if tok.kind == "eof" else repr(tok.text)
            raise self.fail(f"expected {op!r}, found {found}")
        return self.next()

    # grammar
    def parse(self) -> Node:
        if self.peek().kind == "eof":
            raise self.fail("empty expression")
        node = self.expression(0)
        if self.peek().kind != "eof":
            raise self.fail(f"unexpected {self.peek().text!r}")
        return node

    def expression(self, min_prec: int) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression nested deeper than {MAX_DEPTH} levels")
        try:
            left = self.unary()
            while True:
                tok = self.peek()
                if tok.kind != "op":
                    break
                op = tok.text
                negated = False
                if (
                    op == "not"
                    and self.peek(1).kind == "op"
                    and self.peek(1).text in ("in", "matches", "contains", "startsWith", "endsWith")
                ):
                    negated, op = True, self.peek(1).text
                if (
                    op not in _BINARY
                    or (self.dialect == "expr" and op in _GOVALUATE_ONLY)
                    or (self.dialect == "govaluate" and op in _EXPR_ONLY)
                ):
                    break
                prec, right_assoc = _BINARY[op]
                if prec < min_prec:
                    break
                self.pos += 2 if negated else 1
                if op == "|":
                    left = self.pipe(left, tok)
                    continue
                if op == "in" and self.dialect == "govaluate":
                    right = self.govaluate_list()
                else:
                    right = self.expression(prec + (0 if right_assoc else 1))
                left = Node("binary", tok.col, op, left, right)
                if negated:
                    left = Node("unary", tok.col, "!", left)
            if min_prec == 0 and self.is_op("?"):
                tok = self.next()
                if self.is_op(":"):  # a ?: b  (elvis)
                    self.next()
                    other = self.expression(0)
                    return Node("elvis", tok.col, left, other)
                yes = self.expression(0)
                self.expect(":")
                no = self.expression(0)
                return Node("cond", tok.col, left, yes, no)
            return left
        finally:
            self.depth -= 1

    def govaluate_list(self) -> Node:
        start = self.expect("(")
        items = [self.expression(1)]
        while self.is_op(","):
            self.next()
            items.append(self.expression(1))
        self.expect(")")
        return Node("list", start.col, tuple(items))

    def pipe(self, left: Node, tok: Token) -> Node:
        name = self.peek()
        if name.kind != "name":
            raise self.fail("expected a function call after '|'")
        self.next()
        if not self.is_op("("):
            raise self.fail("expected a function call after '|'", tok)
        call = self.call(name.text, name, piped=True)
        if call.op != "call":
            raise self.fail("expected a function call after '|'", tok)
        return Node("call", call.col, call.a, (left, *call.b))

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in _UNARY and not (self.dialect == "govaluate" and tok.text == "not"):
            self.next()
            operand = self.expression(_UNARY[tok.text])
            return Node("unary", tok.col, tok.text, operand)
        return self.postfix(self.primary())

    def primary(self) -> Node:
        tok = self.next()
        if tok.kind in ("num", "str", "bool"):
            return Node("lit", tok.col, tok.value)
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                return Node("lit", tok.col, tok.text == "true")
            if tok.text == "nil":
                return Node("lit", tok.col, None)
            if self.is_op("("):
                return self.call(tok.text, tok)
            return Node("name", tok.col, tok.text)
        if tok.kind == "op":
            if tok.text == "(":
                node = self.expression(0)
                self.expect(")")
                return node
            if self.dialect == "govaluate":
                raise self.fail(f"unexpected {tok.text!r}", tok)
            if tok.text == "[":
                items: list[Node] = []
                while not self.is_op("]"):
                    items.append(self.expression(0))
                    if not self.is_op("]"):
                        self.expect(",")
                self.expect("]")
                return Node("list", tok.col, tuple(items))
            if tok.text == "{":
                return self.map_literal(tok)
            if tok.text == "#":
                if self.peek().kind == "name" and self.peek().col == tok.col + 1 and self.peek().text == "index":
                    self.next()
                    return Node("index_var", tok.col)
                return Node("pointer", tok.col)
            if tok.text == "." and self.peek().kind == "name":
                name = self.next()
                return Node("member", tok.col, Node("pointer", tok.col), name.text, False)
        found = "the end" if tok.kind == "eof" else repr(tok.text)
        raise self.fail(f"unexpected {found}", tok)

    def map_literal(self, start: Token) -> Node:
        pairs: list[tuple[Node, Node]] = []
        while not self.is_op("}"):
            key_tok = self.next()
            if key_tok.kind == "name":
                key = Node("lit", key_tok.col, key_tok.text)
            elif key_tok.kind in ("str", "num"):
                key = Node("lit", key_tok.col, key_tok.value if key_tok.kind == "str" else key_tok.text)
            elif key_tok.kind == "op" and key_tok.text == "(":
                key = self.expression(0)
                self.expect(")")
            else:
                raise self.fail("expected a map key", key_tok)
            self.expect(":")
            pairs.append((key, self.expression(0)))
            if not self.is_op("}"):
                self.expect(",")
        self.expect("}")
        return Node("map", start.col, tuple(pairs))

    def call(self, name: str, tok: Token, *, piped: bool = False) -> Node:
        if name not in FUNCTIONS and name not in _PREDICATE_ARGS:
            raise self.fail(f"unknown function {name!r}", tok)
        self.expect("(")
        args: list[Node] = []
        predicate_at = _PREDICATE_ARGS.get(name)
        if predicate_at is not None and piped:
            predicate_at -= 1
        while not self.is_op(")"):
            if predicate_at is not None and len(args) == predicate_at:
                args.append(self.closure())
            else:
                args.append(self.expression(0))
            if not self.is_op(")"):
                self.expect(",")
        self.expect(")")
        return Node("call", tok.col, name, tuple(args))

    def method(self, target: Node, name: Token) -> Node:
        if name.text not in _METHODS:
            raise self.fail(f"unknown method {name.text!r}", name)
        self.expect("(")
        args: list[Node] = []
        while not self.is_op(")"):
            args.append(self.expression(0))
            if not self.is_op(")"):
                self.expect(",")
        self.expect(")")
        return Node("method", name.col, target, name.text, tuple(args))

    def closure(self) -> Node:
        tok = self.peek()
        if self.is_op("{"):
            self.next()
            body = self.expression(0)
            self.expect("}")
        else:
            body = self.expression(0)
        return Node("closure", tok.col, body)

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok.kind != "op":
                return node
            if tok.text in (".", "?."):
                self.next()
                name = self.next()
                if name.kind not in ("name",) and not (name.kind == "op" and name.text in _WORD_OPS):
                    if tok.text == "?." and name.kind == "op" and name.text == "[":
                        node = self.subscript(node, name, optional=True)
                        continue
                    raise self.fail("expected a field name after '.'", name)
                if self.is_op("(") and _dotted(node) is not None:
                    return self.call(f"{_dotted(node)}.{name.text}", name)
                if self.is_op("("):
                    node = self.method(node, name)
                    continue
                node = Node("member", name.col, node, name.text, tok.text == "?.")
            elif tok.text == "?.[":
                self.next()
                node = self.subscript(node, tok, optional=True, opened=True)
            elif tok.text == "[" and self.dialect == "expr":
                self.next()
                node = self.subscript(node, tok, optional=False, opened=True)
            else:
                return node

    def subscript(self, node: Node, tok: Token, *, optional: bool, opened: bool = True) -> Node:
        low: Node | None = None
        high: Node | None = None
        if self.is_op(":"):
            self.next()
            if not self.is_op("]"):
                high = self.expression(0)
            self.expect("]")
            return Node("slice", tok.col, node, low, high)
        index = self.expression(0)
        if self.is_op(":"):
            self.next()
            if not self.is_op("]"):
                high = self.expression(0)
            self.expect("]")
            return Node("slice", tok.col, node, index, high)
        self.expect("]")
        return Node("index", tok.col, node, index, optional)


def _dotted(node: Node) -> str | None:
    """``sprig`` for Name(sprig): the function namespace a member chain names, if any."""
    if node.op == "name" and node.a == "sprig":
        return "sprig"
    return None


@lru_cache(maxsize=2048)
def parse(text: str, dialect: Dialect = "expr") -> Node:
    """The syntax tree of ``text`` (cached); ExprError when it is too long or malformed."""
    if len(text) > MAX_LENGTH:
        raise _error(f"expression longer than {MAX_LENGTH} characters", None)
    try:
        return _Parser(text, dialect).parse()
    except RecursionError:
        raise _error("expression nested too deeply", None, text) from None


# ============================================================================ evaluation


@dataclass(slots=True)
class _Context:
    text: str
    env: Mapping[str, Any]
    dialect: Dialect
    steps: int = 0
    pointers: list[Any] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    soft_nil: int = 0  # > 0 inside the left side of ``??``: nil.member is nil
    now: Callable[[], datetime] | None = None

    def fail(self, message: str, node: Node) -> ExprError:
        return _error(message, node.col, self.text)

    def tick(self, node: Node, amount: int = 1) -> None:
        self.steps += amount
        if self.steps > MAX_STEPS:
            raise self.fail(f"evaluation took more than {MAX_STEPS} steps", node)


def _type(value: Any) -> str:
    if isinstance(value, datetime):
        return "time"
    if isinstance(value, timedelta):
        return "duration"
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "map"
    return "unknown"


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_size(value: Any, ctx: _Context, node: Node) -> Any:
    """Refuse values over the size limits, and charge the work of building big values to the
    step budget (so a loop cannot build many of them: ``map(1..100000, {repeat("x", 1e6)})``)."""
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ctx.fail(f"string longer than {MAX_STRING} characters", node)
        if len(value) > 1024:
            ctx.tick(node, len(value) // 256)
    if isinstance(value, list | dict):
        if len(value) > MAX_ITEMS:
            raise ctx.fail(f"more than {MAX_ITEMS} items", node)
        if len(value) > 64:
            ctx.tick(node, len(value))
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise ctx.fail("integer overflow", node)
    return value


def equal(left: Any, right: Any) -> bool:
    """expr-lang equality: numbers by value (1 == 1.0), lists and maps deeply, no other coercion."""
    if _is_num(left) and _is_num(right):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(equal(v, right[k]) for k, v in left.items())
    return bool(left == right)


def _regex(pattern: Any, ctx: _Context, node: Node) -> UserPattern:
    if not isinstance(pattern, str):
        raise ctx.fail(f"a regular expression must be a string, not {_type(pattern)}", node)
    if len(pattern) > MAX_REGEX:
        raise ctx.fail(f"regular expression longer than {MAX_REGEX} characters", node)
    try:
        return _compile_regex(pattern)
    except re.error as exc:
        raise ctx.fail(f"invalid regular expression: {exc}", node) from None


def _compile_regex(pattern: str) -> UserPattern:
    """A user's pattern: RE2 semantics and linear time (see :mod:`eventbridge.expr.regex`)."""
    return compile_user_regex(pattern)


def _evaluate(node: Node, ctx: _Context) -> Any:
    ctx.tick(node)
    op = node.op
    if op == "lit":
        return node.a
    if op == "name":
        if node.a not in ctx.env:
            raise ctx.fail(f"unknown name {node.a}", node)
        return ctx.env[node.a]
    if op == "member":
        target = _evaluate(node.a, ctx)
        return _member(target, node.b, bool(node.c), ctx, node)
    if op == "index":
        target = _evaluate(node.a, ctx)
        key = _evaluate(node.b, ctx)
        return _index(target, key, bool(node.c), ctx, node)
    if op == "slice":
        return _slice(node, ctx)
    if op == "unary":
        value = _evaluate(node.b, ctx)
        if node.a in ("!", "not"):
            if not isinstance(value, bool):
                raise ctx.fail(f"'{node.a}' needs a bool, not {_type(value)}", node)
            return not value
        if not _is_num(value):
            raise ctx.fail(f"unary '{node.a}' needs a number, not {_type(value)}", node)
        return -value if node.a == "-" else value
    if op == "binary":
        return _binary(node, ctx)
    if op == "cond":
        condition = _evaluate(node.a, ctx)
        if not isinstance(condition, bool):
            raise ctx.fail(f"the condition of '?:' must be a bool, not {_type(condition)}", node)
        return _evaluate(node.b if condition else node.c, ctx)
    if op == "elvis":
        value = _evaluate(node.a, ctx)
        return _evaluate(node.b, ctx) if _empty(value) else value
    if op == "list":
        return _check_size([_evaluate(item, ctx) for item in node.a], ctx, node)
    if op == "map":
        result: dict[str, Any] = {}
        for key_node, value_node in node.a:
            key = _evaluate(key_node, ctx)
            if not isinstance(key, str | int | float) or isinstance(key, bool):
                raise ctx.fail(f"a map key must be a string or number, not {_type(key)}", key_node)
            result[_text(key)] = _evaluate(value_node, ctx)
        return result
    if op == "pointer":
        if not ctx.pointers:
            raise ctx.fail("'#' is only valid inside a predicate", node)
        return ctx.pointers[-1]
    if op == "index_var":
        if not ctx.indexes:
            raise ctx.fail("'#index' is only valid inside a predicate", node)
        return ctx.indexes[-1]
    if op == "call":
        return _call(node, ctx)
    if op == "method":
        return _method(node, ctx)
    if op == "closure":
        raise ctx.fail("a predicate can only be an argument of a function such as filter or map", node)
    raise ctx.fail(f"cannot evaluate {op}", node)  # pragma: no cover


def _member(target: Any, name: str, optional: bool, ctx: _Context, node: Node) -> Any:
    if target is None:
        if optional or ctx.soft_nil:
            return None
        raise ctx.fail(f"cannot fetch {name} from nil", node)
    if isinstance(target, dict):
        return target.get(name)
    raise ctx.fail(f"cannot fetch {name} from {_type(target)}", node)


def _index(target: Any, key: Any, optional: bool, ctx: _Context, node: Node) -> Any:
    if target is None:
        if optional or ctx.soft_nil:
            return None
        raise ctx.fail("cannot index nil", node)
    if isinstance(target, dict):
        if not isinstance(key, str):
            if _is_num(key):
                return target.get(_text(key))
            raise ctx.fail(f"a map index must be a string, not {_type(key)}", node)
        return target.get(key)
    if isinstance(target, list | str):
        if isinstance(key, float) and key.is_integer():
            key = int(key)
        if not isinstance(key, int) or isinstance(key, bool):
            raise ctx.fail(f"an index must be an integer, not {_type(key)}", node)
        size = len(target)
        position = key + size if key < 0 else key
        if not 0 <= position < size:
            raise ctx.fail(f"index out of range: {key} (length {size})", node)
        return target[position]
    raise ctx.fail(f"cannot index {_type(target)}", node)


def _slice(node: Node, ctx: _Context) -> Any:
    target = _evaluate(node.a, ctx)
    if not isinstance(target, list | str):
        raise ctx.fail(f"cannot slice {_type(target)}", node)
    size = len(target)
    bounds = []
    for part, default in ((node.b, 0), (node.c, size)):
        if part is None:
            bounds.append(default)
            continue
        value = _evaluate(part, ctx)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ctx.fail(f"a slice bound must be an integer, not {_type(value)}", node)
        value = value + size if value < 0 else value
        bounds.append(min(max(value, 0), size))
    low, high = bounds
    if low > high:
        raise ctx.fail(f"invalid slice bounds {low}:{high}", node)
    return target[low:high]


def _number_of(value: Any, ctx: _Context, node: Node, what: str) -> int | float:
    if not _is_num(value):
        raise ctx.fail(f"'{what}' needs numbers, not {_type(value)}", node)
    result: int | float = value
    return result


def _binary(node: Node, ctx: _Context) -> Any:
    op = node.a
    if op in ("&&", "and", "||", "or"):
        left = _evaluate(node.b, ctx)
        if not isinstance(left, bool):
            raise ctx.fail(f"'{op}' needs bools, not {_type(left)}", node)
        if (op in ("&&", "and")) != left:
            return left
        right = _evaluate(node.c, ctx)
        if not isinstance(right, bool):
            raise ctx.fail(f"'{op}' needs bools, not {_type(right)}", node)
        return right
    if op == "??":
        ctx.soft_nil += 1
        try:
            left = _evaluate(node.b, ctx)
        finally:
            ctx.soft_nil -= 1
        return _evaluate(node.c, ctx) if left is None else left
    left = _evaluate(node.b, ctx)
    right = _evaluate(node.c, ctx)
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    if op in ("<", "<=", ">", ">="):
        comparable = (
            (_is_num(left) and _is_num(right))
            or (isinstance(left, str) and isinstance(right, str))
            or (isinstance(left, datetime) and isinstance(right, datetime))
            or (isinstance(left, timedelta) and isinstance(right, timedelta))
        )
        if not comparable:
            raise ctx.fail(f"cannot compare {_type(left)} {op} {_type(right)}", node)
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        return left >= right
    if op == "in":
        if isinstance(right, list):
            ctx.tick(node, len(right))
            return any(equal(left, item) for item in right)
        if isinstance(right, dict):
            return isinstance(left, str) and left in right
        if right is None:
            return False
        raise ctx.fail(f"'in' needs an array or a map on the right, not {_type(right)}", node)
    if op in ("matches", "=~", "!~"):
        if not isinstance(left, str):
            if ctx.dialect == "govaluate":
                left = _text(left)
            else:
                raise ctx.fail(f"'{op}' needs a string on the left, not {_type(left)}", node)
        found = _regex(right, ctx, node).search(left) is not None
        return not found if op == "!~" else found
    if op in ("contains", "startsWith", "endsWith"):
        if not isinstance(left, str) or not isinstance(right, str):
            raise ctx.fail(f"'{op}' needs strings, not {_type(left)} and {_type(right)}", node)
        if op == "contains":
            return right in left
        return left.startswith(right) if op == "startsWith" else left.endswith(right)
    if op == "..":
        if not isinstance(left, int) or not isinstance(right, int) or isinstance(left, bool) or isinstance(right, bool):
            raise ctx.fail("'..' needs integers", node)
        if right - left + 1 > MAX_ITEMS:
            raise ctx.fail(f"range of more than {MAX_ITEMS} items", node)
        ctx.tick(node, max(0, right - left + 1))  # building the list is work too
        return list(range(left, right + 1))
    if op in ("+", "-") and isinstance(left, datetime | timedelta):
        return _time_arithmetic(op, left, right, ctx, node)
    if op == "+":
        if isinstance(left, str) and isinstance(right, str):
            return _check_size(left + right, ctx, node)
        if isinstance(left, list) and isinstance(right, list):
            return _check_size(left + right, ctx, node)
        return _check_size(_number_of(left, ctx, node, op) + _number_of(right, ctx, node, op), ctx, node)
    a = _number_of(left, ctx, node, op)
    b = _number_of(right, ctx, node, op)
    if op == "-":
        return _check_size(a - b, ctx, node)
    if op == "*":
        return _check_size(a * b, ctx, node)
    if op == "/":
        if b == 0:
            raise ctx.fail("division by zero", node)
        return a / b
    if op == "%":
        if isinstance(a, float) or isinstance(b, float):
            if ctx.dialect == "govaluate" and b:
                return math.fmod(a, b)
            raise ctx.fail("'%' needs integers", node)
        if b == 0:
            raise ctx.fail("integer divide by zero", node)
        return int(math.fmod(a, b))  # Go's remainder keeps the sign of the dividend
    if op in ("**", "^"):
        try:
            result = float(a) ** float(b)
        except (OverflowError, ZeroDivisionError):
            raise ctx.fail("number out of range", node) from None
        if isinstance(result, complex):
            raise ctx.fail("the result is not a real number", node)
        return result
    raise ctx.fail(f"unknown operator {op!r}", node)  # pragma: no cover


# ---------------------------------------------------------------------------- functions


_METHODS = frozenset(
    {
        "Seconds",
        "Minutes",
        "Hours",
        "Milliseconds",
        "Unix",
        "Year",
        "Month",
        "Day",
        "Hour",
        "Minute",
        "Second",
    }
)


def _time_arithmetic(op: str, left: Any, right: Any, ctx: _Context, node: Node) -> Any:
    try:
        if isinstance(left, datetime) and isinstance(right, datetime) and op == "-":
            return left - right
        if isinstance(right, timedelta):
            return left + right if op == "+" else left - right
    except OverflowError:
        raise ctx.fail("time out of range", node) from None
    raise ctx.fail(f"cannot {'add' if op == '+' else 'subtract'} {_type(right)} and {_type(left)}", node)


def _method(node: Node, ctx: _Context) -> Any:
    target = _evaluate(node.a, ctx)
    name: str = node.b
    if node.c:
        raise ctx.fail(f"{name}() takes no arguments", node)
    if isinstance(target, timedelta):
        seconds = target.total_seconds()
        scale = {"Seconds": 1.0, "Minutes": 60.0, "Hours": 3600.0, "Milliseconds": 0.001}.get(name)
        if scale is not None:
            return seconds / scale
    if isinstance(target, datetime):
        if name == "Unix":
            return int(target.timestamp())
        if name in ("Year", "Month", "Day", "Hour", "Minute", "Second"):
            value: int = getattr(target, name.lower())
            return value
    raise ctx.fail(f"{_type(target)} has no method {name}", node)


def _call(node: Node, ctx: _Context) -> Any:
    name: str = node.a
    if name == "now":
        if node.b:
            raise ctx.fail("now() takes no arguments", node)
        return ctx.now() if ctx.now is not None else datetime.now(UTC)
    if (
        name in _PREDICATE_ARGS
        and len(node.b) > _PREDICATE_ARGS[name]
        and node.b[_PREDICATE_ARGS[name]].op == "closure"
    ):
        return _call_predicate(name, node, ctx)
    args = [_evaluate(arg, ctx) for arg in node.b]
    function = FUNCTIONS.get(name)
    if function is None:
        raise ctx.fail(f"unknown function {name!r}", node)
    try:
        result = function(*args)
    except _FunctionError as exc:
        raise ctx.fail(f"{name}: {exc}", node) from None
    except TypeError:
        raise ctx.fail(f"{name}: wrong number or type of arguments ({len(args)} given)", node) from None
    except (
        ValueError,
        OverflowError,
        ZeroDivisionError,
        UnicodeError,
        binascii.Error,
        RecursionError,
        re.error,
    ) as exc:
        raise ctx.fail(f"{name}: {exc}", node) from None
    return _check_size(result, ctx, node)


def _call_predicate(name: str, node: Node, ctx: _Context) -> Any:
    args = node.b
    if len(args) < 2:
        raise ctx.fail(f"{name} needs an array and a predicate", node)
    collection = _evaluate(args[0], ctx)
    if isinstance(collection, dict) and name in ("map", "filter", "all", "any", "none", "one", "count"):
        collection = list(collection.values())
    if not isinstance(collection, list):
        raise ctx.fail(f"{name} needs an array, not {_type(collection)}", node)
    body: Node = args[1].a

    def each() -> Iterator[tuple[Any, Any]]:
        for index, item in enumerate(collection):
            ctx.tick(node)
            ctx.pointers.append(item)
            ctx.indexes.append(index)
            try:
                yield item, _evaluate(body, ctx)
            finally:
                ctx.pointers.pop()
                ctx.indexes.pop()

    def truth(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ctx.fail(f"the predicate of {name} must return a bool, not {_type(value)}", node)
        return value

    if name == "map":
        return [value for _item, value in each()]
    if name == "filter":
        return [item for item, value in each() if truth(value)]
    if name == "all":
        return all(truth(value) for _item, value in each())
    if name == "any":
        return any(truth(value) for _item, value in each())
    if name == "none":
        return not any(truth(value) for _item, value in each())
    if name == "one":
        return sum(1 for _item, value in each() if truth(value)) == 1
    if name == "count":
        return sum(1 for _item, value in each() if truth(value))
    if name == "sum":
        total: int | float = 0
        for _item, value in each():
            total += _number_of(value, ctx, node, "sum")
        return total
    if name in ("find", "findIndex"):
        for index, (item, value) in enumerate(each()):
            if truth(value):
                return item if name == "find" else index
        return None if name == "find" else -1
    if name in ("findLast", "findLastIndex"):
        found: tuple[int, Any] | None = None
        for index, (item, value) in enumerate(each()):
            if truth(value):
                found = (index, item)
        if found is None:
            return None if name == "findLast" else -1
        return found[1] if name == "findLast" else found[0]
    if name == "groupBy":
        groups: dict[str, list[Any]] = {}
        for item, value in each():
            groups.setdefault(_text(value), []).append(item)
        return groups
    if name == "sortBy":
        keyed = list(each())
        descending = len(args) > 2 and _evaluate(args[2], ctx) == "desc"
        try:
            keyed.sort(key=lambda pair: pair[1], reverse=descending)
        except TypeError:
            raise ctx.fail("sortBy: the keys cannot be compared", node) from None
        return [item for item, _value in keyed]
    raise ctx.fail(f"unknown function {name!r}", node)  # pragma: no cover


class _FunctionError(Exception):
    """A builtin rejected its arguments (turned into an ExprError with the call's column)."""


def _text(value: Any) -> str:
    """A value as Argo prints an expression result: strings as-is, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, timedelta):
        return _go_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if math.isnan(value):
            return "NaN"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text: str = to_json(value)
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | timedelta):
        return _text(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def to_json(value: Any, indent: int | None = None) -> str:
    """JSON as Go's encoding/json writes it (compact unless ``indent``)."""
    try:
        if indent is None:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
        return json.dumps(value, indent=indent, ensure_ascii=False, allow_nan=False, default=_json_default)
    except ValueError as exc:
        raise _FunctionError(f"cannot encode as JSON: {exc}") from None


def _go_duration(value: timedelta) -> str:
    """A duration as Go prints it (``1h2m3s``, ``1.5s``, ``0s``)."""
    total = value.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{sign}{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{sign}{int(minutes)}m{text}"
    return sign + text


def _duration(text: Any) -> timedelta:
    """expr's ``duration("1h30m")``."""
    source = _str(text).strip()
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(-?[0-9.]+)(ns|us|µs|ms|s|m|h)", source)
    if not parts or "".join(a + b for a, b in parts) != source:
        raise _FunctionError(f"invalid duration {source!r}")
    try:
        return timedelta(seconds=sum(float(a) * units[b] for a, b in parts))
    except (ValueError, OverflowError):
        raise _FunctionError(f"invalid duration {source!r}") from None


def _date(text: Any) -> datetime:
    """expr's ``date("2024-01-02T03:04:05Z")`` (RFC 3339 or a date)."""
    source = _str(text).strip()
    try:
        parsed = datetime.fromisoformat(source.replace("Z", "+00:00"))
    except ValueError:
        raise _FunctionError(f"cannot parse {source[:50]!r} as a time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _from_json(text: Any) -> Any:
    if not isinstance(text, str):
        raise _FunctionError(f"needs a string, not {_type(text)}")
    if len(text) > MAX_STRING:
        raise _FunctionError("input too large")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise _FunctionError(f"invalid JSON: {exc}") from None


def _str(value: Any, what: str = "argument") -> str:
    if not isinstance(value, str):
        raise _FunctionError(f"{what} must be a string, not {_type(value)}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise _FunctionError("cannot convert bool to int")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise _FunctionError(f"cannot convert {value} to int")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise _FunctionError(f"cannot parse {value[:50]!r} as an integer") from None
    raise _FunctionError(f"cannot convert {_type(value)} to int")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise _FunctionError("cannot convert bool to float")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _FunctionError(f"cannot parse {value[:50]!r} as a number") from None
    raise _FunctionError(f"cannot convert {_type(value)} to float")


def _len(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise _FunctionError(f"invalid argument for len (type {_type(value)})")


def _join(items: Any, sep: Any = "") -> str:
    if not isinstance(items, list):
        raise _FunctionError("the first argument must be an array")
    return _str(sep, "separator").join(_text(i) for i in items)


def _split(text: Any, sep: Any, count: Any = -1) -> list[str]:
    source, separator = _str(text), _str(sep, "separator")
    if separator == "":
        parts = list(source)
    else:
        parts = source.split(separator, -1 if count < 0 else max(count - 1, 0)) if count != 0 else []
    if len(parts) > MAX_ITEMS:
        raise _FunctionError("too many parts")
    return parts


def _repeat(text: Any, count: Any) -> str:
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise _FunctionError("the count must be a non-negative integer")
    if len(_str(text)) * count > MAX_STRING:
        raise _FunctionError(f"the result would be longer than {MAX_STRING} characters")
    return _str(text) * count


def _b64dec(text: Any) -> str:
    return base64.b64decode(_str(text), validate=True).decode("utf-8", "replace")


def _b64enc(text: Any) -> str:
    return base64.b64encode(_text(text).encode()).decode()


_JSONPATH_STEP = re.compile(
    r"\.\.(?P<deep>[A-Za-z0-9_\-$]+|\*)"
    r"|\.(?P<name>[A-Za-z0-9_\-$]+)|\.(?P<star>\*)"
    r"|\[\s*'(?P<sq>[^']*)'\s*\]|\[\s*\"(?P<dq>[^\"]*)\"\s*\]"
    r"|\[\s*(?P<index>-?\d+)\s*\]|\[\s*\*\s*\]"
    r"|\[\s*(?P<low>-?\d*)\s*:\s*(?P<high>-?\d*)\s*\]"
    r"|\[\s*\?\((?P<filter>.*?)\)\s*\]"
)


def _descendants(value: Any) -> Iterator[Any]:
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _jsonpath_filter(expression: str, item: Any) -> bool:
    """``?(@.age > 42 && @.name == "x")``: the filter is an expr-lang expression over ``@``."""
    try:
        value = evaluate(expression.replace("@", "__item__"), {"__item__": item})
    except ExprError:
        return False
    return value is True


def _jsonpath(document: Any, path: Any) -> Any:
    """``jsonpath(json, '$.a.b[0]')``: ``$ .name ['name'] [n] [a:b] [*] .* ..name [?(@.x == 1)]``.

    A path with a wildcard, slice, filter or ``..`` returns a list; otherwise the one value."""
    data = _from_json(document) if isinstance(document, str) else document
    query = _str(path, "path").strip()
    if not query.startswith("$"):
        raise _FunctionError(f"a JSON path must start with '$': {query!r}")
    current: list[Any] = [data]
    many = False
    pos = 1
    while pos < len(query):
        match = _JSONPATH_STEP.match(query, pos)
        if match is None:
            raise _FunctionError(f"unsupported JSON path at {query[pos:]!r}")
        pos = match.end()
        groups = match.groupdict()
        nxt: list[Any] = []
        key = next((groups[g] for g in ("name", "sq", "dq") if groups[g] is not None), None)
        if groups["deep"] is not None:
            many = True
            for item in current:
                for found in _descendants(item):
                    if isinstance(found, dict):
                        if groups["deep"] == "*":
                            nxt.extend(found.values())
                        elif groups["deep"] in found:
                            nxt.append(found[groups["deep"]])
        elif key is not None:
            nxt = [item[key] for item in current if isinstance(item, dict) and key in item]
        elif groups["index"] is not None:
            index = int(groups["index"])
            nxt = [item[index] for item in current if isinstance(item, list) and -len(item) <= index < len(item)]
        elif groups["filter"] is not None:
            many = True
            for item in current:
                members = item if isinstance(item, list) else list(item.values()) if isinstance(item, dict) else []
                nxt.extend(m for m in members if _jsonpath_filter(groups["filter"], m))
        elif groups["low"] is not None or groups["high"] is not None:
            many = True
            low = int(groups["low"]) if groups["low"] else None
            high = int(groups["high"]) if groups["high"] else None
            for item in current:
                if isinstance(item, list):
                    nxt.extend(item[low:high])
        else:  # [*] or .*
            many = True
            for item in current:
                if isinstance(item, list):
                    nxt.extend(item)
                elif isinstance(item, dict):
                    nxt.extend(item.values())
        current = nxt
    if many:
        return current
    if not current:
        raise _FunctionError(f"{query!r} matched nothing")
    return current[0]


_GO_LAYOUT = [
    ("January", "%B"),
    ("Jan", "%b"),
    ("Monday", "%A"),
    ("Mon", "%a"),
    ("2006", "%Y"),
    ("-07:00", "%:z"),
    ("-0700", "%z"),
    ("Z07:00", "Z07:00"),
    ("MST", "%Z"),
    ("01", "%m"),
    ("02", "%d"),
    ("_2", "%e"),
    ("15", "%H"),
    ("03", "%I"),
    ("04", "%M"),
    ("05", "%S"),
    ("06", "%y"),
    ("PM", "%p"),
    ("pm", "%p"),
    (".000000", ".%f"),
    (".000", ".%3"),
    ("1", "%-m"),
    ("2", "%-d"),
    ("3", "%-I"),
    ("4", "%-M"),
    ("5", "%-S"),
]


def _go_format(moment: datetime, layout: str) -> str:
    """Format ``moment`` with a Go time layout (``2006-01-02 15:04:05``)."""
    out: list[str] = []
    pos = 0
    while pos < len(layout):
        for token, directive in _GO_LAYOUT:
            if layout.startswith(token, pos):
                if directive == "Z07:00":
                    offset = moment.utcoffset()
                    out.append("Z" if not offset else moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:])
                elif directive == ".%3":
                    out.append(f".{moment.microsecond // 1000:03d}")
                elif directive == "%:z":
                    text = moment.strftime("%z")
                    out.append(f"{text[:3]}:{text[3:]}" if text else "")
                elif directive.startswith("%-"):
                    out.append(str(int(moment.strftime("%" + directive[2:]))))
                elif directive == "%e":
                    out.append(f"{moment.day:2d}")
                else:
                    out.append(moment.strftime(directive))
                pos += len(token)
                break
        else:
            out.append(layout[pos])
            pos += 1
    return "".join(out)


def _as_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return _date(value)
    raise _FunctionError(f"cannot use {_type(value)} as a time")


def _sprig_split(sep: Any, text: Any) -> dict[str, str]:
    return {f"_{i}": part for i, part in enumerate(_split(text, sep))}


def _empty(value: Any) -> bool:
    return value in (None, False, "", 0) or value == [] or value == {}


def _sprig_int(value: Any) -> int:
    try:
        return _int(value)
    except _FunctionError:
        try:
            return int(_float(value))
        except (_FunctionError, ValueError, OverflowError):
            return 0


def _sprig_float(value: Any) -> float:
    try:
        return _float(value)
    except _FunctionError:
        return 0.0


def _num_arg(value: Any) -> int | float:
    if _is_num(value):
        number: int | float = value
        return number
    return _sprig_int(value)


def _sprig_div(a: Any, b: Any) -> int:
    divisor = _sprig_int(b)
    if divisor == 0:
        raise _FunctionError("division by zero")
    return int(_sprig_int(a) / divisor)


def _sprig_mod(a: Any, b: Any) -> int:
    divisor = _sprig_int(b)
    if divisor == 0:
        raise _FunctionError("division by zero")
    return int(math.fmod(_sprig_int(a), divisor))


def _sprig_substr(start: Any, end: Any, text: Any) -> str:
    source = _str(text)
    low, high = _sprig_int(start), _sprig_int(end)
    if low < 0:
        return source[:high] if high >= 0 else source
    if high < 0 or high > len(source):
        return source[low:]
    return source[low:high]


def _sprig_trunc(count: Any, text: Any) -> str:
    source, size = _str(text), _sprig_int(count)
    return source[:size] if size >= 0 else source[size:]


def _sprig_regex_find_all(regex: Any, text: Any, count: Any) -> list[str]:
    found = [m.group(0) for m in _compile_regex(_checked_regex(regex)).finditer(_str(text))]
    limit = _sprig_int(count)
    return found if limit < 0 else found[:limit]


def _checked_regex(pattern: Any) -> str:
    text = _str(pattern, "regular expression")
    if len(text) > MAX_REGEX:
        raise _FunctionError(f"regular expression longer than {MAX_REGEX} characters")
    return text


def _sprig_regex_replace(regex: Any, text: Any, replacement: Any) -> str:
    repl = re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", _str(replacement))
    return _compile_regex(_checked_regex(regex)).sub(repl, _str(text))


def _sprig_regex_find(regex: Any, text: Any) -> str:
    match = _compile_regex(_checked_regex(regex)).search(_str(text))
    return match.group(0) if match else ""


def _array(items: Any) -> list[Any]:
    if not isinstance(items, list):
        raise _FunctionError(f"needs an array, not {_type(items)}")
    return items


def _uniq(items: Any) -> list[Any]:
    if not isinstance(items, list):
        raise _FunctionError("needs an array")
    out: list[Any] = []
    for item in items:
        if not any(equal(item, seen) for seen in out):
            out.append(item)
    return out


def _keys(value: Any) -> list[str]:
    if not isinstance(value, dict):
        raise _FunctionError(f"needs a map, not {_type(value)}")
    return list(value.keys())


def _values(value: Any) -> list[Any]:
    if not isinstance(value, dict):
        raise _FunctionError(f"needs a map, not {_type(value)}")
    return list(value.values())


def _first(value: Any) -> Any:
    if isinstance(value, list | str):
        return value[0] if value else None
    raise _FunctionError(f"needs an array, not {_type(value)}")


def _last(value: Any) -> Any:
    if isinstance(value, list | str):
        return value[-1] if value else None
    raise _FunctionError(f"needs an array, not {_type(value)}")


def _minmax(pick: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        items = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
        if not items or not all(_is_num(i) for i in items):
            raise _FunctionError("needs numbers")
        return pick(items)

    return run


def _sum(items: Any) -> int | float:
    if not isinstance(items, list) or not all(_is_num(i) for i in items):
        raise _FunctionError("needs an array of numbers")
    total: int | float = sum(items)
    return total


def _sort(items: Any, order: Any = "asc") -> list[Any]:
    if not isinstance(items, list):
        raise _FunctionError("needs an array")
    try:
        return sorted(items, reverse=order == "desc")
    except TypeError:
        raise _FunctionError("the items cannot be compared") from None


def _flatten(items: Any) -> list[Any]:
    if not isinstance(items, list):
        raise _FunctionError("needs an array")
    out: list[Any] = []
    stack = [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
            if len(out) > MAX_ITEMS:
                raise _FunctionError("too many items")
        else:
            stack.pop()
    return out


def _get(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        return container.get(_text(key))
    if isinstance(container, list) and isinstance(key, int) and not isinstance(key, bool):
        return container[key] if -len(container) <= key < len(container) else None
    return None


def _trim(text: Any, chars: Any = None) -> str:
    return _str(text).strip(None if chars is None else _str(chars))


def _index_of(text: Any, sub: Any) -> int:
    return _str(text).find(_str(sub))


def _last_index_of(text: Any, sub: Any) -> int:
    return _str(text).rfind(_str(sub))


def _title(text: Any) -> str:
    return re.sub(r"\b([a-z])", lambda m: m.group(1).upper(), _str(text))


def _coalesce(*args: Any) -> Any:
    for arg in args:
        if not _empty(arg):
            return arg
    return None


def _ternary(yes: Any, no: Any, condition: Any) -> Any:
    return yes if condition is True else no


def _abs(value: Any) -> int | float:
    if not _is_num(value):
        raise _FunctionError("needs a number")
    result: int | float = abs(value)
    return result


def _round(value: Any, precision: Any = 0) -> float:
    number = _float(value)
    digits = _sprig_int(precision)
    scale = 10.0 ** max(min(digits, 15), 0)
    # Go rounds half away from zero
    return math.floor(abs(number) * scale + 0.5) / scale * (1 if number >= 0 else -1)


def _to_pairs(value: Any) -> list[list[Any]]:
    if not isinstance(value, dict):
        raise _FunctionError("needs a map")
    return [[k, v] for k, v in value.items()]


def _from_pairs(value: Any) -> dict[str, Any]:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise _FunctionError("needs an array of [key, value] pairs")
    return {_text(k): v for k, v in value}


def _string_fn(value: Any) -> str:
    if isinstance(value, dict | list):
        return to_json(value)
    return _text(value)


def _as_int(value: Any) -> int:
    """Argo's asInt: a number or a numeric string (``"3"``, ``"3.0"``) as an integer."""
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                raise _FunctionError(f"cannot convert {value[:50]!r} to int") from None
            if not number.is_integer():
                raise _FunctionError(f"cannot convert {value[:50]!r} to int") from None
            return int(number)
    return _int(value)


def _sha(name: str) -> Callable[[Any], str]:
    def run(text: Any) -> str:
        return hashlib.new(name, _text(text).encode()).hexdigest()

    return run


def _list(*items: Any) -> list[Any]:
    return list(items)


def _dict(*items: Any) -> dict[str, Any]:
    return {_text(items[i]): items[i + 1] if i + 1 < len(items) else "" for i in range(0, len(items), 2)}


def _has_key(container: Any, key: Any) -> bool:
    return isinstance(container, dict) and _text(key) in container


def _quote(*items: Any) -> str:
    return " ".join(json.dumps(_text(i), ensure_ascii=False) for i in items if i is not None)


def _squote(*items: Any) -> str:
    return " ".join(f"'{_text(i)}'" for i in items if i is not None)


def _indent(count: Any, text: Any) -> str:
    pad = " " * max(_sprig_int(count), 0)
    return pad + _str(text).replace("\n", "\n" + pad)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # expr-lang builtins
    "len": _len,
    "abs": _abs,
    "int": _int,
    "float": _float,
    "string": _string_fn,
    "type": _type,
    "upper": lambda s: _str(s).upper(),
    "lower": lambda s: _str(s).lower(),
    "trim": _trim,
    "trimPrefix": lambda s, p: _str(s).removeprefix(_str(p)),
    "trimSuffix": lambda s, p: _str(s).removesuffix(_str(p)),
    "split": _split,
    "join": _join,
    "replace": lambda s, old, new: _str(s).replace(_str(old), _str(new)),
    "repeat": _repeat,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "hasPrefix": lambda s, p: _str(s).startswith(_str(p)),
    "hasSuffix": lambda s, p: _str(s).endswith(_str(p)),
    "keys": _keys,
    "values": _values,
    "first": _first,
    "last": _last,
    "get": _get,
    "max": _minmax(max),
    "min": _minmax(min),
    "sum": _sum,
    "mean": lambda items: _sum(items) / len(items) if isinstance(items, list) and items else 0,
    "ceil": lambda v: float(math.ceil(_float(v))),
    "floor": lambda v: float(math.floor(_float(v))),
    "round": lambda v: _round(v),
    "reverse": lambda items: list(reversed(_array(items))),
    "sort": _sort,
    "uniq": _uniq,
    "concat": lambda *lists: [i for part in lists for i in part] if all(isinstance(p, list) for p in lists) else [],
    "flatten": _flatten,
    "toPairs": _to_pairs,
    "fromPairs": _from_pairs,
    "toJSON": lambda v: to_json(v, indent=2),
    "fromJSON": _from_json,
    "toBase64": _b64enc,
    "fromBase64": _b64dec,
    "now": lambda: datetime.now(UTC),
    "duration": _duration,
    "date": _date,
    # Argo's additions
    "asInt": _as_int,
    "asFloat": _float,
    "toJson": to_json,
    "jsonpath": _jsonpath,
    # sprig (arguments in sprig's order: the piped value last)
    "sprig.upper": lambda s: _text(s).upper(),
    "sprig.lower": lambda s: _text(s).lower(),
    "sprig.title": lambda s: _title(_text(s)),
    "sprig.trim": lambda s: _text(s).strip(),
    "sprig.trimAll": lambda chars, s: _text(s).strip(_str(chars)),
    "sprig.trimPrefix": lambda p, s: _text(s).removeprefix(_str(p)),
    "sprig.trimSuffix": lambda p, s: _text(s).removesuffix(_str(p)),
    "sprig.replace": lambda old, new, s: _text(s).replace(_str(old), _str(new)),
    "sprig.contains": lambda sub, s: _str(sub) in _text(s),
    "sprig.hasPrefix": lambda p, s: _text(s).startswith(_str(p)),
    "sprig.hasSuffix": lambda p, s: _text(s).endswith(_str(p)),
    "sprig.repeat": lambda n, s: _repeat(_text(s), _sprig_int(n)),
    "sprig.substr": _sprig_substr,
    "sprig.trunc": _sprig_trunc,
    "sprig.quote": _quote,
    "sprig.squote": _squote,
    "sprig.cat": lambda *items: " ".join(_text(i) for i in items if i is not None),
    "sprig.indent": _indent,
    "sprig.nindent": lambda n, s: "\n" + _indent(n, s),
    "sprig.default": lambda default, *given: given[0] if given and not _empty(given[0]) else default,
    "sprig.empty": _empty,
    "sprig.coalesce": _coalesce,
    "sprig.ternary": _ternary,
    "sprig.join": lambda sep, items: _join(items if isinstance(items, list) else [items], _text(sep)),
    "sprig.split": _sprig_split,
    "sprig.splitList": lambda sep, s: _split(s, sep),
    "sprig.toString": _string_fn,
    "sprig.toJson": to_json,
    "sprig.toPrettyJson": lambda v: to_json(v, indent=2),
    "sprig.fromJson": _from_json,
    "sprig.b64enc": _b64enc,
    "sprig.b64dec": _b64dec,
    "sprig.atoi": _sprig_int,
    "sprig.int": _sprig_int,
    "sprig.int64": _sprig_int,
    "sprig.float64": _sprig_float,
    "sprig.add": lambda *n: sum(_num_arg(x) for x in n),
    "sprig.add1": lambda n: _num_arg(n) + 1,
    "sprig.sub": lambda a, b: _num_arg(a) - _num_arg(b),
    "sprig.mul": lambda *n: math.prod(_num_arg(x) for x in n),
    "sprig.div": _sprig_div,
    "sprig.mod": _sprig_mod,
    "sprig.max": lambda *n: max(_num_arg(x) for x in n),
    "sprig.min": lambda *n: min(_num_arg(x) for x in n),
    "sprig.list": _list,
    "sprig.dict": _dict,
    "sprig.get": lambda d, k: _get(d, k) if _get(d, k) is not None else "",
    "sprig.hasKey": _has_key,
    "sprig.keys": _keys,
    "sprig.values": _values,
    "sprig.first": _first,
    "sprig.last": _last,
    "sprig.rest": lambda items: items[1:] if isinstance(items, list) else [],
    "sprig.initial": lambda items: items[:-1] if isinstance(items, list) else [],
    "sprig.uniq": _uniq,
    "sprig.has": lambda item, items: isinstance(items, list) and any(equal(item, i) for i in items),
    "sprig.append": lambda items, item: [*items, item] if isinstance(items, list) else [item],
    "sprig.prepend": lambda items, item: [item, *items] if isinstance(items, list) else [item],
    "sprig.concat": lambda *lists: [i for part in lists if isinstance(part, list) for i in part],
    "sprig.reverse": lambda items: list(reversed(items)) if isinstance(items, list) else [],
    "sprig.sortAlpha": lambda items: sorted(_text(i) for i in items) if isinstance(items, list) else [],
    "sprig.regexMatch": lambda r, s: _compile_regex(_checked_regex(r)).search(_str(s)) is not None,
    "sprig.regexFind": _sprig_regex_find,
    "sprig.regexFindAll": _sprig_regex_find_all,
    "sprig.regexReplaceAll": _sprig_regex_replace,
    "sprig.regexSplit": lambda r, s, n: _compile_regex(_checked_regex(r)).split(
        _str(s), max(_sprig_int(n) - 1, 0) if _sprig_int(n) >= 0 else 0
    ),
    "sprig.sha256sum": _sha("sha256"),
    "sprig.date": lambda layout, when: _go_format(_as_time(when), _str(layout)),
    "sprig.dateInZone": lambda layout, when, _zone: _go_format(_as_time(when), _str(layout)),
    "sprig.now": lambda: datetime.now(UTC),
    "sprig.unixEpoch": lambda when: str(int(_as_time(when).timestamp())),
    "sprig.sha1sum": _sha("sha1"),
}


# ============================================================================ public API


def evaluate(
    text: str,
    env: Mapping[str, Any] | None = None,
    *,
    dialect: Dialect = "expr",
    now: Callable[[], datetime] | None = None,
) -> Any:
    """Evaluate expression ``text`` with variables ``env`` (nested JSON-like values, plus aware
    datetimes/timedeltas); ``now`` is what ``now()`` returns (the current UTC time by default)."""
    tree = parse(text, dialect)
    ctx = _Context(text, env or {}, dialect, now=now)
    try:
        return _evaluate(tree, ctx)
    except RecursionError:
        raise _error("expression nested too deeply", None, text) from None


def evaluate_bool(
    text: str,
    env: Mapping[str, Any] | None = None,
    *,
    dialect: Dialect = "expr",
    now: Callable[[], datetime] | None = None,
) -> bool:
    """Evaluate ``text``; ExprError unless the result is a bool."""
    value = evaluate(text, env, dialect=dialect, now=now)
    if not isinstance(value, bool):
        raise _error(f"the expression must evaluate to true or false, not {_type(value)} {_text(value)!r}", None, text)
    return value


def format_value(value: Any) -> str:
    """An expression's result as Argo substitutes it: strings as-is, the rest as compact JSON.

    ``nil`` is an error (Argo fails a node whose expression tag yields nil)."""
    if value is None:
        raise ExprError("the expression evaluated to nil (an absent value); use '??' to give a fallback")
    return _text(value)


def nest(scope: Mapping[str, str]) -> dict[str, Any]:
    """Dotted variable names as nested maps (``{"a.b": 1}`` -> ``{"a": {"b": 1}}``), as Argo exposes
    them to expressions. Where a name is both a value and a prefix (``workflow.parameters``),
    the map wins."""
    root: dict[str, Any] = {}
    for key in sorted(scope, key=lambda k: k.count(".")):
        value = scope[key]
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = value
    return root
