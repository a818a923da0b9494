"""User regular expressions: the fast yes/no search agrees with a full search, on RE2 and literals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventbridge.expr import regex
from eventbridge.expr.regex import compile_user_regex, found_in

PATTERNS = ["^refs/heads/(main|release-.*)$", "b+c$", "é+", "Codertocat/.*", "^$", "x*", "[0-9]{2,}", "plain"]


def test_google_re2_is_the_engine_and_the_fast_path_is_on() -> None:
    assert regex.ENGINE == "re2"
    assert regex._FAST_SEARCH is not None  # this google-re2's internals were checked at import


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^refs/heads/(main|release-.*)$", "refs/heads/main", True),
        ("^refs/heads/(main|release-.*)$", "refs/heads/feature", False),
        ("^refs/heads/(main|release-.*)$", "refs/heads/release-1.2", True),
        ("b+c$", "abbc", True),
        ("b+c$", "abcd", False),
        ("é+$", "café", True),  # multi-byte text: byte offsets stay internal
        ("^$", "", True),
        ("Codertocat/.*", "xCodertocat/Hello-World", True),
    ],
)
def test_found_in(pattern: str, text: str, expected: bool) -> None:
    assert found_in(compile_user_regex(pattern), text) is expected


@given(st.sampled_from(PATTERNS), st.text(max_size=40))
def test_found_in_agrees_with_search(pattern: str, text: str) -> None:
    compiled = compile_user_regex(pattern)
    assert found_in(compiled, text) == (compiled.search(text) is not None)
