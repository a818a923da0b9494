"""Kubernetes list options as argo-server reads them: label selectors, field selectors, ``fields``.

* Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a`` (exists),
  ``!a`` (does not exist), joined by commas (all must hold).
* Field selectors: ``metadata.name``, ``metadata.namespace``, ``status.phase`` (and any other dotted
  path to a string) with ``=``, ``==`` or ``!=``.
* ``fields``: argo-server's response projection, e.g. ``items.metadata.name,items.status.phase``
  (keep only these) or ``-items.status.nodes`` (drop these).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eventbridge.errors import InvalidError

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

Operator = Literal["=", "!=", "in", "notin", "exists", "!exists"]


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the label too, as in Kubernetes
        return not present or value not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise InvalidError(f"unbalanced parentheses in selector {text!r}")
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise InvalidError(f"unbalanced parentheses in selector {text!r}")
    terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


def _check_key(key: str, term: str) -> str:
    if not _LABEL_KEY.match(key):
        raise InvalidError(f"invalid label key {key!r} in selector term {term!r}")
    return key


def _check_value(value: str, term: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise InvalidError(f"invalid label value {value!r} in selector term {term!r}")
    return value


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a Kubernetes label selector; InvalidError says which term is wrong."""
    requirements: list[Requirement] = []
    for term in _split_terms(text):
        set_match = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", term)
        if set_match:
            key = _check_key(set_match.group(1), term)
            values = frozenset(_check_value(v.strip(), term) for v in set_match.group(3).split(","))
            operator: Operator = "in" if set_match.group(2) == "in" else "notin"
            requirements.append(Requirement(key, operator, values))
            continue
        eq_match = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", term)
        if eq_match:
            key = _check_key(eq_match.group(1), term)
            value = _check_value(eq_match.group(3), term)
            requirements.append(Requirement(key, "!=" if eq_match.group(2) == "!=" else "=", frozenset({value})))
            continue
        if term.startswith("!"):
            requirements.append(Requirement(_check_key(term[1:].strip(), term), "!exists"))
            continue
        if re.fullmatch(r"\S+", term):
            requirements.append(Requirement(_check_key(term, term), "exists"))
            continue
        raise InvalidError(
            f"invalid label selector term {term!r}: use key=value, key!=value, key in (a,b), key notin (a,b), "
            "key or !key"
        )
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    found = labels or {}
    return all(r.matches(found) for r in requirements)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        current: Any = obj
        for part in self.path:
            current = current.get(part) if isinstance(current, Mapping) else None
        text = "" if current is None else str(current)
        return (text == self.value) == self.equal


def parse_field_selector(text: str) -> list[FieldRequirement]:
    """``metadata.name=x,status.phase!=Running``; InvalidError if a term has no operator."""
    out: list[FieldRequirement] = []
    for term in _split_terms(text):
        match = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", term)
        if match is None:
            raise InvalidError(f"invalid field selector term {term!r}: use field=value or field!=value")
        out.append(FieldRequirement(tuple(match.group(1).split(".")), match.group(2) != "!=", match.group(3).strip()))
    return out


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(r.matches(obj) for r in requirements)


# --------------------------------------------------------------------------- fields projection

_Tree = dict[str, Any]  # nested dict of path parts; an empty dict marks a leaf (the whole value)


def _tree(paths: list[str]) -> _Tree:
    root: _Tree = {}
    for path in paths:
        node = root
        parts = [p for p in path.split(".") if p]
        for index, part in enumerate(parts):
            if index == len(parts) - 1:
                node[part] = {}
            else:
                child = node.get(part)
                if child == {} and part in node:  # an ancestor is already kept whole
                    break
                node = node.setdefault(part, {})
    return root


def _keep(value: Any, tree: _Tree) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_keep(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    return {k: _keep(value[k], sub) for k, sub in tree.items() if k in value}


def _drop(value: Any, tree: _Tree) -> Any:
    if isinstance(value, list):
        return [_drop(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = tree.get(key)
        if sub is None:
            out[key] = item
        elif sub:
            out[key] = _drop(item, sub)
    return out


def projection(fields: str) -> Callable[[Any], Any]:
    """The function that applies argo-server's ``fields`` parameter to a response document."""
    parts = [p.strip() for p in fields.split(",") if p.strip()]
    if not parts:
        return lambda doc: doc
    if parts[0].startswith("-"):
        tree = _tree([p.lstrip("-") for p in parts])
        return lambda doc: _drop(doc, tree)
    tree = _tree(parts)
    return lambda doc: _keep(doc, tree)
