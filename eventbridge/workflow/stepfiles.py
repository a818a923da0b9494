"""A workflow's files on the host: its steps' input artifacts staged, its volumes as directories
its steps share, and its output artifacts saved (the local repository or S3).

:func:`s3_access` picks the workflow's S3 repository (``spec.artifactRepositoryRef`` or the
controller's default); a :class:`StepFiles` serves one workflow's steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.executors.base import PathMount
from eventbridge.expr.template import substitute
from eventbridge.models.base import References
from eventbridge.models.workflow import Artifact, Template
from eventbridge.workflow.artifacts import ArtifactRepository, ObjectStore, Record, S3Access, fetch, safe_name, save_s3

#: Where an output artifact without an S3 key goes, as Argo's default ``keyFormat``.
DEFAULT_KEY_FORMAT = "{{workflow.name}}/{{pod.name}}"


def s3_access(
    object_store: ObjectStore | None,
    references: References | None,
    namespace: str,
    default_repository: Mapping[str, Any] | None,
    repository_ref: Mapping[str, Any] | None,
) -> S3Access:
    """S3 access for a workflow: the repository of ``spec.artifactRepositoryRef`` (a ConfigMap
    key holding ``s3: {...}``) or the controller's default repository."""
    secret = references.secret if references is not None else None
    repository: Mapping[str, Any] | None = default_repository
    if repository_ref:
        config_map = str(repository_ref.get("configMap") or "artifact-repositories")
        key = str(repository_ref.get("key") or "")
        if not key:
            raise InvalidError(
                "artifactRepositoryRef.key is required here (the bundled controller does not read the "
                "ConfigMap's default-artifact-repository annotation)"
            )
        if references is None:
            raise InvalidError("artifactRepositoryRef needs a ConfigMap resolver")
        text = references.config_map(namespace, config_map, key)
        try:
            repository = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidError(f"artifactRepositoryRef {config_map}/{key} is not YAML: {exc}") from None
        if not isinstance(repository, dict):
            raise InvalidError(f"artifactRepositoryRef {config_map}/{key} is not an artifact repository")
    s3 = repository.get("s3") if repository else None
    if repository and s3 is None and "archiveLogs" not in repository:
        kind = next(iter(repository), "unknown")
        raise InvalidError(f"artifact repository kind {kind!r} is not supported (s3 is; or none for local)")
    return S3Access(object_store, secret, namespace, s3 if isinstance(s3, dict) else None)


class StepFiles:
    """The files of one workflow's steps. ``local`` is the controller's directory repository
    (``None``: no artifacts or volumes here); ``s3`` the workflow's S3 access."""

    def __init__(self, local: ArtifactRepository | None, s3: S3Access, namespace: str, workflow: str) -> None:
        self.local = local
        self.s3 = s3
        self.namespace = namespace
        self.workflow = workflow

    @property
    def repository(self) -> ArtifactRepository:
        """The directory repository; an error when the controller has none."""
        if self.local is None:
            raise InvalidError("artifacts need an artifact repository (none is configured for this controller)")
        return self.local

    def staging(self, node_id: str) -> Path:
        """The node's scratch directory (inputs fetched, outputs collected)."""
        return self.repository.staging(self.namespace, self.workflow, node_id)

    async def stage_inputs(self, node_id: str, artifacts: Mapping[str, Record]) -> list[PathMount]:
        """Fetch input artifacts into the node's staging directory; the mounts that place them."""
        mounts: list[PathMount] = []
        for name, record in artifacts.items():
            if not record.get("path"):
                continue
            target = self.staging(node_id) / "inputs" / safe_name(name)
            try:
                await fetch(record, target, self.repository, self.s3)
            except (InvalidError, NotFoundError) as exc:
                if record.get("optional"):
                    continue
                raise InvalidError(f"input artifact {name!r}: {exc}") from None
            mounts.append(PathMount(str(record["path"]), str(target)))
        return mounts

    def volume_mounts(
        self, mounts_spec: list[dict[str, Any]], volumes: list[dict[str, Any]], claim_templates: list[dict[str, Any]]
    ) -> list[PathMount]:
        """``volumeMounts`` of emptyDir ``volumes`` and of ``volumeClaimTemplates``: one host
        directory per workflow and volume, shared by its steps."""
        if not mounts_spec:
            return []
        repository = self.repository
        known = {str(volume.get("name")): volume for volume in volumes}
        claims = {str((claim.get("metadata") or {}).get("name")) for claim in claim_templates}
        mounts: list[PathMount] = []
        for mount in mounts_spec:
            name = str(mount.get("name"))
            declared = known.get(name)
            if name not in claims and (declared is None or "emptyDir" not in declared):
                kind = next((k for k in (declared or {}) if k != "name"), "unknown")
                raise InvalidError(
                    f"volume {name!r} ({kind}): the host executor supports emptyDir volumes and "
                    "volumeClaimTemplates (a directory shared by the workflow's steps)"
                )
            host = repository.volume_dir(self.namespace, self.workflow, name)
            sub_path = str(mount.get("subPath") or "")
            if sub_path:
                if sub_path.startswith("/") or ".." in Path(sub_path).parts:
                    raise InvalidError(f"volumeMounts subPath {sub_path!r} must stay inside the volume")
                host = host / sub_path
            host.mkdir(parents=True, exist_ok=True)
            mounts.append(PathMount(str(mount.get("mountPath")), str(host), copy=False))
        return mounts

    async def save_outputs(
        self, node_id: str, template: Template, collected: Mapping[str, str], key_scope: Mapping[str, str]
    ) -> list[tuple[Artifact, Record]]:
        """Save the output artifacts the step collected (host paths by name): to S3 when the
        artifact or the workflow's repository says so, else to the directory repository.
        ``key_scope`` fills the S3 ``keyFormat`` (``workflow.*``, ``pod.name``)."""
        saved: list[tuple[Artifact, Record]] = []
        for artifact in (template.outputs.artifacts if template.outputs else None) or []:
            host = collected.get(artifact.name)
            if host is None or self.local is None:
                continue
            declared = artifact.model_dump(by_alias=True, exclude_none=True, mode="json")
            if artifact.s3 is not None or self.s3.repository is not None:
                record = await save_s3(Path(host), declared, self._output_s3(artifact, key_scope), self.s3)
            else:
                record = await self.local.save(Path(host), self.namespace, self.workflow, node_id, declared)
            saved.append((artifact, record))
        return saved

    def _output_s3(self, artifact: Artifact, key_scope: Mapping[str, str]) -> dict[str, Any]:
        """Where an output artifact goes in S3: its own ``s3`` block completed by the repository;
        without a key, ``<keyFormat>/<name>.tgz``."""
        spec = self.s3.spec(artifact.s3 or {})
        if not spec.get("key"):
            key_format = str((self.s3.repository or {}).get("keyFormat") or DEFAULT_KEY_FORMAT)
            scope = {"workflow.creationTimestamp": "", **key_scope}
            base = substitute(key_format, scope).strip("/")
            archive = artifact.archive or {}
            spec["key"] = f"{base}/{artifact.name}" + ("" if "none" in archive else ".tgz")
        return spec
