"""The ``eventbridge`` command: argo-like verbs over the embedded process and its API.

``up`` runs the embedded process; ``lint`` and ``run`` work locally without a server; the other
verbs (``submit``, ``list``, ``get``, ``logs``, ``delete``) talk to a server's HTTP API
(``--server``, env ``EVENTBRIDGE_SERVER``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from eventbridge import __version__
from eventbridge.errors import EventBridgeError

DEFAULT_SERVER = "http://localhost:2746"
_FINISHED = ("Succeeded", "Failed", "Error")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("aiohttp.access", "watchfiles.main"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _parse_params(params: tuple[str, ...]) -> list[dict[str, str]]:
    parsed = []
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            _fail(f"invalid parameter {item!r}: use -p NAME=VALUE", 2)
        parsed.append({"name": name, "value": value})
    return parsed


def _apply_params(workflow: dict[str, Any], params: list[dict[str, str]]) -> None:
    """Override or add workflow arguments, as ``argo submit -p`` does."""
    if not params:
        return
    spec = workflow.setdefault("spec", {})
    existing = spec.setdefault("arguments", {}).setdefault("parameters", [])
    by_name = {p.get("name"): p for p in existing}
    for param in params:
        if param["name"] in by_name:
            by_name[param["name"]]["value"] = param["value"]
            by_name[param["name"]].pop("valueFrom", None)
        else:
            existing.append(dict(param))


def _read_workflow(file: str) -> dict[str, Any]:
    """Read the single Workflow in FILE (``-`` for stdin)."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
        documents = [d for d in yaml.safe_load_all(text) if d]
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"cannot read {file}: {exc}", 2)
    workflows = [d for d in documents if isinstance(d, dict) and d.get("kind") == "Workflow"]
    if len(workflows) != 1:
        _fail(f"{file} must contain exactly one Workflow (found {len(workflows)})", 2)
    return workflows[0]


def _print_object(obj: Any, output: str | None) -> None:
    if output == "json":
        click.echo(json.dumps(obj, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(obj, sort_keys=False), nl=False)
    elif output == "name":
        click.echo(obj["metadata"]["name"])


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return ""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _summary(workflow: dict[str, Any]) -> str:
    status = workflow.get("status") or {}
    meta = workflow["metadata"]
    lines = [
        f"Name:       {meta['name']}",
        f"Namespace:  {meta.get('namespace', 'default')}",
        f"Status:     {status.get('phase') or 'Pending'}",
    ]
    if status.get("message"):
        lines.append(f"Message:    {status['message']}")
    if status.get("progress"):
        lines.append(f"Progress:   {status['progress']}")
    nodes = status.get("nodes") or {}
    pods = [n for n in nodes.values() if n.get("type") == "Pod"]
    if pods:
        lines.append("")
        lines.append(f"{'STEP':<40} {'PHASE':<10} MESSAGE")
        for node in sorted(pods, key=lambda n: n.get("startedAt") or ""):
            lines.append(f"{node.get('name', ''):<40} {node.get('phase', ''):<10} {node.get('message', '')}")
    return "\n".join(lines)


class Client:
    """A tiny blocking client for the API (the CLI does one request at a time)."""

    def __init__(self, server: str) -> None:
        self.server = server.rstrip("/")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's own server
            self.server + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            _fail(f"{method} {path}: {exc.code} {message}")
        except (urllib.error.URLError, OSError) as exc:
            _fail(f"cannot reach the server at {self.server}: {exc}. Is `eventbridge up` running?")
        return json.loads(raw) if raw.strip() else None

    def stream_lines(self, path: str) -> list[Any]:
        request = urllib.request.Request(self.server + path)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return [json.loads(line) for line in response.read().splitlines() if line.strip()]
        except urllib.error.HTTPError as exc:
            _fail(f"GET {path}: {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError) as exc:
            _fail(f"cannot reach the server at {self.server}: {exc}")


server_option = click.option(
    "--server", envvar="EVENTBRIDGE_SERVER", default=DEFAULT_SERVER, show_default=True, help="API server URL."
)
namespace_option = click.option("-n", "--namespace", default="default", show_default=True, help="Namespace.")
output_option = click.option("-o", "--output", type=click.Choice(["json", "yaml", "name", "wide"]), default=None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="eventbridge")
@click.option("--log-level", default="info", show_default=True, envvar="EVENTBRIDGE_LOG_LEVEL")
def cli(log_level: str) -> None:
    """Argo Events-style triggers with a bundled Argo Workflows controller."""
    _setup_logging(log_level)


@cli.command()
@click.option(
    "-f",
    "--file",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Manifest file or folder (repeatable). Default: ./sensors/",
)
@click.option(
    "--state-dir",
    envvar="EVENTBRIDGE_STATE_DIR",
    default=".eventbridge",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the event log, store and step logs live.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, envvar="EVENTBRIDGE_HOST", help="Address of the API server."
)
@click.option(
    "--port", default=2746, show_default=True, type=int, envvar="EVENTBRIDGE_PORT", help="Port of the API server."
)
@click.option(
    "--webhook-host",
    default="0.0.0.0",
    show_default=True,
    envvar="EVENTBRIDGE_WEBHOOK_HOST",
    help="Address the webhook event sources listen on.",
)
@click.option("--no-watch", is_flag=True, help="Do not reload manifests when files change.")
def up(paths: tuple[Path, ...], state_dir: Path, host: str, port: int, webhook_host: str, no_watch: bool) -> None:
    """Run everything in one process: sources, sensors, controller, API."""
    from eventbridge.runtime import EmbeddedRuntime, Settings

    settings = Settings(
        paths=list(paths) or [Path("sensors")],
        state_dir=state_dir,
        host=host,
        port=port,
        webhook_host=webhook_host,
        watch=not no_watch,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with EmbeddedRuntime(settings) as runtime:
            click.echo(
                f"eventbridge {__version__} up: API {runtime.api_url}, manifests from "
                f"{', '.join(str(p) for p in settings.paths)}, state in {settings.state_dir}",
                err=True,
            )
            await stop.wait()
            click.echo("stopping", err=True)

    try:
        asyncio.run(serve())
    except OSError as exc:
        _fail(str(exc))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def lint(paths: tuple[Path, ...]) -> None:
    """Check manifests: errors and unsupported fields, as file:line: Kind/name: field: reason."""
    from eventbridge.models.lint import format_diagnostics, lint_paths

    diagnostics, code = lint_paths(list(paths))
    text = format_diagnostics(diagnostics)
    if text:
        click.echo(text)
    sys.exit(code)


@cli.command()
@click.argument("file")
@click.option(
    "-f",
    "--file",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Templates, ConfigMaps and Secrets the workflow refers to (repeatable).",
)
@click.option("-p", "--parameter", "params", multiple=True, help="NAME=VALUE workflow argument (repeatable).")
@output_option
def run(file: str, paths: tuple[Path, ...], params: tuple[str, ...], output: str | None) -> None:
    """Run one Workflow to completion in this process; exit 0 only if it Succeeded."""
    from eventbridge.runtime import run_once

    workflow = _read_workflow(file)
    _apply_params(workflow, _parse_params(params))
    try:
        final = asyncio.run(run_once(workflow, list(paths)))
    except EventBridgeError as exc:
        _fail(str(exc), 2)
    if output in ("json", "yaml", "name"):
        _print_object(final, output)
    else:
        click.echo(_summary(final))
    sys.exit(0 if (final.get("status") or {}).get("phase") == "Succeeded" else 1)


@cli.command()
@click.argument("file")
@click.option("-p", "--parameter", "params", multiple=True, help="NAME=VALUE workflow argument (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for the workflow to finish; exit 1 unless it Succeeded.")
@output_option
@server_option
@namespace_option
def submit(file: str, params: tuple[str, ...], wait: bool, output: str | None, server: str, namespace: str) -> None:
    """Submit a Workflow to the server."""
    workflow = _read_workflow(file)
    _apply_params(workflow, _parse_params(params))
    namespace = (workflow.get("metadata") or {}).get("namespace") or namespace
    client = Client(server)
    created = client.request("POST", f"/api/v1/workflows/{namespace}", {"workflow": workflow})
    name = created["metadata"]["name"]
    if wait:
        created = _wait(client, namespace, name)
    if output in ("json", "yaml", "name"):
        _print_object(created, output)
    else:
        click.echo(_summary(created))
    if wait:
        sys.exit(0 if created.get("status", {}).get("phase") == "Succeeded" else 1)


def _wait(client: Client, namespace: str, name: str) -> Any:
    import time

    delay = 0.05
    while True:
        current = client.request("GET", f"/api/v1/workflows/{namespace}/{name}")
        if (current.get("status") or {}).get("phase") in _FINISHED:
            return current
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


@cli.command(name="list")
@click.option("-l", "--selector", default="", help="Label selector (key=value,...).")
@output_option
@server_option
@namespace_option
def list_(selector: str, output: str | None, server: str, namespace: str) -> None:
    """List workflows."""
    query = f"?{urllib.parse.urlencode({'listOptions.labelSelector': selector})}" if selector else ""
    items = Client(server).request("GET", f"/api/v1/workflows/{namespace}{query}")["items"] or []
    if output in ("json", "yaml"):
        _print_object(items, output)
        return
    if output == "name":
        for item in items:
            click.echo(item["metadata"]["name"])
        return
    click.echo(f"{'NAME':<48} {'STATUS':<10} {'AGE':<6} {'PROGRESS':<9} MESSAGE")
    for item in items:
        status = item.get("status") or {}
        click.echo(
            f"{item['metadata']['name']:<48} {status.get('phase') or 'Pending':<10} "
            f"{_age(item['metadata'].get('creationTimestamp')):<6} {status.get('progress', ''):<9} "
            f"{status.get('message', '')}"
        )


@cli.command()
@click.argument("name")
@output_option
@server_option
@namespace_option
def get(name: str, output: str | None, server: str, namespace: str) -> None:
    """Show one workflow."""
    workflow = Client(server).request("GET", f"/api/v1/workflows/{namespace}/{name}")
    if output in ("json", "yaml", "name"):
        _print_object(workflow, output)
    else:
        click.echo(_summary(workflow))


@cli.command()
@click.argument("name")
@server_option
@namespace_option
def logs(name: str, server: str, namespace: str) -> None:
    """Print the logs of every step of a workflow."""
    for chunk in Client(server).stream_lines(f"/api/v1/workflows/{namespace}/{name}/log"):
        result = chunk.get("result") or {}
        click.echo(f"{result.get('podName', '')}: {result.get('content', '')}")


@cli.command()
@click.argument("name")
@server_option
@namespace_option
def delete(name: str, server: str, namespace: str) -> None:
    """Delete a workflow (its running steps are killed)."""
    Client(server).request("DELETE", f"/api/v1/workflows/{namespace}/{name}")
    click.echo(f"Workflow '{name}' deleted")


def main() -> None:
    """Entry point of the console script."""
    with contextlib.suppress(KeyboardInterrupt):
        cli.main(prog_name="eventbridge")
