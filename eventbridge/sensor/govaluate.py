"""A safe evaluator for the govaluate expressions of sensor ``exprs`` filters.

Argo Events evaluates ``filters.exprs[].expr`` with Knetic/govaluate over variables bound by
``fields``. This module implements that language with a tokenizer, a precedence-climbing parser
and a tree-walking evaluator. Nothing is ever passed to Python's ``eval``.

Supported (govaluate's semantics):

* literals: numbers (always float64), ``'single'`` or ``"double"`` quoted strings, ``true``,
  ``false``; variables (``name``, ``a.b`` walks into objects, ``[any name]``, ``\\`` escapes);
  arrays ``(1, 2, 3)`` for ``in``.
* operators, lowest to highest: ``?:`` / ``??``, ``||``, ``&&``,
  ``== != > >= < <= =~ !~ in``, ``& | ^``, ``<< >>``, ``+ -``, ``* / %``, ``**``, prefix
  ``! - ~``.
* types are strict as in govaluate: ``&&``/``||``/``!`` need bools, arithmetic needs numbers
  (``+`` concatenates when either side is a string), ordering needs two numbers or two strings,
  ``==`` is deep equality without coercion (``"1" == 1`` is false), ``=~`` needs strings.

Limits keep hostile manifests cheap: expression length, nesting depth, string sizes.
Every problem raises :class:`eventbridge.errors.ExprError` with the column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventbridge.errors import ExprError
from eventbridge.expr.paths import format_number
from eventbridge.expr.regex import compile_user_regex, found_in

MAX_LENGTH = 4096
MAX_DEPTH = 64
MAX_STRING = 1 << 20
MAX_REGEX = 1024

_OPERATORS = (
    "**",
    "==",
    "!=",
    ">=",
    "<=",
    "=~",
    "!~",
    "&&",
    "||",
    "<<",
    ">>",
    "??",
    "+",
    "-",
    "*",
    "/",
    "%",
    ">",
    "<",
    "!",
    "~",
    "&",
    "|",
    "^",
    "?",
    ":",
    "(",
    ")",
    ",",
)
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT_START = re.compile(r"[A-Za-z_\\]")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "num", "str", "bool", "var", "op", "in"
    value: Any
    column: int


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; raises ExprError on an unexpected character."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        column = index + 1
        if char.isspace():
            index += 1
            continue
        if char in "'\"":
            value, index = _read_string(text, index)
            tokens.append(Token("str", value, column))
            continue
        if char == "[":
            end = text.find("]", index)
            if end < 0:
                raise ExprError(f"unclosed '[' at column {column}")
            tokens.append(Token("var", text[index + 1 : end], column))
            index = end + 1
            continue
        number = _NUMBER.match(text, index)
        if number and char not in "+-":
            literal = number.group(0)
            number_value = float(int(literal, 16)) if literal[:2] in ("0x", "0X") else float(literal)
            tokens.append(Token("num", number_value, column))
            index = number.end()
            continue
        if _IDENT_START.match(char):
            name, index = _read_identifier(text, index)
            if name in ("true", "false"):
                tokens.append(Token("bool", name == "true", column))
            elif name == "in":
                tokens.append(Token("op", "in", column))
            else:
                tokens.append(Token("var", name, column))
            continue
        for operator in _OPERATORS:
            if text.startswith(operator, index):
                tokens.append(Token("op", operator, column))
                index += len(operator)
                break
        else:
            raise ExprError(f"unexpected character {char!r} at column {column}")
    return tokens


def _read_string(text: str, index: int) -> tuple[str, int]:
    quote = text[index]
    out: list[str] = []
    position = index + 1
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            following = text[position + 1]
            out.append(escapes.get(following, "\\" + following))
            position += 2
            continue
        if char == quote:
            return "".join(out), position + 1
        out.append(char)
        position += 1
    raise ExprError(f"unclosed string starting at column {index + 1}")


def _read_identifier(text: str, index: int) -> tuple[str, int]:
    out: list[str] = []
    position = index
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            out.append(text[position + 1])
            position += 2
        elif char.isalnum() or char in "_.":
            out.append(char)
            position += 1
        else:
            break
    if position == index:
        raise ExprError(f"unexpected character {text[index]!r} at column {index + 1}")
    return "".join(out), position


# ---------------------------------------------------------------------------------------------
# Parser: a small tree of tuples
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    op: str  # "lit", "var", "array", "unary", "binary", "ternary"
    value: Any
    children: tuple[Node, ...]
    column: int


_BINARY_LEVELS: tuple[tuple[str, ...], ...] = (
    ("||",),
    ("&&",),
    ("==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"),
    ("&", "|", "^"),
    ("<<", ">>"),
    ("+", "-"),
    ("*", "/", "%"),
    ("**",),
)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_op(self, *operators: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "op" and token.value in operators

    def parse(self) -> Node:
        if not self.tokens:
            raise ExprError("empty expression")
        node = self.ternary()
        token = self.peek()
        if token is not None:
            raise ExprError(f"unexpected {token.value!r} at column {token.column}")
        return node

    def ternary(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels")
        node = self.binary(0)
        while self.at_op("?", "??"):
            token = self.take()
            if token.value == "??":
                node = Node("binary", "??", (node, self.binary(0)), token.column)
                continue
            then = self.ternary()
            if not self.at_op(":"):
                raise ExprError(f"missing ':' for the '?' at column {token.column}")
            self.take()
            otherwise = self.ternary()
            node = Node("ternary", "?", (node, then, otherwise), token.column)
        self.depth -= 1
        return node

    def binary(self, level: int) -> Node:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.at_op(*_BINARY_LEVELS[level]):
            token = self.take()
            # ``**`` is right-associative, everything else left-associative.
            right = self.binary(level) if token.value == "**" else self.binary(level + 1)
            node = Node("binary", token.value, (node, right), token.column)
        return node

    def unary(self) -> Node:
        if self.at_op("!", "-", "~"):
            token = self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels")
            operand = self.unary()
            self.depth -= 1
            return Node("unary", token.value, (operand,), token.column)
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise ExprError("expression ends where a value was expected")
        self.take()
        if token.kind in ("num", "str", "bool"):
            return Node("lit", token.value, (), token.column)
        if token.kind == "var":
            return Node("var", token.value, (), token.column)
        if token.value == "(":
            items = [self.ternary()]
            while self.at_op(","):
                self.take()
                items.append(self.ternary())
            if not self.at_op(")"):
                raise ExprError(f"missing ')' for the '(' at column {token.column}")
            self.take()
            if len(items) == 1:
                return items[0]
            return Node("array", None, tuple(items), token.column)
        raise ExprError(f"unexpected {token.value!r} at column {token.column}")


def parse(text: str) -> Node:
    """Parse a govaluate expression into a tree; raises ExprError."""
    return _Parser(tokenize(text)).parse()


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def normalize(value: Any) -> Any:
    """govaluate sees every number as float64: convert ints (not bools), recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): normalize(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(item) for item in value]
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def deep_equal(left: Any, right: Any) -> bool:
    """Go's reflect.DeepEqual on normalized values: same kind and same content."""
    if type(left) is type(right) and (type(left) is str or type(left) is float):
        return bool(left == right)  # the common case, without the general walk
    if _kind(left) != _kind(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(deep_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(deep_equal(left[key], right[key]) for key in left)
    return bool(left == right)


def go_text(value: Any) -> str:
    """Go's ``%v`` for the values govaluate handles."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return format_number(value)
        return repr(value) if not math.isinf(value) else ("+Inf" if value > 0 else "-Inf")
    if value is None:
        return "<nil>"
    return str(value)


def _wrap64(value: int) -> int:
    wrapped = value & 0xFFFFFFFFFFFFFFFF
    return wrapped - (1 << 64) if wrapped >= 1 << 63 else wrapped


def _int64(value: float) -> int:
    if math.isnan(value) or math.isinf(value):
        return 0
    return _wrap64(int(value))


def evaluate(node: Node, variables: Mapping[str, Any]) -> Any:
    """Evaluate a parsed tree over ``variables`` (normalized first); raises ExprError."""
    return _Evaluator({name: normalize(value) for name, value in variables.items()}).run(node)


class _Evaluator:
    def __init__(self, variables: dict[str, Any]) -> None:
        self.variables = variables

    def run(self, node: Node) -> Any:
        if node.op == "lit":
            return node.value
        if node.op == "var":
            return self.variable(node)
        if node.op == "array":
            return [self.run(child) for child in node.children]
        if node.op == "unary":
            return self.unary(node)
        if node.op == "ternary":
            condition = self.run(node.children[0])
            if not isinstance(condition, bool):
                shown = go_text(condition)
                raise ExprError(f"value {shown!r} before '?' at column {node.column} is not a bool")
            return self.run(node.children[1] if condition else node.children[2])
        return self.binary(node)

    def variable(self, node: Node) -> Any:
        name: str = node.value
        if name in self.variables:
            return self.variables[name]
        head, _, rest = name.partition(".")
        if rest and head in self.variables:
            value = self.variables[head]
            for part in rest.split("."):
                if isinstance(value, dict) and part in value:
                    value = value[part]
                else:
                    raise ExprError(f"no field {part!r} in {head!r} (column {node.column})")
            return value
        raise ExprError(f"no parameter {name!r} found (column {node.column})")

    def unary(self, node: Node) -> Any:
        operand = self.run(node.children[0])
        if node.value == "!":
            if not isinstance(operand, bool):
                raise ExprError(f"'!' at column {node.column} needs a bool, got {go_text(operand)!r}")
            return not operand
        if not isinstance(operand, float):
            shown = go_text(operand)
            raise ExprError(f"{node.value!r} at column {node.column} needs a number, got {shown!r}")
        return -operand if node.value == "-" else float(~_int64(operand))

    def binary(self, node: Node) -> Any:
        operator: str = node.value
        left = self.run(node.children[0])
        if operator in ("&&", "||"):
            if not isinstance(left, bool):
                raise ExprError(f"{operator!r} at column {node.column} needs bools, got {go_text(left)!r}")
            if (operator == "&&" and not left) or (operator == "||" and left):
                return left
            right = self.run(node.children[1])
            if not isinstance(right, bool):
                raise ExprError(f"{operator!r} at column {node.column} needs bools, got {go_text(right)!r}")
            return right
        if operator == "??":
            return left if left is not None else self.run(node.children[1])
        right = self.run(node.children[1])
        if operator == "==":
            return deep_equal(left, right)
        if operator == "!=":
            return not deep_equal(left, right)
        if operator == "in":
            if not isinstance(right, list):
                raise ExprError(f"'in' at column {node.column} needs an array on the right, e.g. (1, 2)")
            return any(deep_equal(left, item) for item in right)
        if operator in ("=~", "!~"):
            if not isinstance(left, str) or not isinstance(right, str):
                raise ExprError(f"{operator!r} at column {node.column} needs two strings")
            if len(right) > MAX_REGEX:
                raise ExprError(f"regular expression longer than {MAX_REGEX} characters")
            try:
                found = found_in(compile_user_regex(right), left)  # RE2: linear time
            except re.error as err:
                raise ExprError(f"invalid regular expression {right!r}: {err}") from None
            return found if operator == "=~" else not found
        if operator in (">", ">=", "<", "<="):
            both_numbers = isinstance(left, float) and isinstance(right, float)
            both_strings = isinstance(left, str) and isinstance(right, str)
            if not (both_numbers or both_strings):
                raise ExprError(
                    f"{operator!r} at column {node.column} compares {go_text(left)!r} with "
                    f"{go_text(right)!r}:"
                    " both must be numbers or both strings"
                )
            if operator == ">":
                return bool(left > right)
            if operator == ">=":
                return bool(left >= right)
            if operator == "<":
                return bool(left < right)
            return bool(left <= right)
        if operator == "+" and (isinstance(left, str) or isinstance(right, str)):
            joined = go_text(left) + go_text(right)
            if len(joined) > MAX_STRING:
                raise ExprError("string result too long")
            return joined
        if not isinstance(left, float) or not isinstance(right, float):
            raise ExprError(
                f"{operator!r} at column {node.column} needs numbers, got {go_text(left)!r} and {go_text(right)!r}"
            )
        return _arithmetic(operator, left, right)


def _arithmetic(operator: str, left: float, right: float) -> float:
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    if operator == "/":
        if right == 0:
            return (
                math.nan
                if left == 0 or math.isnan(left)
                else math.copysign(math.inf, left) * (math.copysign(1.0, right))
            )
        return left / right
    if operator == "%":
        return math.fmod(left, right) if right != 0 else math.nan
    if operator == "**":
        try:
            return float(math.pow(left, right))
        except (OverflowError, ValueError):
            return math.inf if left > 0 else math.nan
    left_int, right_int = _int64(left), _int64(right)
    if operator == "&":
        return float(left_int & right_int)
    if operator == "|":
        return float(left_int | right_int)
    if operator == "^":
        return float(left_int ^ right_int)
    shift = max(0, min(right_int, 64))
    if operator == "<<":
        return float(_wrap64(left_int << shift))
    return float(left_int >> shift)
