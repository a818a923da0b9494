"""HostExecutor: each workflow step runs as a process on this machine (the image is ignored).

Per step (``state_dir/<namespace>/<workflow>/<node id>/``):

* ``work/``: the private working directory (the process's cwd and ``HOME``), unless the template
  sets an absolute ``workingDir`` that exists (used as is) or a relative one (made under ``work/``);
* ``tmp/``: the step's private ``/tmp``. When the process may create mount namespaces (root, or
  ``unshare`` permitted), the step runs under ``unshare --mount --propagation private`` with
  ``tmp/`` bind-mounted over ``/tmp``, so two parallel steps writing ``/tmp/out.txt`` each get their
  own file; output parameters under ``/tmp`` are then read from ``tmp/``. Without that permission
  steps share the host's ``/tmp``; ``TMPDIR`` still points at ``tmp/``, and two running steps that
  declare the same absolute output path are refused (the second ends in Error) instead of
  silently mixing their outputs;
* ``log``: stdout and stderr, interleaved as written (what ``read_log`` returns).

The process is the leader of its own process group; kill, timeout and the end of the main
process kill the whole group (as a container's end kills everything in it).

Environment: exactly the template's ``env`` plus ``PATH`` (the directory of the Python interpreter
eventbridge runs on, so ``python``/``python3`` in a step are a real interpreter rather than a
version-manager shim, then the controller's PATH or a standard one, then Debian's games directories),
``HOME`` (the work dir), ``LANG=C.UTF-8``, ``TMPDIR`` (only without a private /tmp), and Argo's
``ARGO_WORKFLOW_NAME``, ``ARGO_NODE_ID``, ``ARGO_POD_NAME``, ``ARGO_TEMPLATE`` (the template name);
template values win. The controller's own environment (credentials included) is not inherited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from eventbridge.executors.base import OutputArtifact, OutputParameter, PathMount, StepResult, StepSpec

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNSHARE = "/usr/bin/unshare"
RESULT_LIMIT = 256 * 1024  # bytes of stdout kept for outputs.result (the log keeps everything)
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
_WRAPPER = 'mount --bind "$1" /tmp || exit 125; shift; exec "$@"'
# The "shadow root": a directory whose top-level entries are the host's (bind-mounted) plus new ones
# for the step's own absolute paths (/inputs, /workspace, /mnt/vol...), entered with chroot.
# Arguments: root cwd, then "src dst" pairs to bind (dst inside root) until "--", then the command.
_SHADOW_WRAPPER = (
    "root=$1; cwd=$2; shift 2; "
    'while [ "$1" != "--" ]; do mount --rbind "$1" "$root$2" || exit 125; shift 2; done; shift; '
    'exec chroot "$root" /bin/sh -c \'cd "$0" || exit 125; exec "$@"\' "$cwd" "$@"'
)
# Top-level directories that are always the host's own (a step cannot get a fresh one there).
SYSTEM_TOPS = frozenset(
    {
        "bin",
        "boot",
        "dev",
        "etc",
        "home",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "opt",
        "proc",
        "root",
        "run",
        "sbin",
        "sys",
        "usr",
        "var",
        "snap",
        "nix",
        "tmp",
    }
)
FRESH_TOPS = frozenset({"mnt", "media", "srv"})  # given fresh (empty) to a step that uses them

# A stand-in for the argoproj/argosay:v2 test image's entrypoint (used by Argo's examples):
# no arguments or "echo" says hello, "echo TEXT [FILE]", "cat FILE", "sleep N", "exit CODE".
_ARGOSAY = """#!/bin/sh
set -eu
case "${1:-}" in
  '') echo "hello argo" ;;
  echo)
    if [ $# -ge 3 ]; then mkdir -p "$(dirname "$3")"; printf '%s\\n' "$2" > "$3"
    elif [ $# -eq 2 ]; then printf '%s\\n' "$2"
    else echo "hello argo"; fi ;;
  cat) cat "$2" ;;
  sleep) sleep "$2" ;;
  exit) exit "${2:-0}" ;;
  assert_contains) grep -F -- "$3" "$2" ;;
  sh) sh "${2:-}" ;;
  *) echo "argosay: unknown command $1" >&2; exit 1 ;;
esac
"""


def _with_games(path: str) -> str:
    """PATH plus Debian's /usr/games (where ``cowsay``, used by many Argo examples, lives)."""
    parts = path.split(":")
    for extra in ("/usr/local/games", "/usr/games"):
        if extra not in parts:
            parts.append(extra)
    return ":".join(parts)


def _image_name(image: str | None) -> tuple[str, str]:
    """(repository without registry, tag) of an image reference."""
    name = (image or "").split("@", 1)[0]
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    for prefix in ("docker.io/", "index.docker.io/", "quay.io/", "ghcr.io/"):
        name = name.removeprefix(prefix)
    return name.removeprefix("library/"), tag


_SCRIPT_DIR = ".argo"
STEP_TMP = "/tmp"  # noqa: S108  (the path steps see as their private /tmp)


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    reason: str | None = None  # why it was ended by us (kill/timeout), if it was
    claims: list[str] = field(default_factory=list)


class HostExecutor:
    """Runs steps as host processes; see the module docstring for the per-step layout."""

    def __init__(
        self,
        state_dir: Path,
        *,
        private_tmp: bool | None = None,
        keep_files: bool = False,
    ) -> None:
        """``private_tmp``: None probes whether ``unshare`` works; ``keep_files`` keeps work/ and
        tmp/ after a step ends (they are removed by default; the log is always kept)."""
        self._state_dir = state_dir.absolute()  # steps run elsewhere: relative paths would break
        self._private_tmp = private_tmp
        self._keep_files = keep_files
        self._running: dict[tuple[str, str, str], _Running] = {}
        self._claims: dict[str, str] = {}  # shared absolute output path -> pod name writing it
        interpreter_dir = str(Path(os.path.realpath(sys.executable)).parent)
        self._path = _with_games(f"{interpreter_dir}{os.pathsep}{os.environ.get('PATH') or DEFAULT_PATH}")

    # helpers ---------------------------------------------------------------------------------

    @property
    def private_tmp(self) -> bool:
        """Whether steps get a private /tmp (probed on first use when not given)."""
        if self._private_tmp is None:
            self._private_tmp = _probe_unshare(self._state_dir)
            if not self._private_tmp:
                log.warning(
                    "unshare is not permitted here: steps share the host's /tmp "
                    "(parallel steps writing the same output path are refused)"
                )
        return self._private_tmp

    @property
    def state_dir(self) -> Path:
        """Where step directories live (the controller keeps artifacts next to it by default)."""
        return self._state_dir

    def step_dir(self, namespace: str, workflow: str, node_id: str) -> Path:
        return self._state_dir / _safe(namespace) / _safe(workflow) / _safe(node_id)

    # Executor protocol -------------------------------------------------------------------------

    async def run(self, step: StepSpec) -> StepResult:
        key = (step.namespace, step.workflow, step.node_id)
        private = self.private_tmp
        root = self.step_dir(*key)
        work, tmp = root / "work", root / "tmp"
        try:
            _prepare(root, work, tmp)
        except OSError as exc:
            return StepResult("Error", message=f"cannot prepare the step directory {root}: {exc}")
        claims: list[str] = []
        if not private:
            conflict = self._claim(step, claims)
            if conflict:
                return StepResult("Error", message=conflict)
        try:
            return await self._run(step, key, private, root, work, tmp, claims)
        finally:
            for path in claims:
                self._claims.pop(path, None)
            if not self._keep_files:
                await asyncio.to_thread(_remove, work, tmp, root / "root")

    async def kill(self, namespace: str, workflow: str, node_id: str | None = None) -> None:
        targets = [
            running
            for (ns, wf, node), running in self._running.items()
            if ns == namespace and wf == workflow and (node_id is None or node == node_id)
        ]
        await asyncio.gather(*(self._stop(running, "terminated") for running in targets))

    async def workflow_finished(self, workflow: dict[str, Any]) -> None:
        """Nothing to clean up: a step's files go when the step ends (host steps have no Pod GC)."""

    async def read_log(self, namespace: str, workflow: str, node_id: str) -> str:
        path = self.step_dir(namespace, workflow, node_id) / "log"
        try:
            return await asyncio.to_thread(path.read_text, "utf-8", "replace")
        except FileNotFoundError:
            return ""

    # internals --------------------------------------------------------------------------------

    def _image_entrypoint(self, step: StepSpec, args: list[str], private: bool, tmp: Path) -> list[str]:
        """``command`` was not given: the image's own entrypoint/cmd, for the images known here
        (Argo's argosay test images); otherwise the arguments run as the command."""
        name, tag = _image_name(step.image)
        if name == "argoproj/argosay" and tag != "v1":
            shim_dir = tmp / _SCRIPT_DIR
            shim_dir.mkdir(exist_ok=True)
            (shim_dir / "argosay").write_text(_ARGOSAY, "utf-8")
            shim = f"{STEP_TMP}/{_SCRIPT_DIR}/argosay" if private else str(shim_dir / "argosay")
            return ["/bin/sh", shim, *args]
        if name in ("argoproj/argosay", "docker/whalesay") and not args:
            return ["cowsay"]
        return args

    def _claim(self, step: StepSpec, claims: list[str]) -> str | None:
        """Reserve ``step``'s absolute output paths on the shared filesystem; a message on conflict."""
        for output in step.outputs:
            if not output.path.startswith("/"):
                continue
            path = os.path.normpath(output.path)
            holder = self._claims.get(path)
            if holder is not None and holder != step.pod_name:
                return (
                    f"output parameter {output.name!r}: {path} is also an output of running step {holder}; "
                    "without a private /tmp (unshare not permitted) parallel steps need distinct output paths"
                )
            self._claims[path] = step.pod_name
            claims.append(path)
        return None

    async def _run(
        self,
        step: StepSpec,
        key: tuple[str, str, str],
        private: bool,
        root: Path,
        work: Path,
        tmp: Path,
        claims: list[str],
    ) -> StepResult:
        argv = list(step.argv)
        if step.args_only or not argv:
            argv = self._image_entrypoint(step, argv, private, tmp)
        elif argv[0] == "/argosay" and _image_name(step.image)[0] == "argoproj/argosay":
            argv = self._image_entrypoint(step, argv[1:], private, tmp)
        if step.script is not None:
            script_dir = tmp / _SCRIPT_DIR
            script_dir.mkdir(exist_ok=True)
            (script_dir / "script").write_text(step.script, "utf-8")
            (script_dir / "script").chmod(0o755)  # Argo's script file is executable (`sh -c FILE` works)
            if not argv:
                argv = ["sh"]
            argv.append(f"{STEP_TMP}/{_SCRIPT_DIR}/script" if private else str(script_dir / "script"))
        if not argv:
            return StepResult("Error", message="the step has no command or args to run on the host")
        cwd = work
        if step.working_dir:
            wanted = Path(step.working_dir)
            if wanted.is_absolute():
                if not await asyncio.to_thread(wanted.is_dir):
                    if not _Layout.could_be_fresh(str(wanted)):
                        return StepResult("Error", message=f"workingDir {wanted} does not exist on this host")
                else:
                    cwd = wanted
            else:
                cwd = work / wanted
                cwd.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": self._path,
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "ARGO_WORKFLOW_NAME": step.workflow,
            "ARGO_NODE_ID": step.node_id,
            "ARGO_POD_NAME": step.pod_name,
        }
        if step.template_name:
            env["ARGO_TEMPLATE"] = step.template_name
        if not private:
            env["TMPDIR"] = str(tmp)
        env.update(step.env)
        try:
            layout = _Layout.plan(step, private, cwd, tmp, root / "root")
            await asyncio.to_thread(layout.place, step.mounts)
            await asyncio.to_thread(layout.prepare_outputs, step.artifacts)
        except _PlacementError as exc:
            _append_log(root / "log", str(exc))
            return StepResult("Error", message=str(exc))
        if layout.shadow is not None or private:
            # Inside the namespace a missing program would only show as the wrapper's exit code.
            problem = _cannot_exec(argv[0], env.get("PATH", ""), cwd)
            if problem:
                _append_log(root / "log", problem)
                return StepResult("Error", message=problem)
            in_namespace = [UNSHARE, "--mount", "--propagation", "private", "--", "/bin/sh", "-c"]
            if layout.shadow is not None:
                wrapper_args = [_SHADOW_WRAPPER, "eventbridge-step", str(layout.shadow),
                                layout.inner_cwd or str(cwd), *layout.binds, "--"]  # fmt: skip
            else:
                wrapper_args = [_WRAPPER, "eventbridge-step", str(tmp)]
            command = [*in_namespace, *wrapper_args, *argv]
        else:
            command = argv
        log_file = (root / "log").open("wb")
        try:
            try:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                message = f"failed to start {argv[0]!r}: {exc.strerror or exc}"
                log_file.write(message.encode() + b"\n")
                return StepResult("Error", message=message)
            running = _Running(process, claims=claims)
            self._running[key] = running
            try:
                stdout = await self._wait(step, running, log_file)
            finally:
                self._running.pop(key, None)
        finally:
            log_file.close()
        exit_code = process.returncode
        if running.reason is not None:
            return StepResult("Failed", exit_code=exit_code, message=running.reason)
        result = stdout.decode("utf-8", "replace")
        if result.endswith("\n"):
            result = result[:-1]
        artifacts, missing = await asyncio.to_thread(layout.collect, step)
        if exit_code != 0:
            message = f"Error (exit code {exit_code})"
            if exit_code is not None and exit_code < 0:
                message = f"killed by signal {-exit_code}"
            return StepResult("Failed", exit_code=exit_code, result=result, message=message, artifacts=artifacts)
        if missing:
            return StepResult("Error", exit_code=exit_code, result=result, message=missing, artifacts=artifacts)
        parameters: dict[str, str] = {}
        for output in step.outputs:
            value = _read_output(output, private, cwd, tmp, layout)
            if value is None:
                return StepResult(
                    "Error",
                    exit_code=exit_code,
                    result=result,
                    message=f"output parameter {output.name!r}: the step wrote no file {output.path}",
                )
            parameters[output.name] = value
        return StepResult("Succeeded", exit_code=exit_code, result=result, parameters=parameters, artifacts=artifacts)

    async def _wait(self, step: StepSpec, running: _Running, log_file: IO[bytes]) -> bytes:
        """Wait for the process (and the timeout), pump its output; return the kept stdout."""
        process = running.process
        stdout = bytearray()
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            asyncio.create_task(_pump(process.stdout, log_file, stdout)),
            asyncio.create_task(_pump(process.stderr, log_file, None)),
        ]
        try:
            if step.timeout is not None and step.timeout > 0:
                try:
                    await asyncio.wait_for(process.wait(), step.timeout)
                except TimeoutError:
                    await self._stop(running, f"Step exceeded its deadline ({step.timeout:g}s)")
            else:
                await process.wait()
        except asyncio.CancelledError:
            await self._stop(running, "cancelled")
            raise
        finally:
            # The main process is gone: end whatever it left behind, then drain the pipes.
            _signal_group(process.pid, signal.SIGKILL)
            _done, pending = await asyncio.wait(pumps, timeout=2.0)
            for task in pending:
                task.cancel()
        return bytes(stdout)

    async def _stop(self, running: _Running, reason: str) -> None:
        """SIGTERM the process group, SIGKILL it after a grace period."""
        if running.reason is None:
            running.reason = reason
        process = running.process
        if process.returncode is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), KILL_GRACE)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()


async def _pump(stream: asyncio.StreamReader, log_file: IO[bytes], keep: bytearray | None) -> None:
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        log_file.write(chunk)
        log_file.flush()
        if keep is not None and len(keep) < RESULT_LIMIT:
            keep += chunk[: RESULT_LIMIT - len(keep)]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _safe(part: str) -> str:
    """A path component that cannot escape its parent."""
    cleaned = part.replace("/", "_").replace("\x00", "_")
    return "_" if cleaned in ("", ".", "..") else cleaned


def _prepare(root: Path, work: Path, tmp: Path) -> None:
    if work.exists() or tmp.exists():  # a re-run of the same node (after a restart): start clean
        _remove(work, tmp)
    work.mkdir(parents=True)
    tmp.mkdir()
    tmp.chmod(0o1777)


def _remove(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _append_log(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _cannot_exec(program: str, path_env: str, cwd: Path) -> str | None:
    """Why ``program`` cannot be executed (as the OS would say), or None."""
    if "/" in program:
        candidate = Path(program) if program.startswith("/") else cwd / program
        if not candidate.exists():
            return f"failed to start {program!r}: [Errno 2] No such file or directory"
        if candidate.is_dir() or not os.access(candidate, os.X_OK):
            return f"failed to start {program!r}: [Errno 13] Permission denied"
        return None
    if shutil.which(program, path=path_env) is None:
        return f"failed to start {program!r}: executable file not found in $PATH"
    return None


def _read_output(
    output: OutputParameter, private: bool, cwd: Path, tmp: Path, layout: _Layout | None = None
) -> str | None:
    """The value of an output parameter file as the step saw it; None when missing and no default."""
    path = output.path
    if layout is not None:
        host_path = layout.host(path)
    elif private and (path == STEP_TMP or path.startswith(STEP_TMP + "/")):
        host_path = tmp / os.path.relpath(os.path.normpath(path), STEP_TMP)
    elif path.startswith("/"):
        host_path = Path(path)
    else:
        host_path = cwd / path
    try:
        value = host_path.read_text("utf-8", "replace")
    except OSError:
        return output.default
    return value[:-1] if value.endswith("\n") else value


class _PlacementError(Exception):
    """A mount or artifact path the host executor cannot provide."""


def _top(path: str) -> str:
    parts = os.path.normpath(path).lstrip("/").split("/", 1)
    return parts[0]


def _under_tmp(path: str) -> bool:
    clean = os.path.normpath(path)
    return clean == STEP_TMP or clean.startswith(STEP_TMP + "/")


@dataclass
class _Layout:
    """Where the paths a step sees live on the host.

    Relative paths are under the working directory, ``/tmp/...`` under the step's tmp dir (with a
    private /tmp), and absolute paths under a top-level directory that is new to the host (or
    /mnt, /media, /srv) inside the step's shadow root, entered with chroot."""

    private: bool
    cwd: Path
    tmp: Path
    shadow: Path | None = None
    fresh: frozenset[str] = frozenset()
    binds: list[str] = field(default_factory=list)
    volumes: list[PathMount] = field(default_factory=list)
    inner_cwd: str = ""  # the working directory the step sees in the shadow root

    @classmethod
    def plan(cls, step: StepSpec, private: bool, cwd: Path, tmp: Path, shadow_dir: Path) -> _Layout:
        paths = [m.path for m in step.mounts] + [a.path for a in step.artifacts]
        if step.working_dir and step.working_dir.startswith("/") and not Path(step.working_dir).is_dir():
            paths.append(step.working_dir)
        absolute = [p for p in paths if p.startswith("/") and not _under_tmp(p)]
        fresh = frozenset(
            top
            for top in (_top(p) for p in absolute)
            if top and top not in SYSTEM_TOPS and (top in FRESH_TOPS or not os.path.lexists("/" + top))
        )
        volumes = [m for m in step.mounts if not m.copy]
        layout = cls(private, cwd, tmp, fresh=fresh, volumes=volumes)
        for mount in step.mounts:
            if not mount.path.startswith("/") or _under_tmp(mount.path):
                continue
            if _top(mount.path) not in fresh and mount.copy:
                raise _PlacementError(
                    f"{mount.path}: the host executor places files only under /tmp, relative to the working "
                    "directory, or under a top-level directory the host does not have (such as /data)"
                )
        if not (fresh or volumes):
            return layout
        if not private:
            raise _PlacementError(
                f"{(absolute or [m.path for m in volumes])[0]}: paths outside /tmp and volumes need a private "
                "mount namespace (run eventbridge as root where unshare is permitted)"
            )
        layout.shadow = shadow_dir
        # Like a container without workingDir, the step starts in "/" (images' usual WORKDIR).
        layout.inner_cwd = str(cwd)
        if not step.working_dir:
            layout.inner_cwd = "/"
        elif step.working_dir.startswith("/") and _top(step.working_dir) in fresh:
            layout.inner_cwd = os.path.normpath(step.working_dir)
        layout._build(volumes)
        return layout

    @staticmethod
    def could_be_fresh(path: str) -> bool:
        """Whether ``path`` lies under a top-level directory a shadow root would create."""
        top = _top(path)
        return bool(top) and top not in SYSTEM_TOPS and (top in FRESH_TOPS or not os.path.lexists("/" + top))

    def _build(self, volumes: list[PathMount]) -> None:
        assert self.shadow is not None
        root = self.shadow
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        binds: list[tuple[str, str]] = [(str(self.tmp), STEP_TMP)]
        for host in sorted(Path("/").iterdir()):
            entry = host.name
            if entry in self.fresh or entry == "tmp":
                continue
            if host.is_symlink():
                (root / entry).symlink_to(host.readlink())
            elif host.is_dir():
                (root / entry).mkdir()
                binds.append((str(host), f"/{entry}"))
        (root / "tmp").mkdir()
        if _under_tmp(str(self.cwd)):  # the working directory lives in the host's /tmp: keep it visible
            inside = self.tmp / os.path.relpath(self.cwd, STEP_TMP)
            inside.mkdir(parents=True, exist_ok=True)
            binds.append((str(self.cwd), str(self.cwd)))
        if self.inner_cwd.startswith("/") and _top(self.inner_cwd) in self.fresh:
            (root / self.inner_cwd.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for volume in volumes:
            clean = os.path.normpath(volume.path)
            if _top(clean) in self.fresh:
                (root / clean.lstrip("/")).mkdir(parents=True, exist_ok=True)
            binds.append((volume.source, os.path.normpath(volume.path)))
        self.binds = [part for pair in binds for part in pair]

    def prepare_outputs(self, artifacts: list[OutputArtifact]) -> None:
        """Create the parent directories of output artifacts that live in the shadow root."""
        for artifact in artifacts:
            target = self.host(artifact.path)
            if self.shadow is not None and str(target).startswith(str(self.shadow) + "/"):
                target.parent.mkdir(parents=True, exist_ok=True)

    def host(self, path: str) -> Path:
        """The host path behind ``path`` as the step sees it."""
        if not path.startswith("/"):
            if self.shadow is not None and self.inner_cwd == "/":
                return self.shadow / os.path.normpath("/" + path).lstrip("/")
            return self.cwd / path
        clean = os.path.normpath(path)
        for volume in self.volumes:
            mount = os.path.normpath(volume.path)
            if clean == mount or clean.startswith(mount + "/"):
                return Path(volume.source) / os.path.relpath(clean, mount)
        if _under_tmp(clean):
            return self.tmp / os.path.relpath(clean, STEP_TMP) if self.private else Path(clean)
        if self.shadow is not None and _top(clean) in self.fresh:
            return self.shadow / clean.lstrip("/")
        return Path(clean)

    def place(self, mounts: list[PathMount]) -> None:
        """Copy input files and directories to where the step expects them."""
        allowed = [self.cwd, self.tmp] + ([self.shadow] if self.shadow is not None else [])
        for mount in mounts:
            if not mount.copy:
                continue
            target = self.host(mount.path)
            resolved = Path(os.path.normpath(target))
            if not any(resolved == base or base in resolved.parents for base in allowed):
                raise _PlacementError(
                    f"{mount.path}: refusing to place a file outside the step's own directories"
                    + ("" if self.private else " (without a private mount namespace /tmp is the host's)")
                )
            source = Path(mount.source)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                if source.is_dir():
                    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, target)
            except OSError as exc:
                raise _PlacementError(f"cannot place {mount.path}: {exc}") from exc

    def collect(self, step: StepSpec) -> tuple[dict[str, str], str]:
        """Copy output artifacts to ``step.artifact_dir``; (name -> host copy, message about a missing one)."""
        found: dict[str, str] = {}
        missing = ""
        if not step.artifacts or not step.artifact_dir:
            return found, missing
        out_dir = Path(step.artifact_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for artifact in step.artifacts:
            source = self.host(artifact.path)
            target = out_dir / _safe(artifact.name)
            try:
                if source.is_dir():
                    if target.exists():
                        shutil.rmtree(target)
                    shutil.copytree(source, target, symlinks=True)
                elif source.exists():
                    shutil.copy2(source, target)
                else:
                    if not artifact.optional and not missing:
                        missing = f"output artifact {artifact.name!r}: the step left nothing at {artifact.path}"
                    continue
            except OSError as exc:
                if not missing:
                    missing = f"output artifact {artifact.name!r}: cannot collect {artifact.path}: {exc}"
                continue
            found[artifact.name] = str(target)
        return found, missing


def _probe_unshare(state_dir: Path) -> bool:
    """True when ``unshare --mount`` plus a bind mount over /tmp works for us."""
    if not Path(UNSHARE).exists() or os.geteuid() != 0:
        return False
    state_dir.mkdir(parents=True, exist_ok=True)
    probe = state_dir / ".probe-tmp"
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            [
                UNSHARE,
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                _WRAPPER,
                "eventbridge-probe",
                str(probe),
                "true",
            ],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return done.returncode == 0
