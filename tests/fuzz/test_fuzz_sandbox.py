"""Expressions and templates from manifests cannot reach the environment, the filesystem or
Python objects: whatever is written, no output contains a planted environment variable, a file's
content or a Python object's repr."""

from __future__ import annotations

from typing import Any

import pytest
from fuzz_helpers import guarded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbridge.expr.gotemplate import render_template
from eventbridge.expr.lang import evaluate
from eventbridge.sensor import govaluate

PLANTED = "planted-env-value-5e8d1"
FILE_TEXT = "planted-file-content-c41b7"
REACH = ["__class__", "__mro__", "__globals__", "__init__", "__subclasses__", "__builtins__", "__dict__",
         "__import__", "os", "environ", "env", "expandenv", "getenv", "readFile", "open", "file", "exec",
         "eval", "import", "PLANTED_ENV", "sprig.env", "sprig.expandenv", "getHostByName", "toJSON", "string",
         "$PLANTED_ENV", "FILE"]  # fmt: skip
GLUE = ["(", ")", ".", " ", '"', "'", ",", "|", "{{", "}}", "[", "]", "body", "$"]


def _clean(outcome: Any) -> None:
    text = str(outcome)
    assert PLANTED not in text and FILE_TEXT not in text
    assert "<class" not in text and "<function" not in text and "<module" not in text and " object at 0x" not in text


@pytest.fixture(autouse=True)
def planted(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("PLANTED_ENV", PLANTED)
    (tmp_path / "secret.txt").write_text(FILE_TEXT)
    monkeypatch.chdir(tmp_path)


pieces = st.lists(st.sampled_from(REACH + GLUE + ["secret.txt", "'secret.txt'", '"secret.txt"']), max_size=10)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(pieces.map("".join), pieces.map(" ".join))
def test_nothing_reaches_out(tight: str, spaced: str) -> None:
    for text in (tight, spaced):
        _clean(guarded(lambda text=text: evaluate(text, {"body": {"a": 1}})))
        _clean(guarded(lambda text=text: evaluate(text, {"body": {"a": 1}}, dialect="govaluate")))
        _clean(guarded(lambda text=text: render_template("{{ " + text + " }}", {"body": {"a": 1}})))
        _clean(guarded(lambda text=text: render_template(text, {"body": {"a": 1}})))
        _clean(guarded(lambda text=text: govaluate.evaluate(govaluate.parse(text), {"body": {"a": 1}})))


@pytest.mark.parametrize("text", ['sprig.env("PLANTED_ENV")', 'env("PLANTED_ENV")', '"".__class__.__mro__',
                                  'fromJSON("{}").__init__', "body.__class__"])  # fmt: skip
def test_known_escape_attempts_give_nothing(text: str) -> None:
    _clean(guarded(lambda: evaluate(text, {"body": {}})))


@pytest.mark.parametrize("source", ['{{ env "PLANTED_ENV" }}', '{{ expandenv "$PLANTED_ENV" }}',
                                    '{{ readFile "secret.txt" }}', "{{ .__class__ }}", '{{ printf "%v" . }}',
                                    '{{ template "secret.txt" }}'])  # fmt: skip
def test_known_template_escapes_give_nothing(source: str) -> None:
    _clean(guarded(lambda: render_template(source, {"body": {}})))
