"""A subset of Go's ``text/template`` with sprig functions, for Argo Events' templates.

Argo renders ``dataTemplate`` / ``contextTemplate`` (trigger parameters) and the data filter
``template`` with Go's text/template and sprig over ``{"Input": value}``; numbers decoded from
JSON are Go ``float64`` values. This module implements the language on decoded Python values:

* text and actions ``{{ pipeline }}``, ``{{-``/``-}}`` whitespace trimming, ``{{/* comments */}}``;
* operands: ``.``, field chains ``.Input.a.b``, ``$``, variables ``$x`` (``:=`` declares, ``=``
  assigns), literals (strings ``"..."`` and raw strings, numbers, ``true``, ``false``, ``nil``),
  parenthesised pipelines with field chains ``(index .l 0).name``;
* pipelines ``x | f a b`` (the piped value becomes the last argument) and space-separated args;
* ``if``/``else if``/``else``/``end``, ``range`` (lists, maps in key order, integers; ``$i, $v :=``;
  ``else``; ``break``/``continue``), ``with``/``else with``/``else``;
* builtins ``and or not len index slice print printf println eq ne lt le gt ge urlquery`` and a sprig
  subset (see :data:`FUNCTIONS`). There is no environment or file access: ``env`` and
  ``expandenv`` are refused at parse time like any unknown function.

Go semantics kept on purpose: a missing map key is "no value" (printed ``<no value>``), a field of
``null`` is an error, ``1000000.0`` prints as ``1e+06``, ``eq 1 .n`` with a JSON number ``n`` is an
"incompatible types" error (JSON numbers are floats; write ``eq .n 1.0``). Limits (template
length, output size, evaluation steps, nesting) keep hostile manifests cheap. Every problem raises
:class:`eventbridge.errors.ExprError`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from eventbridge.errors import ExprError

MAX_TEMPLATE = 64 * 1024
MAX_OUTPUT = 1 << 20
MAX_STEPS = 200_000
MAX_DEPTH = 64


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key yields (prints ``<no value>``)."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE: Any = _NoValue()


class _Abort(Exception):
    """Internal: ``break`` / ``continue`` inside ``range``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# ---------------------------------------------------------------------------------------------
# Go formatting helpers
# ---------------------------------------------------------------------------------------------


def go_type_name(value: Any) -> str:
    """The Go type a decoded JSON value would have (for error messages)."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def _shortest_digits(number: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits and the decimal point position (Go's ``digs``)."""
    text = repr(abs(number))
    mantissa, _, exponent_text = text.partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + exponent - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    if digits == "0":
        point = 1
    return digits, point


def go_format_float(number: float, *, json_style: bool = False) -> str:
    """Go's ``fmt`` ``%v`` of a float64 (``strconv`` 'g', shortest; exponent from 1e+06), or, with
    ``json_style``, encoding/json's format (exponent only below 1e-6 or from 1e21)."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 and not json_style else "0"
    digits, point = _shortest_digits(number)
    sign = "-" if number < 0 else ""
    exponent = point - 1
    # encoding/json: exponent below 1e-6 and from 1e21; strconv 'g' (shortest): below 1e-4, from 1e+06
    json_exponent = abs(number) < 1e-6 or abs(number) >= 1e21
    use_exponent = json_exponent if json_style else exponent < -4 or exponent >= 6
    if use_exponent:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_sign = "-" if exponent < 0 else "+"
        exp_digits = f"{abs(exponent):02d}"
        if json_style and exponent < 0:
            exp_digits = str(abs(exponent))  # encoding/json cleans e-07 to e-7
        return f"{sign}{mantissa}e{exp_sign}{exp_digits}"
    if point <= 0:
        return f"{sign}0.{'0' * (-point)}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: printable characters kept, others escaped."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif char == "\a":
            out.append("\\a")
        elif char == "\b":
            out.append("\\b")
        elif char == "\f":
            out.append("\\f")
        elif char == "\v":
            out.append("\\v")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif char.isprintable() or char == " ":
            out.append(char)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _go_json_value(value: Any) -> Any:
    return None if value is NO_VALUE else value


def go_json(value: Any) -> str:
    """Go's ``json.Marshal``: compact, map keys sorted, ``<>&`` escaped, Go float format."""
    parts: list[str] = []

    def emit(item: Any) -> None:
        if item is None or item is NO_VALUE:
            parts.append("null")
        elif item is True:
            parts.append("true")
        elif item is False:
            parts.append("false")
        elif isinstance(item, int):
            parts.append(str(item))
        elif isinstance(item, float):
            if math.isnan(item) or math.isinf(item):
                raise ExprError(f"json: unsupported value: {go_format_float(item)}")
            parts.append(go_format_float(item, json_style=True))
        elif isinstance(item, str):
            encoded = json.dumps(item, ensure_ascii=False)
            parts.append(encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
        elif isinstance(item, list | tuple):
            parts.append("[")
            for index, element in enumerate(item):
                if index:
                    parts.append(",")
                emit(element)
            parts.append("]")
        elif isinstance(item, dict):
            parts.append("{")
            for index, key in enumerate(sorted(item, key=str)):
                if index:
                    parts.append(",")
                emit(str(key))
                parts.append(":")
                emit(item[key])
            parts.append("}")
        else:
            raise ExprError(f"json: unsupported type {go_type_name(item)}")

    emit(value)
    return "".join(parts)


def go_print(value: Any, *, nested: bool = False) -> str:
    """Go's ``fmt.Sprint`` of a value as text/template prints it."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>" if nested else "<no value>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_format_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_print(item, nested=True) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_print(value[key], nested=True)}" for key in sorted(value, key=str)) + "]"
    return str(value)


def go_truth(value: Any) -> bool:
    """Go template truth: false, 0, nil, no value and empty strings, lists and maps are false."""
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def _from_data(value: Any) -> Any:
    """A value taken out of the data: JSON integers are Go float64 values."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # field var ident string number bool nil pipe lparen rparen declare assign comma eof
    value: Any
    column: int
    spaced: bool = False  # whitespace right before it (``.a .b`` is two operands, ``.a.b`` one)


_SPACE = " \t\r\n"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD = re.compile(r"\.[A-Za-z_][A-Za-z0-9_]*")
_VARIABLE = re.compile(r"\$[A-Za-z0-9_]*")
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)"
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", '"': '"', "'": "'"}  # fmt: skip


def _read_quoted(text: str, start: int, where: str) -> tuple[str, int]:
    out: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == '"':
            return "".join(out), position + 1
        if char == "\n":
            break
        if char == "\\" and position + 1 < len(text):
            following = text[position + 1]
            if following in _ESCAPES:
                out.append(_ESCAPES[following])
                position += 2
                continue
            hex_length = {"x": 2, "u": 4, "U": 8}.get(following)
            if hex_length:
                digits = text[position + 2 : position + 2 + hex_length]
                if len(digits) == hex_length and all(c in "0123456789abcdefABCDEF" for c in digits):
                    out.append(chr(int(digits, 16)))
                    position += 2 + hex_length
                    continue
            raise ExprError(f"{where}: invalid escape \\{following} in string")
        out.append(char)
        position += 1
    raise ExprError(f"{where}: unterminated quoted string")


def _lex_action(text: str, where: str) -> list[_Token]:
    """Tokens of one action (the text between the delimiters)."""
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        column = position + 1
        if char in _SPACE:
            position += 1
            continue
        if char == '"':
            value, position = _read_quoted(text, position, where)
            tokens.append(_Token("string", value, column))
            continue
        if char == "`":
            end = text.find("`", position + 1)
            if end < 0:
                raise ExprError(f"{where}: unterminated raw quoted string")
            tokens.append(_Token("string", text[position + 1 : end], column))
            position = end + 1
            continue
        if char == "'":
            match = re.match(r"'(\\.|[^'\\])'", text[position:])
            if match is None:
                raise ExprError(f"{where}: malformed character constant")
            body = match.group(1)
            tokens.append(_Token("number", ord(_ESCAPES.get(body[1], body[1]) if len(body) == 2 else body), column))
            position += match.end()
            continue
        if char == "|":
            tokens.append(_Token("pipe", "|", column))
            position += 1
            continue
        if char == "(":
            tokens.append(_Token("lparen", "(", column))
            position += 1
            continue
        if char == ")":
            tokens.append(_Token("rparen", ")", column))
            position += 1
            continue
        if char == ",":
            tokens.append(_Token("comma", ",", column))
            position += 1
            continue
        if text.startswith(":=", position):
            tokens.append(_Token("declare", ":=", column))
            position += 2
            continue
        if char == "=":
            tokens.append(_Token("assign", "=", column))
            position += 1
            continue
        if char == "$":
            match = _VARIABLE.match(text, position)
            assert match is not None
            tokens.append(_Token("var", match.group(0), column))
            position = match.end()
            continue
        if char == ".":
            field_match = _FIELD.match(text, position)
            if field_match is not None:
                spaced = position == 0 or text[position - 1] in _SPACE or text[position - 1] == "("
                tokens.append(_Token("field", field_match.group(0)[1:], column, spaced))
                position = field_match.end()
                continue
            number_match = _NUMBER.match(text, position)
            if number_match is not None and number_match.end() > position + 1:
                tokens.append(_Token("number", _number(number_match.group(0), where), column))
                position = number_match.end()
                continue
            tokens.append(_Token("dot", ".", column))
            position += 1
            continue
        if char.isdigit() or (
            char in "+-" and position + 1 < len(text) and (text[position + 1].isdigit() or text[position + 1] == ".")
        ):
            match = _NUMBER.match(text, position)
            if match is None:
                raise ExprError(f"{where}: bad number syntax")
            end = match.end()
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                raise ExprError(f"{where}: bad number syntax: {text[position : end + 1]!r}")
            tokens.append(_Token("number", _number(match.group(0), where), column))
            position = end
            continue
        match = _IDENT.match(text, position)
        if match is not None:
            word = match.group(0)
            if word in ("true", "false"):
                tokens.append(_Token("bool", word == "true", column))
            elif word == "nil":
                tokens.append(_Token("nil", None, column))
            else:
                tokens.append(_Token("ident", word, column))
            position = match.end()
            continue
        raise ExprError(f"{where}: unexpected {char!r} in command")
    tokens.append(_Token("eof", None, len(text) + 1))
    return tokens


def _number(text: str, where: str) -> int | float:
    cleaned = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+|[+-]?0[oO][0-7]+|[+-]?0[bB][01]+", cleaned):
            return int(cleaned, 0)
        if re.fullmatch(r"[+-]?\d+", cleaned):
            return int(cleaned, 10)
        return float(cleaned)
    except ValueError:
        raise ExprError(f"{where}: bad number syntax: {text!r}") from None


# ---------------------------------------------------------------------------------------------
# Parse tree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """``.a.b`` on dot (``chain`` empty means dot itself)."""

    chain: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    chain: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class _SubPipe:
    pipe: _Pipe
    chain: tuple[str, ...]
    text: str


_Operand = _Field | _Variable | _Literal | _Function | _SubPipe


@dataclass(frozen=True, slots=True)
class _Command:
    args: tuple[_Operand, ...]


@dataclass(frozen=True, slots=True)
class _Pipe:
    declarations: tuple[str, ...]
    assign: bool
    commands: tuple[_Command, ...]
    where: str


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Action:
    pipe: _Pipe


@dataclass(frozen=True, slots=True)
class _Branch:
    """``if``, ``with`` and ``range``."""

    kind: str
    pipe: _Pipe
    body: tuple[_Node, ...]
    otherwise: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Loop:
    kind: str  # break / continue


_Node = _Text | _Action | _Branch | _Loop


class _Parser:
    """Turns one action's tokens into a pipeline."""

    def __init__(self, tokens: list[_Token], where: str, depth: int = 0) -> None:
        self.tokens = tokens
        self.index = 0
        self.where = where
        self.depth = depth

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str) -> ExprError:
        return ExprError(f"{self.where}: {message}")

    def pipeline(self, context: str, *, allow_range_vars: bool = False, end: str = "eof") -> _Pipe:
        declarations: list[str] = []
        assign = False
        # $x := ... / $x = ... / $i, $v := ...
        if self.peek().kind == "var":
            save = self.index
            names = [self.take().value]
            if allow_range_vars and self.peek().kind == "comma":
                self.take()
                if self.peek().kind != "var":
                    raise self.error("range can only initialize variables")
                names.append(self.take().value)
            if self.peek().kind in ("declare", "assign") and not (
                self.index + 1 < len(self.tokens) and self.tokens[self.index + 1].kind == "eof" and False
            ):
                kind = self.take().kind
                assign = kind == "assign"
                declarations = names
            elif len(names) > 1:
                raise self.error("too many declarations")
            else:
                self.index = save
        commands: list[_Command] = []
        if self.peek().kind in (end, "eof"):
            raise self.error(f"missing value for {context}")
        while True:
            commands.append(self.command(end))
            token = self.peek()
            if token.kind == "pipe":
                self.take()
                continue
            if token.kind == end:
                break
            raise self.error(f"unexpected {token.value!r} in {context}")
        if not commands or not commands[0].args:
            raise self.error(f"missing value for {context}")
        for command in commands[1:]:
            first = command.args[0]
            if isinstance(first, _Literal):
                raise self.error(f"non executable command in pipeline stage: {first.text}")
        return _Pipe(tuple(declarations), assign, tuple(commands), self.where)

    def command(self, end: str) -> _Command:
        args: list[_Operand] = []
        while self.peek().kind not in ("pipe", end, "eof"):
            args.append(self.operand())
        if not args:
            raise self.error("missing value for command")
        return _Command(tuple(args))

    def _chain(self) -> tuple[str, ...]:
        chain: list[str] = []
        while self.peek().kind == "field" and not self.peek().spaced:
            chain.append(self.take().value)
        return tuple(chain)

    def operand(self) -> _Operand:
        token = self.take()
        kind = token.kind
        if kind == "field":
            chain = (token.value, *self._chain())
            return _Field(chain, "." + ".".join(chain))
        if kind == "dot":
            if self.peek().kind == "field":
                raise self.error("unexpected . after term")
            return _Field((), ".")
        if kind == "var":
            chain = self._chain()
            return _Variable(token.value, chain, token.value + "".join("." + part for part in chain))
        if kind == "string":
            return _Literal(token.value, go_quote(token.value))
        if kind in ("number", "bool"):
            return _Literal(token.value, go_print(token.value))
        if kind == "nil":
            return _Literal(None, "nil")
        if kind == "ident":
            if token.value not in FUNCTIONS:
                if token.value in ("env", "expandenv", "getHostByName"):
                    raise self.error(f"function {token.value!r} is not available: templates have no environment access")
                raise self.error(f"function {token.value!r} not defined")
            return _Function(token.value, token.value)
        if kind == "lparen":
            if self.depth >= MAX_DEPTH:
                raise self.error("expression nested too deeply")
            inner = _Parser(self.tokens, self.where, self.depth + 1)
            inner.index = self.index
            pipe = inner.pipeline("parenthesized pipeline", end="rparen")
            self.index = inner.index
            self.take()  # the ')'
            chain = self._chain()
            return _SubPipe(pipe, chain, "(...)" + "".join("." + part for part in chain))
        if kind == "eof":
            raise self.error("unexpected end of action")
        raise self.error(f"unexpected {token.value!r} in operand")


_ACTION = re.compile(r"\{\{")


def _line_column(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"


def _split(text: str) -> Iterator[tuple[str, str, str]]:
    """Yield ``("text", content, where)`` and ``("action", content, where)`` with trimming done."""
    position = 0
    pending_trim = False
    while True:
        start = text.find("{{", position)
        chunk = text[position:] if start < 0 else text[position:start]
        if start < 0:
            if pending_trim:
                chunk = chunk.lstrip(_SPACE)
            if chunk:
                yield "text", chunk, ""
            return
        inner_start = start + 2
        trim_left = (
            text.startswith("-", inner_start) and inner_start + 1 < len(text) and text[inner_start + 1] in _SPACE
        )
        if trim_left:
            inner_start += 2
        if pending_trim:
            chunk = chunk.lstrip(_SPACE)
        if trim_left:
            chunk = chunk.rstrip(_SPACE)
        if chunk:
            yield "text", chunk, ""
        where = f"template:{_line_column(text, start)}"
        # comments
        body_start = inner_start
        while body_start < len(text) and text[body_start] in _SPACE and trim_left:
            body_start += 1
        if text.startswith("/*", body_start):
            close = text.find("*/", body_start + 2)
            if close < 0:
                raise ExprError(f"{where}: unclosed comment")
            after = close + 2
            trim_right = False
            if text.startswith(" -}}", after) or text.startswith("\t-}}", after) or text.startswith("\n-}}", after):
                trim_right = True
                after += 4
            elif text.startswith("}}", after):
                after += 2
            else:
                raise ExprError(f"{where}: comment ends before closing delimiter")
            pending_trim = trim_right
            position = after
            continue
        end, trim_right = _find_close(text, inner_start, where)
        yield "action", text[inner_start:end], where
        position = end + (4 if trim_right else 2)
        pending_trim = trim_right


def _find_close(text: str, start: int, where: str) -> tuple[int, bool]:
    """Find the ``}}`` that ends an action (quotes may contain braces)."""
    position = start
    while position < len(text):
        char = text[position]
        if char == '"':
            escaped = False
            position += 1
            while position < len(text):
                current = text[position]
                if escaped:
                    escaped = False
                elif current == "\\":
                    escaped = True
                elif current == '"':
                    break
                elif current == "\n":
                    raise ExprError(f"{where}: unterminated quoted string")
                position += 1
            if position >= len(text):
                raise ExprError(f"{where}: unterminated quoted string")
            position += 1
            continue
        if char == "`":
            close = text.find("`", position + 1)
            if close < 0:
                raise ExprError(f"{where}: unterminated raw quoted string")
            position = close + 1
            continue
        if text.startswith("}}", position):
            if position - 2 >= start and text[position - 1] == "-" and text[position - 2] in _SPACE:
                return position - 2, True
            return position, False
        position += 1
    raise ExprError(f"{where}: unclosed action")


class _BlockParser:
    """Builds the node tree from the text/action stream (``if``/``with``/``range`` blocks)."""

    def __init__(self, text: str) -> None:
        self.items = list(_split(text))
        self.position = 0
        self.ranges = 0
        self.depth = 0

    def block(self) -> tuple[list[_Node], tuple[str, list[_Token], str] | None]:
        """Nodes up to an ``{{else}}``/``{{end}}`` (returned with its tokens) or the end of text."""
        nodes: list[_Node] = []
        while self.position < len(self.items):
            kind, content, where = self.items[self.position]
            self.position += 1
            if kind == "text":
                nodes.append(_Text(content))
                continue
            tokens = _lex_action(content, where)
            first = tokens[0]
            keyword = first.value if first.kind == "ident" else None
            if keyword in ("else", "end"):
                return nodes, (keyword, tokens, where)
            if keyword in ("if", "with", "range"):
                nodes.append(self.branch(keyword, tokens, 1, where))
            elif keyword in ("break", "continue"):
                if len(tokens) > 2:
                    raise ExprError(f"{where}: unexpected {tokens[1].value!r} in {keyword}")
                if not self.ranges:
                    raise ExprError(f"{where}: {{{{{keyword}}}}} outside {{{{range}}}}")
                nodes.append(_Loop(keyword))
            elif keyword in ("define", "template", "block"):
                raise ExprError(f"{where}: {{{{{keyword}}}}} is not supported in these templates")
            else:
                if first.kind == "eof":
                    raise ExprError(f"{where}: missing value for command")
                nodes.append(_Action(_Parser(tokens, where).pipeline("command")))
        return nodes, None

    def branch(self, kind: str, tokens: list[_Token], start: int, where: str) -> _Branch:
        """Parse ``{{kind pipeline}} ... [{{else ...}} ...] {{end}}`` (consumes the ``{{end}}``)."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"{where}: blocks nested too deeply")
        parser = _Parser(tokens, where)
        parser.index = start
        pipe = parser.pipeline(kind, allow_range_vars=kind == "range")
        if kind == "range":
            self.ranges += 1
        body, terminator = self.block()
        if kind == "range":
            self.ranges -= 1
        otherwise: list[_Node] = []
        if terminator is None:
            raise ExprError(f"{where}: unexpected EOF: {{{{{kind}}}}} has no {{{{end}}}}")
        word, end_tokens, end_where = terminator
        if word == "else":
            if len(end_tokens) > 2:
                chained = end_tokens[1].value if end_tokens[1].kind == "ident" else None
                if chained != "if" and not (chained == "with" and kind == "with"):
                    raise ExprError(f"{end_where}: unexpected {end_tokens[1].value!r} after else")
                otherwise = [self.branch(str(chained), end_tokens, 2, end_where)]
            else:
                otherwise, closing = self.block()
                if closing is None:
                    raise ExprError(f"{where}: unexpected EOF: {{{{{kind}}}}} has no {{{{end}}}}")
                if closing[0] != "end":
                    raise ExprError(f"{closing[2]}: expected {{{{end}}}}; found {{{{else}}}}")
                if len(closing[1]) > 2:
                    raise ExprError(f"{closing[2]}: unexpected {closing[1][1].value!r} in end")
        elif len(end_tokens) > 2:
            raise ExprError(f"{end_where}: unexpected {end_tokens[1].value!r} in end")
        self.depth -= 1
        return _Branch(kind, pipe, tuple(body), tuple(otherwise))


def _parse(text: str) -> tuple[_Node, ...]:
    parser = _BlockParser(text)
    nodes, terminator = parser.block()
    if terminator is not None:
        raise ExprError(f"{terminator[2]}: unexpected {{{{{terminator[0]}}}}}")
    return tuple(nodes)


# ---------------------------------------------------------------------------------------------
# Functions (builtins + the sprig subset)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Func:
    """``params``: ``s`` string, ``i`` int, ``f`` float, ``a`` any; ``variadic`` kind or ``None``."""

    call: Callable[..., Any]
    params: str
    variadic: str | None = None


def _want(value: Any, kind: str, name: str) -> Any:
    if kind == "a":
        return None if value is NO_VALUE else value
    if value is NO_VALUE or value is None:
        wanted = {"s": "string", "i": "int", "f": "float64"}[kind]
        raise ExprError(f"{name}: invalid value; expected {wanted}")
    if kind == "s":
        if not isinstance(value, str):
            raise ExprError(f"{name}: wrong type for value; expected string; got {go_type_name(value)}")
        return value
    if kind == "i":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExprError(f"{name}: wrong type for value; expected int; got {go_type_name(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExprError(f"{name}: wrong type for value; expected float64; got {go_type_name(value)}")
    return float(value)


def _strval(value: Any) -> str:
    if isinstance(value, str):
        return value
    return go_print(value, nested=True)


def _to_int64(value: Any) -> int:
    """spf13/cast ``ToInt64`` as sprig uses it: unparsable values are 0."""
    if value is None or value is NO_VALUE:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else 0
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)
        except ValueError:
            return 0
    return 0


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


def _empty(value: Any) -> bool:
    return not go_truth(value)


def _substr(start: int, end: int, text: str) -> str:
    raw = text.encode()
    if start < 0:
        piece = raw[:end]
    elif end < 0 or end > len(raw):
        piece = raw[start:]
    else:
        if start > end:
            raise ExprError(f"substr: slice bounds out of range [{start}:{end}]")
        piece = raw[start:end]
    return piece.decode(errors="replace")


def _b64dec(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode(errors="replace")
    except (binascii.Error, ValueError) as err:
        return f"illegal base64 data: {err}"


def _from_json(text: str) -> Any:
    try:
        return json.loads(text, parse_int=float)
    except ValueError:
        return None


def _split_map(separator: str, text: str) -> dict[str, str]:
    return {f"_{index}": part for index, part in enumerate(text.split(separator) if separator else list(text))}


def _split_list(separator: str, text: str) -> list[str]:
    return text.split(separator) if separator else list(text)


def _strslice(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [_strval(item) for item in value if item is not None]
    if value is None:
        return []
    return [_strval(value)]


def _title(text: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda match: match.group(1) + match.group(2).upper(), text)


def _index(item: Any, *keys: Any) -> Any:
    value = item
    for key in keys:
        if value is NO_VALUE or value is None:
            raise ExprError("index of untyped nil")
        if isinstance(value, dict):
            if not isinstance(key, str):
                raise ExprError(f"index: value has type {go_type_name(key)}; should be string")
            value = _from_data(value[key]) if key in value else NO_VALUE
        elif isinstance(value, list | tuple | str):
            if isinstance(key, bool) or not isinstance(key, int):
                raise ExprError(f"cannot index slice/array with type {go_type_name(key)}")
            if key < 0 or key >= len(value):
                raise ExprError(f"index out of range: {key}")
            value = value.encode()[key] if isinstance(value, str) else _from_data(value[key])
        else:
            raise ExprError(f"can't index item of type {go_type_name(value)}")
    return value


def _slice(item: Any, *indexes: Any) -> Any:
    if not isinstance(item, list | tuple | str):
        raise ExprError(f"can't slice item of type {go_type_name(item)}")
    bounds = [int(_want(index, "i", "slice")) for index in indexes]
    if len(bounds) > 2:
        raise ExprError("too many slice indexes")
    start = bounds[0] if bounds else 0
    stop = bounds[1] if len(bounds) > 1 else len(item)
    if not 0 <= start <= stop <= len(item):
        raise ExprError(f"slice: index out of range [{start}:{stop}]")
    return item[start:stop]


def _length(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | tuple | dict):
        return len(item)
    raise ExprError(f"len of type {go_type_name(item)}")


def _kind(value: Any) -> str:
    if value is None or value is NO_VALUE:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise ExprError("missing argument for comparison")
    for other in others:
        left, right = _kind(first), _kind(other)
        if left == "other" or right == "other":
            raise ExprError("non-comparable type")
        if left == "nil" or right == "nil":
            if left == right:
                return True
            continue
        if left != right:
            raise ExprError(f"incompatible types for comparison ({go_type_name(first)} and {go_type_name(other)})")
        if first == other:
            return True
    return False


def _ordered(name: str) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        left_kind, right_kind = _kind(left), _kind(right)
        if left_kind in ("nil", "bool", "other") or right_kind in ("nil", "bool", "other"):
            raise ExprError("invalid type for comparison")
        if left_kind != right_kind:
            raise ExprError("incompatible types for comparison")
        if name == "lt":
            return bool(left < right)
        if name == "le":
            return bool(left <= right)
        if name == "gt":
            return bool(left > right)
        return bool(left >= right)

    return compare


_PRINTF_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(format_text: str, *args: Any) -> str:
    values = list(args)
    used = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal used
        flags, width, precision, verb = match.groups()
        if (width and int(width) > MAX_OUTPUT) or (precision and int(precision) > 1000):
            raise ExprError(f"printf: width or precision too large in {match.group(0)[:40]!r}")
        if verb == "%":
            return "%"
        if used >= len(values):
            return f"%!{verb}(MISSING)"
        value = values[used]
        used += 1
        if verb == "v" or verb == "s":
            text = _strval(value) if verb == "s" or not isinstance(value, str) else value
        elif verb == "q":
            text = go_quote(_strval(value))
        elif verb == "d":
            if isinstance(value, bool) or not isinstance(value, int):
                text = f"%!d({go_type_name(value)}={_strval(value)})"
            else:
                text = str(value)
        elif verb in "feg" and isinstance(value, int | float) and not isinstance(value, bool):
            digits = int(precision) if precision is not None else 6
            text = f"{float(value):.{digits}{verb}}" if verb != "g" else go_format_float(float(value))
        elif verb == "t" and isinstance(value, bool):
            text = "true" if value else "false"
        elif verb in "xX" and isinstance(value, int | str) and not isinstance(value, bool):
            text = format(value, verb) if isinstance(value, int) else value.encode().hex()
            text = text.upper() if verb == "X" else text
        else:
            text = f"%!{verb}({go_type_name(value)}={_strval(value)})"
        if width:
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width), "0" if "0" in flags else " ")
        return text

    out = _PRINTF_VERB.sub(replace, format_text)
    if used < len(values):
        out += "%!(EXTRA " + ", ".join(f"{go_type_name(v)}={_strval(v)}" for v in values[used:]) + ")"
    return out


def _go_sprint(*args: Any) -> str:
    # fmt.Sprint adds spaces between operands when neither is a string
    out: list[str] = []
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out.append(" ")
        out.append(_strval(arg))
    return "".join(out)


def _repeat(count: int, text: str) -> str:
    if count * len(text) > MAX_OUTPUT:
        raise ExprError("repeat: result too large")
    return text * max(count, 0)


def _trunc(count: int, text: str) -> str:
    if count < 0:
        return text[max(len(text) + count, 0) :] if -count < len(text) else text
    return text[:count]


def _indent(spaces: int, text: str) -> str:
    if spaces * (text.count("\n") + 1) > MAX_OUTPUT:
        raise ExprError("indent: result too large")
    pad = " " * spaces
    return pad + text.replace("\n", "\n" + pad)


def _div(left: Any, right: Any) -> int:
    divisor = _to_int64(right)
    if divisor == 0:
        raise ExprError("div: integer divide by zero")
    quotient = abs(_to_int64(left)) // abs(divisor)
    return quotient if (_to_int64(left) >= 0) == (divisor > 0) else -quotient


def _mod(left: Any, right: Any) -> int:
    divisor = _to_int64(right)
    if divisor == 0:
        raise ExprError("mod: integer divide by zero")
    return int(math.fmod(_to_int64(left), divisor))


def _dict(*pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for index in range(0, len(pairs), 2):
        out[_strval(pairs[index])] = pairs[index + 1] if index + 1 < len(pairs) else ""
    return out


def _to_string(value: Any) -> str:
    return _strval(None if value is NO_VALUE else value)


def _and(*args: Any) -> Any:
    for arg in args:
        if not go_truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if go_truth(arg):
            return arg
    return args[-1]


FUNCTIONS: dict[str, _Func] = {
    # text/template builtins
    "and": _Func(_and, "a", "a"),
    "or": _Func(_or, "a", "a"),
    "not": _Func(lambda value: not go_truth(value), "a"),
    "len": _Func(_length, "a"),
    "index": _Func(_index, "a", "a"),
    "slice": _Func(_slice, "a", "a"),
    "print": _Func(_go_sprint, "", "a"),
    "println": _Func(lambda *args: " ".join(_strval(arg) for arg in args) + "\n", "", "a"),
    "printf": _Func(_printf, "s", "a"),
    "eq": _Func(_eq, "a", "a"),
    "ne": _Func(lambda left, right: not _eq(left, right), "aa"),
    "lt": _Func(_ordered("lt"), "aa"),
    "le": _Func(_ordered("le"), "aa"),
    "gt": _Func(_ordered("gt"), "aa"),
    "ge": _Func(_ordered("ge"), "aa"),
    "urlquery": _Func(lambda *args: urllib.parse.quote_plus(_go_sprint(*args)), "", "a"),
    # sprig: strings
    "lower": _Func(str.lower, "s"),
    "upper": _Func(str.upper, "s"),
    "title": _Func(_title, "s"),
    "trim": _Func(lambda text: text.strip(" \t\n\r\v\f"), "s"),
    "trimAll": _Func(lambda cutset, text: text.strip(cutset), "ss"),
    "trimPrefix": _Func(lambda prefix, text: text.removeprefix(prefix), "ss"),
    "trimSuffix": _Func(lambda suffix, text: text.removesuffix(suffix), "ss"),
    "replace": _Func(lambda old, new, text: text.replace(old, new), "sss"),
    "nospace": _Func(lambda text: re.sub(r"\s", "", text), "s"),
    "substr": _Func(_substr, "iis"),
    "trunc": _Func(_trunc, "is"),
    "repeat": _Func(_repeat, "is"),
    "indent": _Func(_indent, "is"),
    "nindent": _Func(lambda spaces, text: "\n" + _indent(spaces, text), "is"),
    "quote": _Func(lambda *args: " ".join(go_quote(_strval(arg)) for arg in args if arg is not None), "", "a"),
    "squote": _Func(lambda *args: " ".join(f"'{_strval(arg)}'" for arg in args if arg is not None), "", "a"),
    "contains": _Func(lambda needle, text: needle in text, "ss"),
    "hasPrefix": _Func(lambda prefix, text: text.startswith(prefix), "ss"),
    "hasSuffix": _Func(lambda suffix, text: text.endswith(suffix), "ss"),
    "split": _Func(_split_map, "ss"),
    "splitList": _Func(_split_list, "ss"),
    "join": _Func(lambda separator, items: separator.join(_strslice(items)), "sa"),
    "toString": _Func(_to_string, "a"),
    "b64enc": _Func(lambda text: base64.b64encode(text.encode()).decode(), "s"),
    "b64dec": _Func(_b64dec, "s"),
    "sha256sum": _Func(lambda text: hashlib.sha256(text.encode()).hexdigest(), "s"),
    # sprig: defaults, JSON
    "default": _Func(lambda fallback, *given: fallback if not given or _empty(given[0]) else given[0], "a", "a"),
    "empty": _Func(_empty, "a"),
    "coalesce": _Func(lambda *args: next((arg for arg in args if not _empty(arg)), None), "", "a"),
    "ternary": _Func(lambda yes, no, condition: yes if condition else no, "aa" + "a"),
    "toJson": _Func(lambda value: go_json(value), "a"),
    "fromJson": _Func(_from_json, "s"),
    # sprig: numbers
    "add": _Func(lambda *args: sum(_to_int64(arg) for arg in args), "", "a"),
    "add1": _Func(lambda value: _to_int64(value) + 1, "a"),
    "sub": _Func(lambda left, right: _to_int64(left) - _to_int64(right), "aa"),
    "mul": _Func(lambda first, *rest: math.prod([_to_int64(first), *(_to_int64(arg) for arg in rest)]), "a", "a"),
    "div": _Func(_div, "aa"),
    "mod": _Func(_mod, "aa"),
    "max": _Func(lambda first, *rest: max([_to_int64(first), *(_to_int64(arg) for arg in rest)]), "a", "a"),
    "min": _Func(lambda first, *rest: min([_to_int64(first), *(_to_int64(arg) for arg in rest)]), "a", "a"),
    "int": _Func(lambda value: _to_int64(value), "a"),
    "int64": _Func(lambda value: _to_int64(value), "a"),
    "float64": _Func(_to_float, "a"),
    "atoi": _Func(lambda text: _to_int64(text) if re.fullmatch(r"[+-]?\d+", text.strip()) else 0, "s"),
    # sprig: lists and dicts
    "list": _Func(lambda *items: list(items), "", "a"),
    "first": _Func(lambda items: _from_data(items[0]) if isinstance(items, list) and items else None, "a"),
    "last": _Func(lambda items: _from_data(items[-1]) if isinstance(items, list) and items else None, "a"),
    "dict": _Func(_dict, "", "a"),
    "hasKey": _Func(lambda mapping, key: isinstance(mapping, dict) and key in mapping, "as"),
    "keys": _Func(lambda *maps: [key for mapping in maps if isinstance(mapping, dict) for key in mapping], "", "a"),
}


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    output: list[str] = field(default_factory=list)
    size: int = 0
    steps: int = 0
    variables: list[tuple[str, Any]] = field(default_factory=list)

    def step(self, where: str) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ExprError(f"{where}: template evaluation exceeded {MAX_STEPS} steps")

    def write(self, text: str, where: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise ExprError(f"{where}: template output exceeds {MAX_OUTPUT} bytes")
        self.output.append(text)

    def lookup(self, name: str, where: str) -> Any:
        for variable, value in reversed(self.variables):
            if variable == name:
                return value
        raise ExprError(f"{where}: undefined variable: {name}")

    def assign(self, name: str, value: Any, where: str) -> None:
        for index in range(len(self.variables) - 1, -1, -1):
            if self.variables[index][0] == name:
                self.variables[index] = (name, value)
                return
        raise ExprError(f"{where}: undefined variable: {name}")


def _field(receiver: Any, name: str, text: str, where: str) -> Any:
    if receiver is NO_VALUE:
        return NO_VALUE
    if isinstance(receiver, dict):
        return _from_data(receiver[name]) if name in receiver else NO_VALUE
    if receiver is None:
        raise ExprError(f"{where}: executing at <{text}>: nil pointer evaluating interface {{}}.{name}")
    raise ExprError(f"{where}: executing at <{text}>: can't evaluate field {name} in type {go_type_name(receiver)}")


def _walk(value: Any, chain: tuple[str, ...], text: str, where: str) -> Any:
    for name in chain:
        value = _field(value, name, text, where)
    return value


class GoTemplate:
    """A parsed template; :meth:`render` executes it over ``data`` (the template's dot)."""

    def __init__(self, source: str) -> None:
        if len(source) > MAX_TEMPLATE:
            raise ExprError(f"template is longer than {MAX_TEMPLATE} characters")
        self.source = source
        self._nodes = _parse(source)

    def render(self, data: Any) -> str:
        """Execute with ``data`` as dot (and ``$``); raises ExprError."""
        state = _State()
        state.variables.append(("$", data))
        try:
            self._run(self._nodes, data, state)
        except _Abort as abort:  # pragma: no cover - the parser rejects break/continue outside range
            raise ExprError(f"{{{{{abort.kind}}}}} outside range") from None
        except RecursionError:
            raise ExprError("template nested too deeply") from None
        return "".join(state.output)

    def _run(self, nodes: tuple[_Node, ...], dot: Any, state: _State) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                state.write(node.text, "template")
            elif isinstance(node, _Action):
                value = self._pipe(node.pipe, dot, state)
                if not node.pipe.declarations:
                    state.write(go_print(value), node.pipe.where)
            elif isinstance(node, _Branch):
                self._branch(node, dot, state)
            else:
                raise _Abort(node.kind)

    def _scoped(self, nodes: tuple[_Node, ...], dot: Any, state: _State) -> None:
        mark = len(state.variables)
        try:
            self._run(nodes, dot, state)
        finally:
            del state.variables[mark:]

    def _branch(self, node: _Branch, dot: Any, state: _State) -> None:
        mark = len(state.variables)
        try:
            if node.kind == "range":
                self._range(node, dot, state)
                return
            value = self._pipe(node.pipe, dot, state)
            if go_truth(value):
                self._scoped(node.body, value if node.kind == "with" else dot, state)
            elif node.otherwise:
                self._scoped(node.otherwise, dot, state)
        finally:
            del state.variables[mark:]

    def _range(self, node: _Branch, dot: Any, state: _State) -> None:
        pipe = node.pipe
        value = self._pipe(_Pipe((), False, pipe.commands, pipe.where), dot, state)
        items: list[tuple[Any, Any]]
        if value is NO_VALUE or value is None:
            items = []
        elif isinstance(value, list | tuple):
            items = [(index, _from_data(item)) for index, item in enumerate(value)]
        elif isinstance(value, dict):
            items = [(key, _from_data(value[key])) for key in sorted(value, key=str)]
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(index, index) for index in range(value)] if value <= MAX_STEPS else []
            if value > MAX_STEPS:
                raise ExprError(f"{pipe.where}: range over {value} exceeds {MAX_STEPS} steps")
        else:
            raise ExprError(f"{pipe.where}: range can't iterate over {go_print(value)}")
        if not items:
            if node.otherwise:
                self._scoped(node.otherwise, dot, state)
            return
        for key, item in items:
            state.step(pipe.where)
            mark = len(state.variables)
            if len(pipe.declarations) == 1:
                state.variables.append((pipe.declarations[0], item))
            elif len(pipe.declarations) == 2:
                state.variables.append((pipe.declarations[0], key))
                state.variables.append((pipe.declarations[1], item))
            try:
                self._run(node.body, item, state)
            except _Abort as abort:
                if abort.kind == "break":
                    break
            finally:
                del state.variables[mark:]

    def _pipe(self, pipe: _Pipe, dot: Any, state: _State) -> Any:
        value: Any = _MISSING_FINAL
        for command in pipe.commands:
            value = self._command(command, dot, value, state, pipe.where)
        if pipe.assign:
            for name in pipe.declarations:
                state.assign(name, value, pipe.where)
        else:
            for name in pipe.declarations:
                state.variables.append((name, value))
        return value

    def _command(self, command: _Command, dot: Any, final: Any, state: _State, where: str) -> Any:
        state.step(where)
        first = command.args[0]
        if isinstance(first, _Function):
            return self._call(first.name, command.args[1:], dot, final, state, where)
        if len(command.args) > 1 or final is not _MISSING_FINAL:
            if isinstance(first, _Field) and first.chain:
                raise ExprError(
                    f"{where}: executing at <{first.text}>: {first.chain[-1]} is not a method but has arguments"
                )
            raise ExprError(f"{where}: executing at <{first.text}>: can't give argument to non-function {first.text}")
        return self._operand(first, dot, state, where)

    def _operand(self, operand: _Operand, dot: Any, state: _State, where: str) -> Any:
        if isinstance(operand, _Literal):
            return operand.value
        if isinstance(operand, _Field):
            return _walk(dot, operand.chain, operand.text, where)
        if isinstance(operand, _Variable):
            return _walk(state.lookup(operand.name, where), operand.chain, operand.text, where)
        if isinstance(operand, _SubPipe):
            mark = len(state.variables)
            try:
                value = self._pipe(operand.pipe, dot, state)
            finally:
                del state.variables[mark:]
            return _walk(value, operand.chain, operand.text, where)
        return self._call(operand.name, (), dot, _MISSING_FINAL, state, where)

    def _call(self, name: str, arg_nodes: tuple[_Operand, ...], dot: Any, final: Any, state: _State, where: str) -> Any:
        function = FUNCTIONS[name]
        if name in ("and", "or") and final is _MISSING_FINAL:
            # short-circuit, as Go 1.18+ does
            values: list[Any] = []
            for node in arg_nodes:
                value = self._operand(node, dot, state, where)
                values.append(value)
                if go_truth(value) == (name == "or"):
                    return value
            if not values:
                raise ExprError(f"{where}: wrong number of args for {name}: want at least 1 got 0")
            return values[-1]
        args = [self._operand(node, dot, state, where) for node in arg_nodes]
        if final is not _MISSING_FINAL:
            args.append(final)
        fixed = function.params
        if len(args) < len(fixed) or (function.variadic is None and len(args) != len(fixed)):
            want = f"at least {len(fixed)}" if function.variadic else str(len(fixed))
            raise ExprError(f"{where}: wrong number of args for {name}: want {want} got {len(args)}")
        if (
            function.variadic is not None
            and not fixed
            and not args
            and name
            not in ("print", "println", "quote", "squote", "list", "dict", "coalesce", "add", "keys", "urlquery")
        ):
            raise ExprError(f"{where}: wrong number of args for {name}: want at least 1 got 0")
        label = f"{where}: executing at <{name}>: error calling {name}"
        try:
            converted = [_want(arg, kind, label) for arg, kind in zip(args, fixed, strict=False)]
            converted += [_want(arg, function.variadic or "a", label) for arg in args[len(fixed) :]]
            result = function.call(*converted)
        except ExprError as err:
            message = str(err)
            raise ExprError(message if message.startswith(where) else f"{label}: {message}") from None
        except (ValueError, TypeError, OverflowError, IndexError, KeyError, UnicodeError) as err:
            raise ExprError(f"{label}: {err}") from None
        if isinstance(result, str) and len(result) > MAX_OUTPUT:
            raise ExprError(f"{label}: result exceeds {MAX_OUTPUT} bytes")
        return result


_MISSING_FINAL: Any = object()


@functools.lru_cache(maxsize=1024)
def compile_template(source: str) -> GoTemplate:
    """Parse (and cache) a template; raises ExprError with the line and column of a problem."""
    return GoTemplate(source)


def render_template(source: str, data: Any) -> str:
    """Parse (cached) and execute ``source`` over ``data``."""
    return compile_template(source).render(data)


def check_template(source: str) -> str | None:
    """Why ``source`` does not parse, or ``None`` (for lint)."""
    try:
        compile_template(source)
    except ExprError as err:
        return str(err)
    return None


def render_input(source: str, value: Any) -> str:
    """Argo's use: execute over ``{"Input": value}`` and reject an empty or ``<no value>`` result."""
    out = render_template(source, {"Input": value})
    if out in ("", "<no value>"):
        raise ExprError(f"template evaluated to empty string or no value: {source}")
    return out


__all__ = [
    "FUNCTIONS",
    "NO_VALUE",
    "GoTemplate",
    "check_template",
    "compile_template",
    "go_format_float",
    "go_json",
    "go_print",
    "go_quote",
    "go_truth",
    "render_input",
    "render_template",
]
