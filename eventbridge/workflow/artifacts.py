"""Artifacts: the local directory repository, and fetching input artifacts (raw, http, git, from).

Output artifacts are kept in a directory repository (by default ``<state dir>/artifacts``)::

    <root>/<namespace>/<workflow>/<node id>/<name>.tgz     (archive: tar, the default)
    <root>/<namespace>/<workflow>/<node id>/<name>         (archive: none)

and recorded on the node like Argo does (``outputs.artifacts[]``) with a ``local: {key}`` location
(relative to the root). A ``.tgz`` holds one entry named after the artifact path's base name;
loading it back puts that entry (a file or a directory) at the input artifact's path.

Input artifact sources: ``raw.data``, ``http.url`` (aiohttp, optional headers), ``git.repo`` (the
host's ``git``: clone, then check out ``revision``), and ``from``/``fromExpression`` (an artifact
recorded by an earlier step, ``{{steps.x.outputs.artifacts.y}}``), and ``s3`` through an
:class:`ObjectStore` (the boto3 adapter is ``eventbridge/executors/artifacts_s3.py``; the engine may
not import boto3). Other cloud stores (gcs, azure, oss, hdfs, artifactory) are not supported yet and
fail with a message saying so.

S3 follows Argo: ``endpoint`` is ``host:port`` (https unless ``insecure``), credentials come from
``accessKeySecret``/``secretKeySecret`` (Secrets), fields an artifact leaves out (key-only
artifacts) come from the workflow's S3 artifact repository. An output artifact is uploaded as a
``.tgz`` (one entry named after the path's base name) unless ``archive: {none: {}}``; a downloaded
object that is a gzipped tar is unpacked, as Argo's executor does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from eventbridge.errors import InvalidError, NotFoundError

Record = dict[str, Any]
CLOUD_KEYS = ("gcs", "azure", "oss", "hdfs", "artifactory", "plugin")
SOURCE_KEYS = ("local", "raw", "http", "git", "s3", *CLOUD_KEYS)
HTTP_TIMEOUT = 300.0
GIT_TIMEOUT = 600.0


def safe_name(part: str) -> str:
    cleaned = part.replace("/", "_").replace("\x00", "_")
    return "_" if cleaned in ("", ".", "..") else cleaned


def has_source(artifact: Record) -> bool:
    """Whether an artifact dict says where its content is."""
    return any(artifact.get(key) is not None for key in SOURCE_KEYS)


def parse_reference(text: str) -> Record:
    """The artifact record a substituted ``from`` holds (the JSON of a recorded artifact)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidError(f"artifact reference {text[:200]!r} does not name a recorded artifact") from None
    if not isinstance(record, dict) or not has_source(record):
        raise InvalidError(f"artifact reference {text[:200]!r} does not name a recorded artifact")
    return record


class ArtifactRepository:
    """A local directory artifact repository (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def node_dir(self, namespace: str, workflow: str, node_id: str) -> Path:
        return self.root / safe_name(namespace) / safe_name(workflow) / safe_name(node_id)

    def volume_dir(self, namespace: str, workflow: str, volume: str) -> Path:
        """The host directory behind a workflow's emptyDir volume (or volumeClaimTemplate)."""
        return self.root / ".volumes" / safe_name(namespace) / safe_name(workflow) / safe_name(volume)

    def staging(self, namespace: str, workflow: str, node_id: str) -> Path:
        """A scratch directory for one step's inputs and collected outputs."""
        return self.root / ".staging" / safe_name(namespace) / safe_name(workflow) / safe_name(node_id)

    async def save(self, collected: Path, namespace: str, workflow: str, node_id: str, artifact: Record) -> Record:
        """Store a collected file/directory for ``artifact`` (name, path, archive); its record."""
        return await asyncio.to_thread(self._save, collected, namespace, workflow, node_id, artifact)

    def _save(self, collected: Path, namespace: str, workflow: str, node_id: str, artifact: Record) -> Record:
        name = str(artifact["name"])
        target_dir = self.node_dir(namespace, workflow, node_id)
        target_dir.mkdir(parents=True, exist_ok=True)
        archive = artifact.get("archive") or {}
        record: Record = {"name": name}
        if artifact.get("path"):
            record["path"] = artifact["path"]
        if "none" in archive:
            target = target_dir / safe_name(name)
            _remove(target)
            shutil.move(str(collected), target)
            record["archive"] = {"none": {}}
        else:
            target = target_dir / f"{safe_name(name)}.tgz"
            pack(collected, artifact, target)
            _remove(collected)
        record["local"] = {"key": str(target.relative_to(self.root))}
        return record

    async def load(self, record: Record, dest: Path, *, sub_path: str | None = None) -> None:
        """Put the content of a recorded artifact at ``dest`` (a file or a directory)."""
        await asyncio.to_thread(self._load, record, dest, sub_path)

    def _load(self, record: Record, dest: Path, sub_path: str | None) -> None:
        key = str((record.get("local") or {}).get("key") or "")
        source = (self.root / key).resolve()
        if not key or not str(source).startswith(str(self.root.resolve()) + os.sep):
            raise InvalidError(f"artifact {record.get('name')!r} has no usable location")
        if not source.exists():
            raise NotFoundError(f"artifact {record.get('name')!r} is no longer in the repository ({key})")
        place(source, dest, sub_path, str(record.get("name")), unpack=source.suffix == ".tgz")

    def delete_workflow(self, namespace: str, workflow: str) -> None:
        """Remove every artifact of a workflow (used when the workflow is deleted)."""
        shutil.rmtree(self.root / safe_name(namespace) / safe_name(workflow), ignore_errors=True)
        shutil.rmtree(self.root / ".staging" / safe_name(namespace) / safe_name(workflow), ignore_errors=True)
        shutil.rmtree(self.root / ".volumes" / safe_name(namespace) / safe_name(workflow), ignore_errors=True)


def place(source: Path, dest: Path, sub_path: str | None, name: str, *, unpack: bool) -> None:
    """Put ``source`` at ``dest``: a .tgz (``unpack``) is extracted (a single entry becomes ``dest``
    itself), anything else copied; ``sub_path`` selects a part of the content."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove(dest)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".load-") as scratch:
        if unpack and source.is_file():
            with tarfile.open(source, "r:gz") as tar:
                tar.extractall(scratch, filter="data")
            entries = list(Path(scratch).iterdir())
            content = entries[0] if len(entries) == 1 else Path(scratch)
        else:
            content = source
        if sub_path:
            content = content / sub_path
            if not content.exists():
                raise NotFoundError(f"artifact {name!r} has no {sub_path!r}")
        if content.is_dir():
            shutil.copytree(content, dest, symlinks=True)
        else:
            shutil.copy2(content, dest)


def pack(collected: Path, artifact: Record, target: Path) -> None:
    """Write ``collected`` (a file or directory) as the .tgz ``target``: one entry named after the
    artifact path's base name, compressed at ``archive.tar.compressionLevel`` (default 6)."""
    archive = artifact.get("archive") or {}
    level = int(((archive.get("tar") or {}).get("compressionLevel")) or 6)
    name = str(artifact.get("name") or "artifact")
    arcname = Path(str(artifact.get("path") or name)).name or name
    partial = target.with_name(target.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=max(1, min(level, 9))) as tar:
        tar.add(collected, arcname=arcname)
    partial.replace(target)


def _is_tgz(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return False
    try:
        with tarfile.open(path, "r:gz") as tar:
            tar.next()
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False


# ---------------------------------------------------------------------- s3


@dataclass(frozen=True, slots=True)
class S3Location:
    """An S3 object (or key prefix) with its credentials resolved (never logged or recorded)."""

    endpoint: str
    bucket: str
    key: str
    region: str = ""
    insecure: bool = False
    access_key: str = ""
    secret_key: str = ""

    def __repr__(self) -> str:
        return f"S3Location(endpoint={self.endpoint!r}, bucket={self.bucket!r}, key={self.key!r})"


class ObjectStore(Protocol):
    """An S3-compatible client (see ``eventbridge/executors/artifacts_s3.py``)."""

    async def upload(self, location: S3Location, source: Path) -> None: ...

    async def download(self, location: S3Location, dest: Path) -> None: ...


#: ``secret(namespace, name, key)`` -> the Secret value (References.secret).
SecretReader = Callable[[str, str, str], str]
S3_FIELDS = ("endpoint", "bucket", "region", "insecure", "accessKeySecret", "secretKeySecret", "useSDKCreds")


@dataclass
class S3Access:
    """What moving S3 artifacts of one workflow needs: the client, Secrets, the repository's defaults."""

    client: ObjectStore | None
    secret: SecretReader | None
    namespace: str
    repository: Mapping[str, Any] | None = None  # the ``s3`` block of the artifact repository

    def spec(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """An artifact's ``s3`` block completed with the repository's fields it leaves out."""
        merged = {k: v for k, v in (self.repository or {}).items() if k in S3_FIELDS}
        merged.update({k: v for k, v in given.items() if v not in (None, "")})
        return merged

    def location(self, spec: Mapping[str, Any], what: str) -> S3Location:
        """The location of a completed ``s3`` block; InvalidError if the bucket or key is missing."""
        bucket, key = str(spec.get("bucket") or ""), str(spec.get("key") or "")
        if not bucket or not key:
            raise InvalidError(
                f"{what}: s3 needs a bucket and a key (give them, or configure an S3 artifact repository)"
            )
        return S3Location(
            endpoint=str(spec.get("endpoint") or ""),
            bucket=bucket,
            key=key.lstrip("/"),
            region=str(spec.get("region") or ""),
            insecure=bool(spec.get("insecure")),
            access_key=self._secret(spec.get("accessKeySecret"), what),
            secret_key=self._secret(spec.get("secretKeySecret"), what),
        )

    def _secret(self, selector: Any, what: str) -> str:
        if not isinstance(selector, dict) or not selector.get("name"):
            return ""
        if self.secret is None:
            raise InvalidError(f"{what}: s3 credentials need a Secret resolver")
        return self.secret(self.namespace, str(selector["name"]), str(selector.get("key") or ""))

    def need_client(self, what: str) -> ObjectStore:
        if self.client is None:
            raise InvalidError(f"{what}: s3 artifacts need an S3 client, and this controller has none configured")
        return self.client


async def fetch_s3(artifact: Record, dest: Path, s3: S3Access) -> None:
    """Download an ``s3`` input artifact to ``dest``, unpacking a .tgz object."""
    what = f"artifact {artifact.get('name')!r}"
    client = s3.need_client(what)
    location = s3.location(s3.spec(artifact.get("s3") or {}), what)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".s3-") as scratch:
        downloaded = Path(scratch) / "object"
        await client.download(location, downloaded)
        tgz = await asyncio.to_thread(_is_tgz, downloaded)
        await asyncio.to_thread(place, downloaded, dest, artifact.get("subPath"), str(artifact.get("name")), unpack=tgz)


async def save_s3(collected: Path, artifact: Record, spec: Mapping[str, Any], s3: S3Access) -> Record:
    """Upload a collected output (a .tgz unless ``archive: none``); the artifact's record."""
    what = f"artifact {artifact.get('name')!r}"
    client = s3.need_client(what)
    location = s3.location(spec, what)
    archive = artifact.get("archive") or {}
    record: Record = {"name": artifact["name"]}
    if artifact.get("path"):
        record["path"] = artifact["path"]
    if "none" in archive:
        await client.upload(location, collected)
        record["archive"] = {"none": {}}
    else:
        with tempfile.TemporaryDirectory(prefix=".s3-", dir=collected.parent) as scratch:
            target = Path(scratch) / "artifact.tgz"
            await asyncio.to_thread(pack, collected, artifact, target)
            await client.upload(location, target)
    await asyncio.to_thread(_remove, collected)
    record["s3"] = {k: v for k, v in spec.items() if k in (*S3_FIELDS, "key")}
    return record


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def fetch(artifact: Record, dest: Path, repository: ArtifactRepository, s3: S3Access | None = None) -> None:
    """Materialize an input artifact (its source already substituted) at host path ``dest``."""
    name = artifact.get("name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for key in CLOUD_KEYS:
        if artifact.get(key) is not None:
            raise InvalidError(
                f"artifact {name!r}: {key} artifacts are not supported yet by the bundled controller "
                "(use raw, http, git, s3 or artifacts passed between steps)"
            )
    if artifact.get("local") is not None:
        await repository.load(artifact, dest, sub_path=artifact.get("subPath"))
    elif artifact.get("raw") is not None:
        data = str((artifact["raw"] or {}).get("data") or "")
        await asyncio.to_thread(dest.write_text, data, "utf-8")
    elif artifact.get("http") is not None:
        await _fetch_http(artifact, dest)
    elif artifact.get("git") is not None:
        await _fetch_git(artifact, dest)
    elif artifact.get("s3") is not None:
        await fetch_s3(artifact, dest, s3 or S3Access(None, None, "default"))
    else:
        raise InvalidError(f"artifact {name!r} has no source (from, raw, http, git, s3)")
    mode = artifact.get("mode")
    if mode is not None:
        await asyncio.to_thread(_chmod, dest, int(mode) & 0o7777)


def _chmod(path: Path, mode: int) -> None:
    if path.is_file():
        path.chmod(mode)


async def _fetch_http(artifact: Record, dest: Path) -> None:
    spec = artifact["http"] or {}
    url = str(spec.get("url") or "")
    if not url.startswith(("http://", "https://")):
        raise InvalidError(f"artifact {artifact.get('name')!r}: http.url must be an http(s) URL")
    headers = {str(h.get("name")): str(h.get("value", "")) for h in spec.get("headers") or [] if h.get("name")}
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url, headers=headers) as response:
            if response.status >= 300:
                raise InvalidError(
                    f"artifact {artifact.get('name')!r}: GET {url} answered {response.status} {response.reason}"
                )
            with dest.open("wb") as handle:
                async for chunk in response.content.iter_chunked(65536):
                    handle.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise InvalidError(f"artifact {artifact.get('name')!r}: GET {url} failed: {exc}") from None


async def _fetch_git(artifact: Record, dest: Path) -> None:
    spec = artifact["git"] or {}
    repo = str(spec.get("repo") or "")
    if not repo:
        raise InvalidError(f"artifact {artifact.get('name')!r}: git.repo is required")
    revision = spec.get("revision")
    branch = spec.get("branch")
    command = ["git", "clone", "--quiet"]
    if spec.get("depth"):
        command += ["--depth", str(int(spec["depth"]))]
    if spec.get("singleBranch") and branch:
        command += ["--single-branch", "--branch", str(branch)]
    command += ["--", repo, str(dest)]
    await _git(command, artifact, None)
    if revision:
        await _git(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", str(revision)], artifact, dest)


async def _git(command: list[str], artifact: Record, cwd: Path | None) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0", "HOME": "/nonexistent"}
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        raise InvalidError(f"artifact {artifact.get('name')!r}: cannot run git: {exc}") from None
    try:
        output, _ = await asyncio.wait_for(process.communicate(), GIT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise InvalidError(f"artifact {artifact.get('name')!r}: git took longer than {GIT_TIMEOUT:g}s") from None
    if process.returncode != 0:
        tail = output.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise InvalidError(f"artifact {artifact.get('name')!r}: {' '.join(command[:2])} failed: {tail[0]}")
