"""Loader: files, folders, multi-document YAML, line numbers, errors that keep the rest."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml

from eventbridge.models.base import Finding, Manifest
from eventbridge.models.core import ConfigMap, Secret
from eventbridge.models.eventbus import EventBus
from eventbridge.models.kinds import KINDS, MAX_DEPTH
from eventbridge.models.loader import MAX_FILE_BYTES, Diagnostic, load_paths, load_text
from eventbridge.models.workflow import Workflow

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello
"""

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: github
  namespace: ci
type: Opaque
stringData:
  token: plain-token
data:
  other: {encoded}
""".format(encoded=base64.b64encode(b"from-data").decode())

EVENT_BUS = """\
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata:
  name: default
spec:
  kafka:
    url: localhost:9092
    topic: events
"""

WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: hello-
spec:
  entrypoint: main
  templates:
    - name: main
      container:
        image: busybox
        command: [echo, hello]
"""


def messages(diagnostics: list[Diagnostic]) -> list[str]:
    return [str(d) for d in diagnostics]


def test_multi_document_text_loads_every_kind() -> None:
    text = "---\n".join([CONFIG_MAP, SECRET, EVENT_BUS, WORKFLOW])
    result = load_text(text, "all.yaml")
    assert result.errors == []
    kinds = [type(loaded.manifest) for loaded in result.objects]
    assert kinds == [ConfigMap, Secret, EventBus, Workflow]
    lines = [loaded.line for loaded in result.objects]
    assert lines == [1, 8, 19, 28]
    assert all(loaded.file == "all.yaml" for loaded in result.objects)
    secret = result.objects[1].manifest
    assert isinstance(secret, Secret)
    assert secret.namespace == "ci"
    assert result.objects[0].manifest.namespace == "default"
    assert "namespace" not in result.objects[0].manifest.dump()["metadata"]


def test_folder_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "deep").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.yaml").write_text(CONFIG_MAP)
    (tmp_path / "b" / "bus.yml").write_text(EVENT_BUS)
    (tmp_path / "b" / "deep" / "secret.json").write_text(json.dumps(yaml.safe_load(SECRET), indent="\t"))
    (tmp_path / "b" / "notes.txt").write_text("not: [a manifest")
    (tmp_path / ".hidden" / "x.yaml").write_text("broken: [")
    result = load_paths([tmp_path])
    assert result.diagnostics == []
    assert [Path(loaded.file).name for loaded in result.objects] == ["a.yaml", "bus.yml", "secret.json"]


def test_same_file_given_twice_is_read_once(tmp_path: Path) -> None:
    file = tmp_path / "cm.yaml"
    file.write_text(CONFIG_MAP)
    result = load_paths([file, tmp_path])
    assert len(result.objects) == 1
    assert result.diagnostics == []


def test_missing_path_is_an_error() -> None:
    result = load_paths(["/nonexistent/eventbridge/manifests"])
    assert messages(result.errors) == ["/nonexistent/eventbridge/manifests:0: no such file or folder"]


def test_error_in_one_document_keeps_the_others() -> None:
    bad_bus = EVENT_BUS.replace(
        "url: localhost:9092", "url: localhost:9092\n    consumerGroup:\n      oldest: maybe"
    )
    result = load_text("---\n".join([CONFIG_MAP, bad_bus, WORKFLOW]), "mix.yaml")
    assert [type(loaded.manifest) for loaded in result.objects] == [ConfigMap, Workflow]
    assert messages(result.errors) == [
        "mix.yaml:16: EventBus/default: spec.kafka.consumerGroup.oldest: Input should be a valid boolean, "
        "unable to interpret input"
    ]


def test_list_indexes_and_missing_fields_point_at_lines() -> None:
    text = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm
  finalizers:
    - ok
    - 5
data:
  a: "1"
"""
    result = load_text(text, "cm.yaml")
    assert messages(result.errors) == [
        "cm.yaml:7: ConfigMap/cm: metadata.finalizers.1: Input should be a valid string"
    ]
    missing = load_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n", "m.yaml")
    assert messages(missing.errors) == [
        "m.yaml:3: ConfigMap/(unnamed): metadata.name: required (or metadata.generateName)"
    ]


def test_check_findings_are_located() -> None:
    text = EVENT_BUS.replace("    url: localhost:9092\n", "    partitioner: sideways\n")
    result = load_text(text, "bus.yaml")
    assert result.objects == []
    assert messages(result.errors) == [
        "bus.yaml:6: EventBus/default: spec.kafka.url: required: Kafka bootstrap servers (host:port,...)",
        "bus.yaml:7: EventBus/default: spec.kafka.partitioner: "
        "must be one of random, hash, roundrobin, manual",
    ]


def test_warnings_from_check_keep_the_object() -> None:
    result = load_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {name: empty}\n", "b.yaml"
    )
    assert len(result.objects) == 1
    assert [d.severity for d in result.diagnostics] == ["warning"]
    assert str(result.diagnostics[0]).startswith("b.yaml:1: EventBus/empty: spec: warning: no bus configured")


def test_duplicates_are_an_error_on_the_later_one(tmp_path: Path) -> None:
    (tmp_path / "1.yaml").write_text(CONFIG_MAP)
    (tmp_path / "2.yaml").write_text(CONFIG_MAP.replace("hello", "bye") + "---\n" + SECRET)
    other_namespace = CONFIG_MAP.replace("  name: settings\n", "  name: settings\n  namespace: other\n")
    (tmp_path / "3.yaml").write_text(other_namespace)
    result = load_paths([tmp_path])
    assert [(Path(o.file).name, o.manifest.kind) for o in result.objects] == [
        ("1.yaml", "ConfigMap"),
        ("2.yaml", "Secret"),
        ("3.yaml", "ConfigMap"),
    ]
    assert messages(result.errors) == [
        f"{tmp_path / '2.yaml'}:4: ConfigMap/settings: metadata.name: duplicate ConfigMap default/settings "
        f"(first defined at {tmp_path / '1.yaml'}:1); this one is ignored"
    ]


def test_workflows_with_generate_name_are_never_duplicates() -> None:
    result = load_text(WORKFLOW + "---\n" + WORKFLOW, "wf.yaml")
    assert len(result.objects) == 2
    assert result.errors == []


def test_other_kinds_are_skipped_with_a_warning_and_empty_documents_silently() -> None:
    text = (
        "---\n---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc}\n---\n"
        + CONFIG_MAP
    )
    result = load_text(text, "s.yaml")
    assert [type(o.manifest) for o in result.objects] == [ConfigMap]
    assert messages(result.diagnostics) == [
        "s.yaml:6: Service/svc: warning: kind Service is not used by eventbridge; ignored"
    ]


def test_documents_that_are_not_manifests_are_errors() -> None:
    text = "just text\n---\n- a\n- b\n---\nfoo: bar\n---\nkind: ConfigMap\nmetadata: {name: x}\n"
    result = load_text(text, "n.yaml")
    assert result.objects == []
    assert messages(result.errors) == [
        "n.yaml:1: a manifest must be a mapping, not str 'just text'",
        "n.yaml:3: a manifest must be a mapping, not a list",
        "n.yaml:6: not a Kubernetes manifest: apiVersion and kind are missing",
        "n.yaml:8: ConfigMap/x: apiVersion: required field is missing",
    ]


def test_wrong_api_version_of_a_known_kind_is_an_error() -> None:
    result = load_text(EVENT_BUS.replace("argoproj.io/v1alpha1", "argoproj.io/v1beta1"), "v.yaml")
    assert messages(result.errors) == [
        "v.yaml:1: EventBus/default: apiVersion: "
        "EventBus must be argoproj.io/v1alpha1, not argoproj.io/v1beta1"
    ]


def test_yaml_syntax_error_loses_only_that_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CONFIG_MAP + "---\nkey: [unclosed\n")
    (tmp_path / "b.yaml").write_text(EVENT_BUS)
    result = load_paths([tmp_path])
    assert [type(o.manifest) for o in result.objects] == [EventBus]
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith(f"{tmp_path / 'a.yaml'}:9: YAML syntax error:")


def test_python_tags_are_refused() -> None:
    result = load_text("!!python/object/apply:os.system ['echo owned']\n", "evil.yaml")
    assert result.objects == []
    assert "could not determine a constructor" in str(result.errors[0])


def test_scalars_follow_kubernetes_rules() -> None:
    text = CONFIG_MAP + "  day: 2024-01-02\n  eq: =\n  blob: !!binary aGk=\n"
    result = load_text(text, "k.yaml")
    assert result.errors == []
    manifest = result.objects[0].manifest
    assert isinstance(manifest, ConfigMap)
    assert manifest.data == {"greeting": "hello", "day": "2024-01-02", "eq": "=", "blob": "aGk="}


def test_non_string_keys_become_strings() -> None:
    result = load_text(CONFIG_MAP + "  1: one\n  true: yes-string\n".replace("yes-string", '"y"'), "k.yaml")
    assert result.errors == []
    manifest = result.objects[0].manifest
    assert isinstance(manifest, ConfigMap)
    assert manifest.data == {"greeting": "hello", "1": "one", "true": "y"}


def test_merge_keys_work_and_errors_inside_them_are_located() -> None:
    text = "x-base: &base {image: busybox}\n" + CONFIG_MAP + "binaryData:\n  <<: *base\n"
    result = load_text(text, "m.yaml")
    assert result.errors == []
    manifest = result.objects[0].manifest
    assert isinstance(manifest, ConfigMap)
    assert manifest.binary_data == {"image": "busybox"}


def test_json_file_that_yaml_cannot_read_still_loads(tmp_path: Path) -> None:
    document = yaml.safe_load(CONFIG_MAP)
    document["data"]["path"] = "a\\/b"  # JSON's escaped slash is not a YAML 1.1 escape
    text = json.dumps(document).replace("a\\\\/b", "a\\/b")
    file = tmp_path / "cm.json"
    file.write_text(text)
    result = load_paths([file])
    assert result.diagnostics == []
    manifest = result.objects[0].manifest
    assert isinstance(manifest, ConfigMap)
    assert manifest.data is not None and manifest.data["path"] == "a/b"


def test_not_utf8_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes(CONFIG_MAP.encode() + "  b: caf\xe9\n".encode("latin-1"))
    result = load_paths([file])
    assert messages(result.diagnostics) == [f"{file}:7: not UTF-8 text"]


# --- hostile input -------------------------------------------------------------------------


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    file = tmp_path / "huge.yaml"
    with file.open("wb") as stream:
        stream.truncate(MAX_FILE_BYTES + 1)
    result = load_paths([file])
    assert messages(result.diagnostics) == [f"{file}:0: file larger than 10 MiB; not read"]


def test_special_files_are_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    result = load_paths([tmp_path])  # reading a FIFO would block forever
    assert [str(d) for d in result.diagnostics] == [f"{fifo}:0: not a regular file; not read"]
    assert result.warnings == [] and len(result.errors) == 1


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, "{a: " * 5000 + "1" + "}" * 5000):
        result = load_text(text, "deep.yaml")
        # Our own guard, or (PyYAML >= 6.0.4) the parser's own depth limit: an error either way.
        [message] = messages(result.diagnostics)
        assert message in (
            f"deep.yaml:1: document nests deeper than {MAX_DEPTH} levels",
            "deep.yaml:1: YAML syntax error: while increasing flow level, exceeded maximum nesting depth "
            "(column 1001)",
        ) or (message.startswith("deep.yaml:1: YAML syntax error") and "nesting depth" in message)
    block = "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5))
    result = load_text(block, "block.yaml")
    assert len(result.errors) == 1 and "nests deeper" in result.errors[0].message


def test_nesting_through_aliases_is_limited() -> None:
    chain = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [[[[[[[[[[*a{i - 1}]]]]]]]]]]" for i in range(1, 12)]
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n" + "\n".join(chain) + "\n"
    result = load_text(text, "chain.yaml")
    assert messages(result.errors) == [
        f"chain.yaml:1: ConfigMap/c: document nests deeper than {MAX_DEPTH} levels"
    ]


def test_billion_laughs_is_refused() -> None:
    lines = ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        refs = ", ".join([f"*lol{i - 1}"] * 10)
        lines.append(f"lol{i}: &lol{i} [{refs}]")
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\n" + "\n".join(lines) + "\n"
    result = load_text(text, "lol.yaml")
    assert result.objects == []
    assert "YAML aliases expand to too much data" in str(result.errors[0])


def test_merge_key_chains_stay_linear() -> None:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    for i in range(1, 30):
        refs = ", ".join([f"*m{i - 1}"] * 10)
        lines.append(f"m{i}: &m{i} {{<<: [{refs}], own{i}: x}}")
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\nbinaryData:\n  " + "\n  ".join(lines) + "\n"
    result = load_text(text, "m.yaml")  # exponential without de-duplication: 10**29 pairs
    assert result.errors == []
    manifest = result.objects[0].manifest
    assert isinstance(manifest, ConfigMap) and manifest.binary_data is not None
    assert len(manifest.binary_data["m29"]) == 10 + 29


def test_merge_precedence_matches_yaml() -> None:
    text = CONFIG_MAP.replace("data:\n  greeting: hello\n", "") + (
        "binaryData:\n  a: &a {x: a, y: a}\n  b: &b {x: b, z: b}\n  c:\n    <<: [*a, *b]\n    y: own\n"
    )
    result = load_text(text, "p.yaml")
    manifest = result.objects[0].manifest
    assert isinstance(manifest, ConfigMap) and manifest.binary_data is not None
    assert (
        manifest.binary_data["c"]
        == yaml.safe_load(text)["binaryData"]["c"]
        == {"x": "a", "y": "own", "z": "b"}
    )


def test_repeated_keys_are_an_error() -> None:
    result = load_text(CONFIG_MAP + "  greeting: again\n", "r.yaml")
    assert result.objects == []
    assert [str(d) for d in result.errors] == [
        "r.yaml:7: ConfigMap/settings: YAML error: key 'greeting' is repeated in this mapping (column 3)"
    ]


def test_recursive_alias_is_refused() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: r}\ndata: &d {x: *d}\n"
    result = load_text(text, "r.yaml")
    assert messages(result.errors) == [
        "r.yaml:1: ConfigMap/r: document contains itself (recursive YAML alias)"
    ]


def test_giant_integer_is_an_error() -> None:
    result = load_text(CONFIG_MAP + "n: " + "9" * 10_000 + "\n", "n.yaml")
    assert result.objects == []
    assert result.errors[0].message.startswith("unreadable YAML value: Exceeds the limit")


# --- models whose check() is broken -------------------------------------------------------


class Broken(Manifest):
    kind: Literal["Broken"] = "Broken"
    API_VERSION: ClassVar[str] = "test.eventbridge.io/v1"

    def check(self) -> list[Finding]:
        raise KeyError("boom")


def test_exception_in_check_becomes_a_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, ("test.eventbridge.io/v1", "Broken"), Broken)
    text = "apiVersion: test.eventbridge.io/v1\nkind: Broken\nmetadata: {name: b}\n---\n" + CONFIG_MAP
    result = load_text(text, "b.yaml")
    assert [type(o.manifest) for o in result.objects] == [ConfigMap]
    assert messages(result.errors) == [
        "b.yaml:1: Broken/b: internal error while checking Broken/b: KeyError: 'boom'"
    ]


# --- round trip -----------------------------------------------------------------------------


def test_round_trip_keeps_unknown_fields() -> None:
    text = EVENT_BUS + "  futureField: {nested: [1, 2]}\nstatus:\n  phase: Running\nextraTop: yes\n"
    original: dict[str, Any] = yaml.safe_load(text)
    result = load_text(text, "rt.yaml")
    assert result.errors == []
    assert result.objects[0].manifest.dump() == original
    secret_doc: dict[str, Any] = yaml.safe_load(SECRET)
    loaded_secret = load_text(SECRET, "s.yaml").objects[0].manifest
    assert loaded_secret.dump() == secret_doc


def test_snake_case_spelling_is_not_accepted_as_the_field() -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstring_data: {a: b}\n"
    manifest = load_text(text, "s.yaml").objects[0].manifest
    assert isinstance(manifest, Secret)
    assert manifest.string_data is None
    assert manifest.model_extra == {"string_data": {"a": "b"}}
