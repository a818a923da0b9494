"""A safe evaluator for the govaluate expressions of sensor ``exprs`` filters.

Argo Events evaluates ``filters.exprs[].expr`` with Knetic/govaluate over variables bound by
``fields``. This module implements that language with a tokenizer, a precedence-climbing parser
and an evaluator that compiles the
tree once into nested closures. Nothing is ever passed to Python's ``eval``.

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
import operator as operator_module
import re
from collections.abc import Callable, Mapping
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


#: A compiled (sub)expression: a function of the normalized variables.
_Compiled = Callable[[Mapping[str, Any]], Any]


def compile_tree(node: Node) -> Callable[[Mapping[str, Any]], Any]:
    """Compile a parsed tree once into a function of the variables (normalized on each call).

    The tree becomes nested closures, so evaluating skips the per-node dispatch; values, the
    order of evaluation and every error are the language's as described above."""
    run = _compile(node)

    def program(variables: Mapping[str, Any]) -> Any:
        return run({name: normalize(value) for name, value in variables.items()})

    return program


def evaluate(node: Node, variables: Mapping[str, Any]) -> Any:
    """Evaluate a parsed tree over ``variables`` (normalized first); raises ExprError."""
    return compile_tree(node)(variables)


def _compile(node: Node) -> _Compiled:
    if node.op == "lit":
        value = node.value
        return lambda _variables: value
    if node.op == "var":
        return _compile_variable(str(node.value), node.column)
    if node.op == "array":
        items = tuple(_compile(child) for child in node.children)
        return lambda variables: [item(variables) for item in items]
    if node.op == "unary":
        return _compile_unary(node)
    if node.op == "ternary":
        return _compile_ternary(node)
    return _compile_binary(node)


def _compile_variable(name: str, column: int) -> _Compiled:
    head, _, rest = name.partition(".")
    parts = rest.split(".") if rest else []

    def variable(variables: Mapping[str, Any]) -> Any:
        if name in variables:
            return variables[name]
        if rest and head in variables:
            value = variables[head]
            for part in parts:
                if isinstance(value, dict) and part in value:
                    value = value[part]
                else:
                    raise ExprError(f"no field {part!r} in {head!r} (column {column})")
            return value
        raise ExprError(f"no parameter {name!r} found (column {column})")

    return variable


def _compile_ternary(node: Node) -> _Compiled:
    condition, when_true, when_false = (_compile(child) for child in node.children)
    column = node.column

    def ternary(variables: Mapping[str, Any]) -> Any:
        chosen = condition(variables)
        if not isinstance(chosen, bool):
            raise ExprError(f"value {go_text(chosen)!r} before '?' at column {column} is not a bool")
        return when_true(variables) if chosen else when_false(variables)

    return ternary


def _compile_unary(node: Node) -> _Compiled:
    operand = _compile(node.children[0])
    operator, column = str(node.value), node.column
    if operator == "!":

        def negation(variables: Mapping[str, Any]) -> Any:
            value = operand(variables)
            if not isinstance(value, bool):
                raise ExprError(f"'!' at column {column} needs a bool, got {go_text(value)!r}")
            return not value

        return negation

    def numeric(variables: Mapping[str, Any]) -> Any:
        value = operand(variables)
        if not isinstance(value, float):
            raise ExprError(f"{operator!r} at column {column} needs a number, got {go_text(value)!r}")
        return -value if operator == "-" else float(~_int64(value))

    return numeric


def _compile_binary(node: Node) -> _Compiled:
    operator, column = str(node.value), node.column
    left, right = _compile(node.children[0]), _compile(node.children[1])
    if operator in ("&&", "||"):
        stops_on = operator == "||"  # && stops at the first false, || at the first true

        def logical(variables: Mapping[str, Any]) -> Any:
            value = left(variables)
            if not isinstance(value, bool):
                raise ExprError(f"{operator!r} at column {column} needs bools, got {go_text(value)!r}")
            if value is stops_on:
                return value
            other = right(variables)
            if not isinstance(other, bool):
                raise ExprError(f"{operator!r} at column {column} needs bools, got {go_text(other)!r}")
            return other

        return logical
    if operator == "??":
        return lambda variables: value if (value := left(variables)) is not None else right(variables)
    operation = _operation(operator, column)
    return lambda variables: operation(left(variables), right(variables))


def _operation(operator: str, column: int) -> Callable[[Any, Any], Any]:
    """The function of two evaluated operands that ``operator`` applies."""
    if operator == "==":
        return deep_equal
    if operator == "!=":
        return lambda left, right: not deep_equal(left, right)
    if operator == "in":

        def contained(left: Any, right: Any) -> bool:
            if not isinstance(right, list):
                raise ExprError(f"'in' at column {column} needs an array on the right, e.g. (1, 2)")
            return any(deep_equal(left, item) for item in right)

        return contained
    if operator in ("=~", "!~"):
        wanted = operator == "=~"

        def matches(left: Any, right: Any) -> bool:
            if not isinstance(left, str) or not isinstance(right, str):
                raise ExprError(f"{operator!r} at column {column} needs two strings")
            if len(right) > MAX_REGEX:
                raise ExprError(f"regular expression longer than {MAX_REGEX} characters")
            try:
                found = found_in(compile_user_regex(right), left)  # RE2: linear time
            except re.error as err:
                raise ExprError(f"invalid regular expression {right!r}: {err}") from None
            return found == wanted

        return matches
    if operator in _ORDERINGS:
        compare = _ORDERINGS[operator]

        def ordering(left: Any, right: Any) -> bool:
            both_numbers = isinstance(left, float) and isinstance(right, float)
            both_strings = isinstance(left, str) and isinstance(right, str)
            if not (both_numbers or both_strings):
                raise ExprError(
                    f"{operator!r} at column {column} compares {go_text(left)!r} with {go_text(right)!r}:"
                    " both must be numbers or both strings"
                )
            return bool(compare(left, right))

        return ordering

    def arithmetic(left: Any, right: Any) -> Any:
        if operator == "+" and (isinstance(left, str) or isinstance(right, str)):
            joined = go_text(left) + go_text(right)
            if len(joined) > MAX_STRING:
                raise ExprError("string result too long")
            return joined
        if not isinstance(left, float) or not isinstance(right, float):
            raise ExprError(
                f"{operator!r} at column {column} needs numbers, got {go_text(left)!r} and {go_text(right)!r}"
            )
        return _arithmetic(operator, left, right)

    return arithmetic


_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator_module.gt,
    ">=": operator_module.ge,
    "<": operator_module.lt,
    "<=": operator_module.le,
}


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
