"""Cluster mode roles: ``eventbridge controller``, ``eventsource``, ``sensor``, ``server``.

Each runs one role (see :mod:`eventbridge.runtime.cluster`) against the API server of
``--kubeconfig`` (``$KUBECONFIG``), else the in-cluster service account, until SIGTERM or SIGINT.
``eventbridge sensor`` without a subcommand runs the sensor role; ``sensor test`` and ``sensor
traces`` keep working.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from eventbridge.cli import sensors
from eventbridge.cli.common import fail
from eventbridge.errors import EventBridgeError

F = TypeVar("F", bound=Callable[..., Any])


def common_options(function: F) -> F:
    """Options every role takes."""
    options = [
        click.option(
            "-n",
            "--namespace",
            envvar="EVENTBRIDGE_NAMESPACE",
            default="default",
            show_default=True,
            help="The namespace whose objects this role runs (and where its Lease lives).",
        ),
        click.option(
            "-A",
            "--all-namespaces",
            envvar="EVENTBRIDGE_ALL_NAMESPACES",
            is_flag=True,
            default=False,
            help="Run the objects of every namespace (needs deploy/cluster-wide's ClusterRole); "
            "the Lease stays in --namespace.",
        ),
        click.option(
            "--kubeconfig",
            envvar="KUBECONFIG",
            default=None,
            help="kubeconfig file; without it the in-cluster service account is used.",
        ),
        click.option(
            "--health-port",
            type=int,
            envvar="EVENTBRIDGE_HEALTH_PORT",
            default=None,
            help="Serve /healthz, /readyz and /metrics on this port (off when unset).",
        ),
        click.option(
            "--health-host", envvar="EVENTBRIDGE_HEALTH_HOST", default="0.0.0.0", show_default=True, hidden=True
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def kafka_options(function: F) -> F:
    """Options of the Kafka bus used when the namespace has no EventBus object."""
    options = [
        click.option(
            "--kafka-bootstrap",
            envvar="EVENTBRIDGE_KAFKA_BOOTSTRAP",
            default=None,
            help="Kafka bootstrap servers (host:port,...) when there is no EventBus object.",
        ),
        click.option(
            "--kafka-topic",
            envvar="EVENTBRIDGE_KAFKA_TOPIC",
            default=None,
            help="Topic of that bus (default: <namespace>-<eventbus name>).",
        ),
        click.option(
            "--kafka-partitions", envvar="EVENTBRIDGE_KAFKA_PARTITIONS", type=int, default=3, show_default=True
        ),
        click.option(
            "--kafka-idempotent/--no-kafka-idempotent",
            envvar="EVENTBRIDGE_KAFKA_IDEMPOTENT",
            default=True,
            show_default=True,
            help="Idempotent producer (off only for brokers without InitProducerId).",
        ),
        click.option(
            "--kafka-session-timeout-ms",
            envvar="EVENTBRIDGE_KAFKA_SESSION_TIMEOUT_MS",
            type=int,
            default=10_000,
            show_default=True,
            help="Consumer group session (and rebalance) timeout.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _settings(**values: Any) -> Any:
    from eventbridge.runtime.cluster import ClusterSettings

    if not values["namespace"]:
        fail("--namespace must name the role's own namespace (its Leases live there); "
             "--all-namespaces serves every namespace", 2)  # fmt: skip
    settings = ClusterSettings(
        namespace=values["namespace"],
        all_namespaces=values["all_namespaces"],
        kubeconfig=values["kubeconfig"],
        health_host=values["health_host"],
        health_port=values["health_port"],
    )
    if "kafka_bootstrap" in values:
        settings.kafka_bootstrap = values["kafka_bootstrap"]
        settings.kafka_topic = values["kafka_topic"]
        settings.kafka_partitions = values["kafka_partitions"]
        settings.kafka_idempotent = values["kafka_idempotent"]
        settings.kafka_session_timeout_ms = values["kafka_session_timeout_ms"]
        settings.kafka_rebalance_timeout_ms = values["kafka_session_timeout_ms"]
    return settings


def serve(role_name: str, settings: Any) -> None:
    """Run one role until SIGTERM/SIGINT; exit with its status."""
    from eventbridge.runtime.cluster import build_role, run_role

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        role = build_role(role_name, settings)
        click.echo(f"eventbridge {role_name}: {settings.describe_scope()}", err=True)
        return await run_role(role, settings, stop)

    try:
        code = asyncio.run(main())
    except EventBridgeError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(str(exc))
    sys.exit(code)


@click.command()
@common_options
@click.option(
    "--executor-image",
    envvar="EVENTBRIDGE_EXECUTOR_IMAGE",
    default="eventbridge:latest",
    show_default=True,
    help="Image of the `wait` container of every step Pod (the eventbridge image).",
)
@click.option(
    "--executor-service-account",
    envvar="EVENTBRIDGE_EXECUTOR_SERVICE_ACCOUNT",
    default=None,
    help="ServiceAccount of step Pods when neither the template nor the workflow names one.",
)
@click.option("--max-parallel-pods", envvar="EVENTBRIDGE_MAX_PARALLEL_PODS", type=int, default=32, show_default=True)
def controller(
    executor_image: str, executor_service_account: str | None, max_parallel_pods: int, **values: Any
) -> None:
    """Run Workflows (one Pod per step) and CronWorkflows; single-active under a Lease."""
    settings = _settings(**values)
    settings.executor_image = executor_image
    settings.executor_service_account = executor_service_account
    settings.max_parallel_pods = max_parallel_pods
    serve("controller", settings)


@click.command()
@common_options
@kafka_options
@click.option(
    "--webhook-host",
    envvar="EVENTBRIDGE_WEBHOOK_HOST",
    default="0.0.0.0",
    show_default=True,
    help="Address the webhook-style event sources listen on.",
)
@click.option(
    "--state-dir",
    envvar="EVENTBRIDGE_STATE_DIR",
    default=None,
    type=click.Path(path_type=Path),
    help="Where sources keep state across restarts (calendar catch-up); none when unset.",
)
def eventsource(webhook_host: str, state_dir: Path | None, **values: Any) -> None:
    """Run the namespace's EventSources and publish to their Kafka EventBus."""
    settings = _settings(**values)
    settings.webhook_host = webhook_host
    settings.state_dir = state_dir
    serve("eventsource", settings)


@click.group(name="sensor", invoke_without_command=True, commands=sensors.sensor.commands)
@common_options
@kafka_options
@click.pass_context
def sensor(ctx: click.Context, /, **values: Any) -> None:
    """Run the namespace's Sensors (one Kafka consumer group each); or try sensors (`test`, `traces`)."""
    if ctx.invoked_subcommand is not None:
        return
    serve("sensor", _settings(**values))


@click.command()
@common_options
@click.option("--host", envvar="EVENTBRIDGE_HOST", default="0.0.0.0", show_default=True, help="API address.")
@click.option("--port", envvar="EVENTBRIDGE_PORT", type=int, default=2746, show_default=True, help="API port.")
@click.option(
    "--auth-file",
    envvar="EVENTBRIDGE_AUTH_FILE",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Bearer tokens for the API and UI, one per line: TOKEN [read|write] [namespaces=a,b].",
)
@click.option(
    "--auth-mode",
    envvar="EVENTBRIDGE_AUTH_MODE",
    type=click.Choice(["tokens", "kube"]),
    default="tokens",
    show_default=True,
    help="tokens: the --auth-file tokens (none: open); kube: Kubernetes tokens, checked with TokenReview "
    "and SubjectAccessReview.",
)
def server(host: str, port: int, auth_file: Path | None, auth_mode: str, **values: Any) -> None:
    """Serve the API and the web UI over the namespace's custom resources."""
    if auth_mode == "kube" and auth_file is not None:
        fail("--auth-file and --auth-mode=kube exclude each other: Kubernetes checks the tokens", 2)
    settings = _settings(**values)
    settings.host = host
    settings.port = port
    settings.auth_file = auth_file
    settings.auth_mode = auth_mode
    serve("server", settings)


#: ``sensor`` here is the one ``sensor`` group: the role, with ``sensors.py``'s subcommands.
COMMANDS = [controller, eventsource, sensor, server]
