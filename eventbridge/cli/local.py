"""Commands that work in this process, without a server: ``up``, ``lint``, ``run``."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from eventbridge import __version__
from eventbridge.cli.common import apply_params, fail, output_option, parse_params, print_object, read_one, summary
from eventbridge.errors import EventBridgeError


@click.command()
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
@click.option("--host", default="127.0.0.1", show_default=True, envvar="EVENTBRIDGE_HOST", help="API address.")
@click.option("--port", default=2746, show_default=True, type=int, envvar="EVENTBRIDGE_PORT", help="API port.")
@click.option(
    "--webhook-host",
    default="0.0.0.0",
    show_default=True,
    envvar="EVENTBRIDGE_WEBHOOK_HOST",
    help="Address the webhook event sources listen on.",
)
@click.option("--no-watch", is_flag=True, help="Do not reload manifests when files change.")
@click.option(
    "--auth-file",
    envvar="EVENTBRIDGE_AUTH_FILE",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Bearer tokens for the API and UI, one per line: TOKEN [read|write] [namespaces=a,b].",
)
def up(
    paths: tuple[Path, ...],
    state_dir: Path,
    host: str,
    port: int,
    webhook_host: str,
    no_watch: bool,
    auth_file: Path | None,
) -> None:
    """Run everything in one process: sources, sensors, controller, API."""
    from eventbridge.runtime import EmbeddedRuntime, Settings

    settings = Settings(
        paths=list(paths) or [Path("sensors")],
        state_dir=state_dir,
        host=host,
        port=port,
        webhook_host=webhook_host,
        watch=not no_watch,
        auth_file=auth_file,
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
        fail(str(exc))


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def lint(paths: tuple[Path, ...]) -> None:
    """Check manifests: errors and unsupported fields, as file:line: Kind/name: field: reason."""
    from eventbridge.models.lint import format_diagnostics, lint_paths
    from eventbridge.runtime import engine_checks

    diagnostics, code = lint_paths(list(paths), [engine_checks])
    text = format_diagnostics(diagnostics)
    if text:
        click.echo(text)
    sys.exit(code)


@click.command()
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

    workflow = read_one(file, "Workflow")
    apply_params(workflow, parse_params(params))
    try:
        final = asyncio.run(run_once(workflow, list(paths)))
    except EventBridgeError as exc:
        fail(str(exc), 2)
    if output in ("json", "yaml", "name"):
        print_object(final, output)
    else:
        click.echo(summary(final))
    sys.exit(0 if (final.get("status") or {}).get("phase") == "Succeeded" else 1)
