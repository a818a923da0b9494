"""Helpers shared by the CLI's commands: the API client, argument parsing and printing."""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

DEFAULT_SERVER = "http://localhost:2746"
FINISHED = ("Succeeded", "Failed", "Error")


#: Argo's log label keys: carried in ``extra`` by sources, sensors and triggers.
LABEL_KEYS = (
    "namespace",
    "eventSourceName",
    "eventSourceType",
    "eventName",
    "sensorName",
    "triggerName",
    "triggerType",
    "dependencyName",
    "eventID",
    "workflow",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, Argo's label keys, error."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in LABEL_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The classic text line, with Argo's label keys appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        labels = " ".join(f"{k}={record.__dict__[k]}" for k in LABEL_KEYS if record.__dict__.get(k) is not None)
        return f"{text} [{labels}]" if labels else text


def setup_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("aiohttp.access", "watchfiles.main"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3 (under the kubernetes client) warns three times per failed call while an API server
    # restarts; our own retry logging says what matters.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` to stderr and exit (1 = failure, 2 = invalid input)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def parse_params(params: tuple[str, ...]) -> list[dict[str, str]]:
    """``-p NAME=VALUE`` options as Argo parameter objects."""
    parsed = []
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"invalid parameter {item!r}: use -p NAME=VALUE", 2)
        parsed.append({"name": name, "value": value})
    return parsed


def apply_params(workflow: dict[str, Any], params: list[dict[str, str]]) -> None:
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


def read_documents(file: str) -> list[dict[str, Any]]:
    """The mapping documents of a YAML/JSON file (``-`` for stdin)."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
        documents = [d for d in yaml.safe_load_all(text) if d]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        fail(f"cannot read {file}: {exc}", 2)
    return [d for d in documents if isinstance(d, dict)]


def read_one(file: str, kind: str) -> dict[str, Any]:
    """The single object of ``kind`` in FILE."""
    objects = [d for d in read_documents(file) if d.get("kind") == kind]
    if len(objects) != 1:
        fail(f"{file} must contain exactly one {kind} (found {len(objects)})", 2)
    return objects[0]


def print_object(obj: Any, output: str | None) -> None:
    if output == "json":
        click.echo(json.dumps(obj, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(obj, sort_keys=False), nl=False)
    elif output == "name":
        for item in obj if isinstance(obj, list) else [obj]:
            click.echo(item["metadata"]["name"])


def age(timestamp: str | None) -> str:
    """``5m``-style age of an RFC 3339 timestamp."""
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


def phase(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "Pending")


def summary(workflow: dict[str, Any]) -> str:
    """``argo get``-like text: header and the step table."""
    status = workflow.get("status") or {}
    meta = workflow["metadata"]
    lines = [
        f"Name:       {meta['name']}",
        f"Namespace:  {meta.get('namespace', 'default')}",
        f"Status:     {phase(workflow)}",
    ]
    for label, key in (("Message", "message"), ("Progress", "progress"), ("Started", "startedAt")):
        if status.get(key):
            lines.append(f"{label + ':':<12}{status[key]}")
    nodes = status.get("nodes") or {}
    pods = [n for n in nodes.values() if n.get("type") in ("Pod", "Suspend", "Skipped")]
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

    def _open(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        token = os.environ.get("EVENTBRIDGE_TOKEN", "")
        if token:
            headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's own server
            self.server + path, data=data, method=method, headers=headers
        )
        try:
            return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            fail(f"{method} {path}: {exc.code} {message}")
        except (urllib.error.URLError, OSError) as exc:
            fail(f"cannot reach the server at {self.server}: {exc}. Is `eventbridge up` running?")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(method, path, body) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def lines(self, path: str, timeout: float = 30) -> Iterator[Any]:
        """A newline-delimited JSON stream (log and watch endpoints)."""
        with self._open("GET", path, timeout=timeout) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)


def query(**params: str) -> str:
    present = {k: v for k, v in params.items() if v}
    return f"?{urllib.parse.urlencode(present)}" if present else ""


server_option = click.option(
    "--server", envvar="EVENTBRIDGE_SERVER", default=DEFAULT_SERVER, show_default=True, help="API server URL."
)
namespace_option = click.option("-n", "--namespace", default="default", show_default=True, help="Namespace.")
output_option = click.option("-o", "--output", type=click.Choice(["json", "yaml", "name", "wide"]), default=None)
