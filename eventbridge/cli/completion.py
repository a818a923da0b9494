"""``eventbridge completion bash|zsh|fish``: the shell completion script, from click's own machinery.

Install it once::

    eval "$(eventbridge completion bash)"        # in ~/.bashrc
    eval "$(eventbridge completion zsh)"         # in ~/.zshrc
    eventbridge completion fish > ~/.config/fish/completions/eventbridge.fish

The script calls ``eventbridge`` back with ``_EVENTBRIDGE_COMPLETE`` set (click's protocol), so
commands, options and choices always match the installed version. Workflow, template, cron
workflow and sensor names complete from the API server (``--server`` / ``$EVENTBRIDGE_SERVER``,
``-n``) when it answers within a second; otherwise nothing is offered and nothing is printed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

import click
from click.shell_completion import CompletionItem, get_completion_class

from eventbridge.cli.common import DEFAULT_SERVER

PROG_NAME = "eventbridge"
COMPLETE_VAR = "_EVENTBRIDGE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
_TIMEOUT_SECONDS = 1.0

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]

_WORKFLOWS = "/api/v1/workflows/{namespace}"
#: Command path (below the root) -> the API collection whose names its NAME(S) argument takes.
NAME_SOURCES: dict[tuple[str, ...], str] = {
    **{
        (verb,): _WORKFLOWS
        for verb in ("get", "logs", "delete", "wait", "watch", "suspend", "resume", "stop", "terminate", "retry")
    },
    ("resubmit",): _WORKFLOWS,
    ("template", "get"): "/api/v1/workflow-templates/{namespace}",
    ("template", "delete"): "/api/v1/workflow-templates/{namespace}",
    ("cluster-template", "get"): "/api/v1/cluster-workflow-templates",
    ("cluster-template", "delete"): "/api/v1/cluster-workflow-templates",
    **{("cron", verb): "/api/v1/cron-workflows/{namespace}" for verb in ("get", "delete", "suspend", "resume")},
    ("sensor", "traces"): "/api/v1/sensors/{namespace}",
}


def fetch_names(server: str, collection: str) -> list[str]:
    """The ``metadata.name`` of each item at ``server + collection``; [] on any failure (quietly)."""
    headers = {"Accept": "application/json"}
    token = os.environ.get("EVENTBRIDGE_TOKEN", "")
    if token:
        headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
    url = server.rstrip("/") + collection
    if not url.startswith(("http://", "https://")):
        return []
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - the user's own server, http(s) only
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:  # noqa: S310
            items = json.loads(response.read()).get("items") or []
    except (OSError, ValueError, AttributeError, urllib.error.URLError):
        return []
    names = [((item or {}).get("metadata") or {}).get("name") for item in items if isinstance(item, dict)]
    return sorted(name for name in names if isinstance(name, str))


def names_from(collection: str) -> Completer:
    """A ``shell_complete`` callback offering the names found at ``collection`` (``{namespace}`` from ``-n``)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        server = str(ctx.params.get("server") or os.environ.get("EVENTBRIDGE_SERVER") or DEFAULT_SERVER)
        namespace = str(ctx.params.get("namespace") or "default")
        path = collection.replace("{namespace}", urllib.parse.quote(namespace, safe=""))
        given = ctx.params.get(param.name or "") or ()
        taken = set(given) if isinstance(given, tuple) else set()
        return [
            CompletionItem(name)
            for name in fetch_names(server, path)
            if name.startswith(incomplete) and name not in taken
        ]

    return complete


@click.command(name="completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash:  eval "$(eventbridge completion bash)"   (in ~/.bashrc)
    zsh:   eval "$(eventbridge completion zsh)"    (in ~/.zshrc)
    fish:  eventbridge completion fish > ~/.config/fish/completions/eventbridge.fish
    """
    root = ctx.find_root().command
    script_class = get_completion_class(shell)
    if script_class is None:  # click knows all of SHELLS; kept for a click without one of them
        raise click.UsageError(f"click has no completion for {shell}")
    click.echo(script_class(root, {}, PROG_NAME, COMPLETE_VAR).source())


def _command_at(root: click.Group, path: tuple[str, ...]) -> click.Command | None:
    command: click.Command | None = root
    for part in path:
        command = command.commands.get(part) if isinstance(command, click.Group) else None
    return command


def register(root: click.Group) -> None:
    """Add ``completion`` to ``root`` and let the NAME arguments of :data:`NAME_SOURCES` complete names.

    A callback is only attached where the argument has none yet (click calls it during completion).
    """
    root.add_command(completion)
    for path, collection in NAME_SOURCES.items():
        command = _command_at(root, path)
        if command is None:
            continue
        for param in command.params:
            if (
                isinstance(param, click.Argument)
                and param.name in ("name", "names")
                and param._custom_shell_complete is None
            ):
                param._custom_shell_complete = names_from(collection)
