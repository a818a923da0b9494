"""Load manifests from YAML/JSON files and folders into typed models, with located diagnostics.

* :func:`load_paths` reads files and folders (recursively: ``*.yaml``, ``*.yml``, ``*.json``;
  hidden files and folders are skipped), :func:`load_text` reads one text.
* YAML is read with a safe loader (no Python tags). As in Kubernetes, timestamps and ``=`` stay
  strings. Multi-document files are fine; a YAML syntax error loses only that file.
* A document with an error is left out of :attr:`LoadResult.objects`; the other documents of the
  same file still load. Empty documents are skipped silently; kinds eventbridge does not read
  (Service, Deployment, RBAC, ...) are skipped with a warning. Each object's ``check()`` runs
  here, so every loaded object is valid.
* A second object with the same (kind, namespace, name) is an error; the first one stays.
* Hostile input is cut short: files above :data:`MAX_FILE_BYTES`, nesting deeper than
  :data:`~eventbridge.models.kinds.MAX_DEPTH`, and alias expansion above
  :data:`~eventbridge.models.kinds.MAX_NODES` values are errors, never crashes.

Diagnostics print as ``file:line: Kind/name: field.path: reason`` (errors) and
``file:line: Kind/name: field.path: warning: reason`` (warnings). Parts that do not apply are left
out (a YAML syntax error is ``file:line: reason``); line 0 means "the whole file" (unreadable).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from eventbridge.models.base import Manifest
from eventbridge.models.kinds import (
    CLUSTER_SCOPED_KINDS,
    MAX_DEPTH,
    FieldPath,
    Problem,
    join_path,
    key_text,
    validate_document,
)

MAX_FILE_BYTES = 10 * 1024 * 1024
"""Largest manifest file read (bigger files are an error)."""

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

Severity = Literal["error", "warning"]


@dataclass(slots=True)
class Diagnostic:
    """One located problem. ``line`` is 1-based (0: not tied to a line); ``path`` uses Argo's
    field names with list indexes (``spec.triggers.0.template.name``); empty parts are omitted
    when printed."""

    file: str
    line: int
    kind: str
    name: str
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.line}"]
        if self.kind or self.name:
            parts.append(f"{self.kind or '?'}/{self.name or '(unnamed)'}")
        if self.path:
            parts.append(self.path)
        if self.severity == "warning":
            parts.append("warning")
        parts.append(self.message)
        return ": ".join(parts)


class SourceMap:
    """Maps field paths of one YAML document to line numbers (via its composed node tree)."""

    def __init__(self, node: Node | None, default_line: int) -> None:
        self._node = node
        self.default_line = default_line

    def line(self, path: FieldPath) -> int:
        """Line of the deepest existing field on ``path`` (the document start if none)."""
        node = self._node
        line = self.default_line
        for part in path:
            if node is None:
                break
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
            line = (key_node or node).start_mark.line + 1
        return line


def _child(node: Node, part: str | int) -> tuple[Node | None, Node] | None:
    """(key node, value node) of ``part`` inside ``node``, following YAML merge keys."""
    if isinstance(node, MappingNode):
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                if key_node.value == str(part):
                    return key_node, value_node
                if key_node.tag == "tag:yaml.org,2002:merge":
                    merges.append(value_node)
        for merged in merges:
            candidates = merged.value if isinstance(merged, SequenceNode) else [merged]
            for candidate in candidates:
                found = _child(candidate, part) if isinstance(candidate, MappingNode) else None
                if found is not None:
                    return found
    elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None


@dataclass(slots=True)
class Loaded:
    """One valid object and where it came from (``line``: its document's first line)."""

    manifest: Manifest
    file: str
    line: int
    source: SourceMap | None = field(default=None, repr=False, compare=False)

    def line_of(self, path: FieldPath) -> int:
        return self.source.line(path) if self.source is not None else self.line


@dataclass(slots=True)
class LoadResult:
    objects: list[Loaded] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def manifests(self) -> list[Manifest]:
        return [loaded.manifest for loaded in self.objects]

    def extend(self, other: LoadResult) -> None:
        self.objects.extend(other.objects)
        self.diagnostics.extend(other.diagnostics)


# ---------------------------------------------------------------------------------------------
# YAML reading


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__(f"nesting deeper than {MAX_DEPTH} levels")
        self.problem_mark = mark


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _KubernetesConstructor(yaml.constructor.SafeConstructor):
    """Mappings as Kubernetes builds them: scalar keys only, keys as strings (so ``1`` and
    ``true`` stay distinct), a repeated key is an error; merge keys (``<<``) still work."""

    def flatten_mapping(self, node: MappingNode) -> None:
        """PyYAML's merge-key flattening, but merged keys are de-duplicated at every level, so
        ``<<: [*m, *m, ...]`` chains stay linear instead of growing exponentially."""
        explicit = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
        super().flatten_mapping(node)
        if len(explicit) == len(node.value):
            return
        explicit_keys = {key.value for key, _ in node.value if id(key) in explicit and isinstance(key, ScalarNode)}
        kept: list[tuple[Node, Node]] = []
        merged_seen: set[str] = set()
        for key, value in reversed(node.value):  # later merged pairs win, as in PyYAML
            if id(key) not in explicit and isinstance(key, ScalarNode):
                if key.value in explicit_keys or key.value in merged_seen:
                    continue
                merged_seen.add(key.value)
            kept.append((key, value))
        kept.reverse()
        node.value = kept

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        explicit = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
        self.flatten_mapping(node)
        mapping: dict[Hashable, Any] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "keys must be scalars",
                    key_node.start_mark,
                )
            key = key_text(self.construct_object(key_node))
            if id(key_node) in explicit:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is repeated in this mapping", key_node.start_mark
                    )
                seen.add(key)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


class _PyManifestLoader(_KubernetesConstructor, yaml.SafeLoader):
    """Pure-Python SafeLoader with Kubernetes' scalar rules and a nesting limit while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _CManifestLoader(_KubernetesConstructor, yaml.CSafeLoader):
    """libyaml-backed SafeLoader (5x faster). Its composer recurses in C without a limit, so
    nesting is checked first by :func:`_check_depth` on the (flat) event stream."""


_ManifestLoader = _PyManifestLoader | _CManifestLoader

# Kubernetes reads YAML with Go's yaml library into JSON: timestamps stay strings, '=' is a string.
_PyManifestLoader.yaml_implicit_resolvers = _CManifestLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_HAVE_LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))


def _check_depth(text: str) -> None:
    """Raise :class:`_TooDeep` if collections nest deeper than MAX_DEPTH (libyaml events)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooDeep(event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _yaml_error_text(error: yaml.YAMLError) -> tuple[int, str]:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    if isinstance(error, _TooDeep):
        return line, f"document nests deeper than {MAX_DEPTH} levels"
    label = "YAML error" if isinstance(error, yaml.constructor.ConstructorError) else "YAML syntax error"
    problem = getattr(error, "problem", None)
    context = getattr(error, "context", None)
    if problem:
        text = f"{context}, {problem}" if context else str(problem)
        column = f" (column {mark.column + 1})" if mark is not None else ""
        return line, f"{label}: {text}{column}"
    return line, f"{label}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"


def _compose_documents(text: str) -> tuple[_ManifestLoader, list[Node | None]]:
    loader: _ManifestLoader
    if _HAVE_LIBYAML:
        _check_depth(text)
        loader = _CManifestLoader(text)
    else:
        loader = _PyManifestLoader(text)
    nodes: list[Node | None] = []
    try:
        while loader.check_node():
            nodes.append(loader.get_node())
    except BaseException:
        loader.dispose()
        raise
    return loader, nodes


def _document_line(node: Node) -> int:
    return int(node.start_mark.line) + 1


# ---------------------------------------------------------------------------------------------
# Loading


class _Collector:
    """Accumulates one load: objects, diagnostics and the duplicate index."""

    def __init__(self) -> None:
        self.result = LoadResult()
        self._seen: dict[tuple[str, str, str], tuple[str, int]] = {}

    def add_problem(self, file: str, line: int, kind: str, name: str, problem: Problem) -> None:
        self.result.diagnostics.append(
            Diagnostic(file, line, kind, name, join_path(problem.path), problem.message, problem.severity)
        )

    def add_document(self, file: str, document: Any, source: SourceMap) -> None:
        checked = validate_document(document)
        kind, name = checked.kind, checked.name
        if checked.ignored:
            self.add_problem(
                file,
                source.line(("kind",)),
                kind,
                name,
                Problem((), f"kind {kind} is not used by eventbridge; ignored", "warning"),
            )
            return
        for problem in checked.problems:
            self.add_problem(file, source.line(problem.path), kind, name, problem)
        manifest = checked.manifest
        if manifest is None:
            return
        if manifest.metadata.name:
            namespace = "" if manifest.kind in CLUSTER_SCOPED_KINDS else manifest.namespace
            key = (manifest.kind, namespace, manifest.metadata.name)
            first = self._seen.get(key)
            if first is not None:
                where = f"{namespace}/{manifest.name}" if namespace else manifest.name
                self.add_problem(
                    file,
                    source.line(("metadata", "name")),
                    kind,
                    name,
                    Problem(
                        ("metadata", "name"),
                        f"duplicate {manifest.kind} {where} (first defined at {first[0]}:{first[1]}); "
                        "this one is ignored",
                    ),
                )
                return
            self._seen[key] = (file, source.default_line)
        self.result.objects.append(Loaded(manifest, file, source.default_line, source))

    def file_error(self, file: str, line: int, message: str) -> None:
        self.result.diagnostics.append(Diagnostic(file, line, "", "", "", message, "error"))

    def load_text(self, text: str, file: str) -> None:
        try:
            self._load_text(text, file)
        except Exception as exc:  # noqa: BLE001 - never a traceback, whatever the input
            self.file_error(file, 0, f"could not load: {type(exc).__name__}: {exc}"[:500])

    def _load_text(self, text: str, file: str) -> None:
        if len(text) > MAX_FILE_BYTES:
            self.file_error(file, 0, f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; not read")
            return
        try:
            loader, nodes = _compose_documents(text)
        except (yaml.YAMLError, RecursionError) as exc:
            if file.endswith(".json") and self._load_json(text, file):
                return
            if isinstance(exc, RecursionError):
                self.file_error(file, 1, f"document nests deeper than {MAX_DEPTH} levels")
            else:
                self.file_error(file, *_yaml_error_text(exc))
            return
        try:
            for node in nodes:
                if node is None:
                    continue
                source = SourceMap(node, _document_line(node))
                if _is_empty(node):
                    continue
                try:
                    document = loader.construct_document(node)
                except (yaml.YAMLError, ValueError, TypeError, RecursionError, OverflowError) as exc:
                    line, message = (
                        _yaml_error_text(exc)
                        if isinstance(exc, yaml.YAMLError)
                        else (source.default_line, f"unreadable YAML value: {str(exc).split(';')[0]}"[:300])
                    )
                    kind, name = _peek_identity(node)
                    self.add_problem(file, line, kind, name, Problem((), message))
                    _reset_constructor(loader)
                    continue
                self.add_document(file, document, source)
        finally:
            loader.dispose()

    def _load_json(self, text: str, file: str) -> bool:
        """Fallback for JSON that YAML 1.1 does not read; False when it is not JSON either."""
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            return False
        self.add_document(file, document, SourceMap(None, 1))
        return True

    def load_file(self, path: Path) -> None:
        file = str(path)
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                self.file_error(file, 0, "not a regular file; not read")
                return
            if info.st_size > MAX_FILE_BYTES:
                self.file_error(file, 0, f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; not read")
                return
            with path.open("rb") as stream:
                raw = stream.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            self.file_error(file, 0, f"cannot read: {exc.strerror or exc}")
            return
        if len(raw) > MAX_FILE_BYTES:
            self.file_error(file, 0, f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; not read")
            return
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            self.file_error(file, line, "not UTF-8 text")
            return
        self.load_text(text, file)


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _reset_constructor(loader: _ManifestLoader) -> None:
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.state_generators = []


def _peek_identity(node: Node) -> tuple[str, str]:
    """(kind, name) read straight from the node tree (for documents that failed to construct)."""
    kind = _child(node, "kind")
    metadata = _child(node, "metadata")
    name = _child(metadata[1], "name") if metadata is not None else None
    return (
        str(kind[1].value) if kind is not None and isinstance(kind[1], ScalarNode) else "",
        str(name[1].value) if name is not None and isinstance(name[1], ScalarNode) else "",
    )


def iter_manifest_files(path: Path) -> Iterator[Path]:
    """Manifest files under ``path`` in a stable order (sorted; hidden entries skipped)."""
    if not path.is_dir():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.endswith(MANIFEST_SUFFIXES):
                yield Path(root) / name


def load_paths(paths: Sequence[str | Path]) -> LoadResult:
    """Load every manifest in the given files and folders (folders recursively)."""
    collector = _Collector()
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            collector.file_error(str(path), 0, "no such file or folder")
            continue
        for file in iter_manifest_files(path):
            resolved = file.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            collector.load_file(file)
    return collector.result


def load_text(text: str, file: str = "<text>") -> LoadResult:
    """Load the manifests in one YAML (or JSON) text; ``file`` names it in diagnostics."""
    collector = _Collector()
    collector.load_text(text, file)
    return collector.result
