"""``eventbridge sensor test`` (a dry run, no server needed) and ``sensor traces`` (from a server)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from eventbridge.cli.common import Client, fail, namespace_option, query, server_option
from eventbridge.errors import InvalidError


@click.group(name="sensor")
def sensor() -> None:
    """Try sensors on events, and see why a running sensor did or did not fire."""


@sensor.command(name="test")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A CloudEvent (structured JSON: one object or a list); repeatable, applied in order.",
)
@click.option("--name", default="", help="Which Sensor of FILE, when it holds several.")
@click.option("-o", "--output", type=click.Choice(["json", "text"]), default="text")
def test(file: Path, events: tuple[Path, ...], name: str, output: str) -> None:
    """Dry-run the Sensor in FILE on --event files: which dependencies match, which triggers fire.

    Exit 0 whether or not anything fired; 2 for invalid input.
    """
    from eventbridge.models.loader import load_paths
    from eventbridge.models.sensor import Sensor
    from eventbridge.sensor.dryrun import dry_run, format_report, parse_cloudevent_file
    from eventbridge.sensor.lint import sensor_findings

    result = load_paths([file])
    for diagnostic in result.errors:
        click.echo(str(diagnostic), err=True)
    sensors = [m for m in result.manifests if isinstance(m, Sensor) and (not name or m.name == name)]
    if result.errors or len(sensors) != 1:
        fail(f"{file} must hold exactly one valid Sensor{f' named {name}' if name else ''} (found {len(sensors)})", 2)
    problems = [f for f in sensor_findings(sensors[0]) if f.severity == "error"]
    if problems:
        fail("; ".join(f"{f.path}: {f.message}" for f in problems), 2)
    try:
        parsed = [event for path in events for event in parse_cloudevent_file(path, sensors[0].namespace)]
    except InvalidError as exc:
        fail(str(exc), 2)
    report = dry_run(sensors[0], parsed)
    click.echo(json.dumps(report, indent=2) if output == "json" else format_report(report))
    sys.exit(0)


@sensor.command(name="traces")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=int)
@click.option("-o", "--output", type=click.Choice(["json", "text"]), default="text")
@server_option
@namespace_option
def traces(name: str, limit: int, output: str, server: str, namespace: str) -> None:
    """Recent decisions of a running sensor, newest first: why it fired or did not."""
    items = Client(server).request("GET", f"/api/v1/sensors/{namespace}/{name}/traces" + query(limit=str(limit)))
    items = (items or {}).get("items") or []
    if output == "json":
        click.echo(json.dumps(items, indent=2))
        return
    for item in items:
        event = item.get("event") or {}
        click.echo(
            f"{item.get('time', '')} {item.get('kind', '')} {event.get('source', '')}/{event.get('subject', '')}"
            f" {event.get('id', '')}"
        )
        for dep in item.get("dependencies") or []:
            mark = "matched" if dep.get("matched") else "no match"
            click.echo(f"  dependency {dep.get('name')}: {mark}{': ' + dep['reason'] if dep.get('reason') else ''}")
        for trig in item.get("triggers") or []:
            click.echo(f"  trigger {trig.get('name')}: {trig.get('status')} {trig.get('result') or ''}".rstrip())


COMMANDS = [sensor]
