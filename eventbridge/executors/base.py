"""The Executor protocol: runs one workflow step (an Argo "pod") and reports how it ended.

The controller turns a container or script template into a :class:`StepSpec` (all ``{{...}}``
already substituted) and awaits :meth:`Executor.run`; when a workflow has finished it calls
:meth:`Executor.workflow_finished` (where workflow-level clean-up such as Pod GC happens).
Implementations: ``host.py`` (a process on this machine) and, in cluster mode, a Pod executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

StepPhase = Literal["Succeeded", "Failed", "Error"]


@dataclass(frozen=True, slots=True)
class OutputParameter:
    """An output parameter read from a file the step writes (``valueFrom.path``).

    ``default`` is used when the file is missing; without one a missing file fails the step.
    """

    name: str
    path: str
    default: str | None = None


@dataclass(frozen=True, slots=True)
class PathMount:
    """A host file or directory that appears at ``path`` (as the step sees it) inside the step.

    Input artifacts are copied in before the step starts (``copy``); volumes are shared
    directories bound in place, so what one step writes the next one sees."""

    path: str
    source: str
    copy: bool = True


@dataclass(frozen=True, slots=True)
class OutputArtifact:
    """A file or directory the step leaves at ``path``; collected after the step ends.

    A missing one fails the step unless ``optional``."""

    name: str
    path: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class StepSpec:
    """Everything needed to run one step.

    ``argv`` is ``command + args``. For a script template ``script`` holds the source: the executor
    writes it to a file and runs ``argv + [file]`` (Argo's convention). ``env`` is exactly what the
    template asks for; executors add only what a process needs to start (see each executor).
    ``timeout`` (seconds) ends the step with phase Failed and a message saying so.
    ``mounts`` are placed before the step starts; ``artifacts`` are copied after it ends into
    ``artifact_dir/<name>`` (a host directory the controller chose), see :class:`StepResult`.
    ``node_name`` is the node's full name in ``status.nodes`` (``wf-abc[0].step``), which the Pod
    executor records in the ``workflows.argoproj.io/node-name`` annotation, as Argo does.
    """

    namespace: str
    workflow: str
    node_id: str
    pod_name: str
    argv: list[str]
    script: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    outputs: list[OutputParameter] = field(default_factory=list)
    timeout: float | None = None
    image: str | None = None
    template_name: str | None = None
    mounts: list[PathMount] = field(default_factory=list)
    artifacts: list[OutputArtifact] = field(default_factory=list)
    artifact_dir: str | None = None
    args_only: bool = False  # the template gave no command: argv are arguments for the image's entrypoint
    node_name: str | None = None


@dataclass(slots=True)
class StepResult:
    """How a step ended.

    ``result`` is stdout with one trailing newline removed (Argo's ``outputs.result``);
    ``parameters`` maps output parameter names to their values; ``message`` explains a failure;
    ``artifacts`` maps output artifact names to the host paths of their collected copies.
    """

    phase: StepPhase
    exit_code: int | None = None
    result: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    message: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)


class Executor(Protocol):
    """Runs steps; ``kill`` ends running ones; ``read_log`` returns a step's combined stdout/stderr;
    ``workflow_finished`` is told about each workflow that reached a final phase (the stored object)."""

    async def run(self, step: StepSpec) -> StepResult: ...

    async def kill(self, namespace: str, workflow: str, node_id: str | None = None) -> None: ...

    async def read_log(self, namespace: str, workflow: str, node_id: str) -> str: ...

    async def workflow_finished(self, workflow: dict[str, Any]) -> None: ...
