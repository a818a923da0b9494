"""Property tests: whatever the input, the loader reports diagnostics and never raises."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbridge.models.kinds import KINDS, validate_document
from eventbridge.models.lint import lint
from eventbridge.models.loader import load_text

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
field_names = st.sampled_from(
    ["spec", "metadata", "name", "data", "stringData", "kafka", "url", "triggers", "templates", "status", "x"]
)
known = st.sampled_from(sorted(KINDS))


@st.composite
def manifest_like(draw: st.DrawFn) -> dict[str, Any]:
    """Documents near real manifests: a known kind with arbitrary nested content."""
    api_version, kind = draw(known)
    document: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    document["metadata"] = draw(st.one_of(values, st.fixed_dictionaries({"name": st.text(max_size=10)})))
    document.update(draw(st.dictionaries(field_names, values, max_size=4)))
    return document


def check_result_is_sane(text: str) -> None:
    result = load_text(text, "prop.yaml")
    diagnostics = lint(result)
    for diagnostic in diagnostics:
        assert str(diagnostic).startswith("prop.yaml:")
        assert diagnostic.line >= 0
    for loaded in result.objects:
        json.dumps(loaded.manifest.dump())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    check_result_is_sane(text)


yaml_ish = st.lists(
    st.sampled_from(
        [
            "a: ",
            "- ",
            "&x ",
            "*x",
            "<<: ",
            "!!binary ",
            "!!python/name:os ",
            "{",
            "}",
            "[",
            "]",
            ",",
            "? ",
            "---\n",
            "\n",
            "  ",
            "'",
            '"',
            "|",
            ">",
            "kind: Secret",
            "apiVersion: v1",
            "1",
            "true",
            "~",
            "#",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(yaml_ish)
def test_yaml_fragments_never_raise(text: str) -> None:
    check_result_is_sane(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(manifest_like(), values))
def test_arbitrary_documents_never_raise(document: Any) -> None:
    checked = validate_document(document)
    assert checked.ignored or checked.manifest is not None or checked.has_errors
    check_result_is_sane(yaml.safe_dump(document) if not isinstance(document, float) else repr(document))
    check_result_is_sane(json.dumps(document))
