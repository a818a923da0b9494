"""The ``eventbridge`` command: argo-like verbs over the embedded process and its API.

``up``, ``lint`` and ``run`` work locally (``local.py``); workflow verbs (``workflows.py``) and the
``template``/``cluster-template``/``cron`` groups (``templates.py``) talk to a server's HTTP API
(``--server``, env ``EVENTBRIDGE_SERVER``); ``sensor test``/``traces`` are in ``sensors.py``; the
cluster roles (``controller``, ``eventsource``, ``sensor`` without a subcommand, ``server``) are in
``cluster.py``.
"""

from __future__ import annotations

import contextlib

import click

from eventbridge import __version__
from eventbridge.cli import cluster, completion, local, templates, workflows
from eventbridge.cli.common import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="eventbridge")
@click.option("--log-level", default="info", show_default=True, envvar="EVENTBRIDGE_LOG_LEVEL")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="EVENTBRIDGE_LOG_FORMAT",
    help="json: one object per line with Argo's label keys (eventSourceName, sensorName, ...).",
)
def cli(log_level: str, log_format: str) -> None:
    """Argo Events-style triggers with a bundled Argo Workflows controller."""
    setup_logging(log_level, log_format)


for _command in [
    local.up,
    local.lint,
    local.run,
    *workflows.COMMANDS,
    *templates.COMMANDS,
    *cluster.COMMANDS,
]:
    cli.add_command(_command)
completion.register(cli)  # `eventbridge completion SHELL`, and NAME arguments complete from the server


def main() -> None:
    """Entry point of the console script."""
    with contextlib.suppress(KeyboardInterrupt):
        cli.main(prog_name="eventbridge")
