"""The Executor protocol: runs one workflow step (an Argo "pod") and reports how it ended.

The controller turns a container or script template into a :class:`StepSpec` (all ``{{...}}``
already substituted) and awaits :meth:`Executor.run`. Implementations: ``host.py`` (a process on
this machine) and, in cluster mode, a Pod executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

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
class StepSpec:
    """Everything needed to run one step.

    ``argv`` is ``command + args``. For a script template ``script`` holds the source: the executor
    writes it to a file and runs ``argv + [file]`` (Argo's convention). ``env`` is exactly what the
    template asks for; executors add only what a process needs to start (see each executor).
    ``timeout`` (seconds) ends the step with phase Failed and a message saying so.
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


@dataclass(slots=True)
class StepResult:
    """How a step ended.

    ``result`` is stdout with one trailing newline removed (Argo's ``outputs.result``);
    ``parameters`` maps output parameter names to their values; ``message`` explains a failure.
    """

    phase: StepPhase
    exit_code: int | None = None
    result: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    message: str = ""


class Executor(Protocol):
    """Runs steps; ``kill`` ends running ones; ``read_log`` returns a step's combined stdout/stderr."""

    async def run(self, step: StepSpec) -> StepResult: ...

    async def kill(self, namespace: str, workflow: str, node_id: str | None = None) -> None: ...

    async def read_log(self, namespace: str, workflow: str, node_id: str) -> str: ...
