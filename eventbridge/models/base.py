"""Base pieces of the manifest models: the Argo-flavoured pydantic base class, ObjectMeta,
the ``unsupported`` field marker that lint reports, and the reference-resolver protocol.

Conventions for every model in this package:

* Python names are snake_case; the JSON/YAML names are Argo's (camelCase aliases, explicit
  ``alias=`` where Argo's spelling is irregular, e.g. ``githubBaseURL``).
* ``extra="allow"``: fields we do not know survive a load/dump round trip (lint warns about them).
* A valid Argo field we do not implement yet is declared with :func:`unsupported`, so lint can
  warn "not supported yet" instead of ignoring it silently.
* Dump with :meth:`ArgoModel.dump` (aliases, unset fields left out) to get Argo's JSON back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

UNSUPPORTED_KEY = "eventbridge_unsupported"


def unsupported(reason: str = "not supported yet", *, alias: str | None = None) -> Any:
    """Declare a valid Argo field that eventbridge does not implement yet (lint warns when set)."""
    return Field(default=None, alias=alias, json_schema_extra={UNSUPPORTED_KEY: reason})


def argo_camel(name: str) -> str:
    """snake_case -> Argo's camelCase: ``event_bus_name`` -> ``eventBusName``, ``k8s`` stays ``k8s``
    (pydantic's ``to_camel`` would say ``k8S``), a trailing ``_`` is dropped (``from_`` -> ``from``)."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


class ArgoModel(BaseModel):
    """Base for every Argo object and sub-object."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        alias_generator=argo_camel,
        serialize_by_alias=True,
    )

    def dump(self) -> dict[str, Any]:
        """Argo's JSON shape: aliases, only fields that were set, extras kept."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class ObjectMeta(ArgoModel):
    """Kubernetes ObjectMeta (the subset with meaning here; the rest is kept as extras)."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    generation: int | None = None
    # Carried so that `kubectl get -o yaml` output loads without "unknown field" noise; unused.
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    managed_fields: list[dict[str, Any]] | None = None
    self_link: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """A semantic problem found by :meth:`Manifest.check`.

    ``path`` uses Argo's field names with list indexes, e.g. ``spec.triggers.0.template.name``.
    """

    path: str
    message: str
    severity: Literal["error", "warning"] = "error"


class Manifest(ArgoModel):
    """A top-level object: apiVersion, kind, metadata, plus the kind's spec (in subclasses)."""

    api_version: str = "argoproj.io/v1alpha1"
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    API_VERSION: ClassVar[str] = "argoproj.io/v1alpha1"

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    def check(self) -> list[Finding]:
        """Semantic checks beyond the schema (unknown references, duplicates...); override per kind."""
        return []


class References(Protocol):
    """Resolves Kubernetes Secret and ConfigMap key references (``{name, key}`` selectors).

    Embedded mode answers from v1 Secret/ConfigMap manifests found in the loaded paths;
    cluster mode from the API server. Raises :class:`eventbridge.errors.NotFoundError` with a
    message that names the secret and key but never the value.
    """

    def secret(self, namespace: str, name: str, key: str) -> str: ...

    def config_map(self, namespace: str, name: str, key: str) -> str: ...
