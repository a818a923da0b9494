"""Regular expressions written by users (data filters, ``=~``, ``matches``, sprig ``regex*``), safely.

Argo evaluates these with Go's ``regexp``: RE2 syntax, matching in time linear in the text. Python's
``re`` backtracks, so a pattern such as ``(a+)+$`` over a long string can take the process down
(catastrophic backtracking). :func:`compile_user_regex` therefore:

* uses RE2 itself (the ``google-re2`` package, module ``re2``) when it is installed: Go's syntax
  and linear time exactly;
* otherwise uses ``re`` but first refuses what RE2 does not have and what makes ``re`` blow up
  exponentially: backreferences, lookaround, and inside an unbounded repeat either a variable
  repeat or alternatives (``(a+)+``, ``(\\w*\\s?)*``, ``(a|aa)*``). Such a pattern raises
  :class:`re.error` with a reason. Polynomial blow-ups (``.*.*.*x`` over a long text) are not
  caught by this guard: install google-re2 (the project's dependency) for the real guarantee.

Either way the result is cached and has ``search``, ``match``, ``fullmatch``, ``finditer``,
``sub`` and ``split``; errors are :class:`re.error` (RE2's own errors are converted), so callers keep one
``except re.error``. Patterns are limited to :data:`MAX_PATTERN` characters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

MAX_PATTERN = 1_000

try:  # pragma: no cover - which branch runs depends on the installation
    import re2 as _re2  # type: ignore[import-not-found,import-untyped,unused-ignore]
except ImportError:  # pragma: no cover
    _re2 = None

#: ``"re2"`` when Google's RE2 does the matching, ``"re"`` when the guarded fallback does.
ENGINE = "re2" if _re2 is not None else "re"


class UserMatch(Protocol):
    def group(self, *groups: int | str) -> Any: ...

    def groups(self) -> tuple[Any, ...]: ...

    def groupdict(self) -> dict[str, Any]: ...

    def start(self, group: int = 0) -> int: ...

    def end(self, group: int = 0) -> int: ...


class UserPattern(Protocol):
    """What callers use of a compiled pattern (``re.Pattern`` and RE2's pattern both have it)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> UserMatch | None: ...

    def match(self, text: str) -> UserMatch | None: ...

    def fullmatch(self, text: str) -> UserMatch | None: ...

    def finditer(self, text: str) -> Iterator[UserMatch]: ...

    def sub(self, replacement: str | Callable[[Any], str], text: str, count: int = 0) -> str: ...

    def split(self, text: str, maxsplit: int = 0) -> list[str]: ...


@functools.lru_cache(maxsize=4096)
def compile_user_regex(pattern: str) -> UserPattern:
    """Compile a user's pattern (see the module docstring); raises :class:`re.error`."""
    if len(pattern) > MAX_PATTERN:
        raise re.error(f"regular expression longer than {MAX_PATTERN} characters")
    if re.escape(pattern) == pattern:
        # Plain text (the common filter value): Python's literal search is linear, means the same
        # as RE2's, and costs a small fraction of a call into RE2.
        return cast(UserPattern, re.compile(pattern))
    if _re2 is not None:
        options = _re2.Options()
        options.log_errors = False  # RE2 would print every bad pattern to stderr
        try:
            return cast(UserPattern, _re2.compile(pattern, options))
        except _re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise re.error(reason) from None
    compiled = re.compile(pattern)
    _refuse_backtracking_traps(pattern)
    return cast(UserPattern, compiled)


def _low_level_search() -> Callable[[Any, str], bool] | None:
    """RE2's C++ ``Match`` without the wrapper's span bookkeeping, when this google-re2 has it.

    ``re2.Pattern.search`` spends most of its ~6 µs in Python, converting match offsets back to
    character positions; a filter only needs a yes or no (~1 µs). Checked once on real patterns,
    so a google-re2 whose internals differ falls back to ``search``."""
    unanchored = getattr(getattr(_re2, "_Anchor", None), "UNANCHORED", None)
    if _re2 is None or unanchored is None:
        return None
    null_span = (-1, -1)

    def found(compiled: Any, text: str) -> bool:
        encoded = text.encode("utf-8")
        return bool(compiled._regexp.Match(unanchored, encoded, 0, len(encoded))[0] != null_span)

    try:
        probe = _re2.compile("b+c$")
        works = found(probe, "abbc") and not found(probe, "abcd") and found(_re2.compile("é"), "café")
    except Exception:  # noqa: BLE001 - any surprise in the internals means: use the public API
        works = False
    return found if works else None


_FAST_SEARCH = _low_level_search()


def found_in(compiled: UserPattern, text: str) -> bool:
    """Whether a pattern from :func:`compile_user_regex` occurs in ``text`` (an unanchored search)."""
    if _FAST_SEARCH is not None and not isinstance(compiled, re.Pattern):
        return _FAST_SEARCH(compiled, text)
    return compiled.search(text) is not None


_ADVICE = "eventbridge then matches in linear time, as Go's regexp does"


def _refuse_backtracking_traps(pattern: str) -> None:
    from re import _constants as constants  # type: ignore[attr-defined]
    from re import _parser as parser  # type: ignore[attr-defined]

    unbounded = constants.MAXREPEAT
    repeats = (constants.MAX_REPEAT, constants.MIN_REPEAT, getattr(constants, "POSSESSIVE_REPEAT", None))

    def walk(items: Any, inside_repeat: bool) -> None:
        for op, argument in items:
            if op in (constants.GROUPREF, constants.GROUPREF_EXISTS):
                raise re.error("backreferences are not supported (Go's RE2 syntax has none)")
            if op in (constants.ASSERT, constants.ASSERT_NOT):
                raise re.error("lookahead and lookbehind are not supported (Go's RE2 syntax has none)")
            if op in repeats:
                low, high, body = argument
                if inside_repeat and low != high:
                    raise re.error(
                        "a variable repeat inside a repeat, such as (a+)+ or (ab?)*, can take exponential "
                        f"time without RE2; rewrite it or install google-re2 ({_ADVICE})"
                    )
                walk(body, inside_repeat or high == unbounded)
            elif op == constants.SUBPATTERN:
                walk(argument[-1], inside_repeat)
            elif op == constants.BRANCH:
                if inside_repeat:
                    raise re.error(
                        "alternatives inside a repeat, such as (a|ab)*, can take exponential time without RE2; "
                        f"rewrite it or install google-re2 ({_ADVICE})"
                    )
                for branch in argument[1]:
                    walk(branch, inside_repeat)
            elif op == getattr(constants, "ATOMIC_GROUP", None):
                walk(argument, inside_repeat)

    walk(parser.parse(pattern), False)


__all__ = ["ENGINE", "MAX_PATTERN", "UserMatch", "UserPattern", "compile_user_regex", "found_in"]
