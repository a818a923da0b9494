"""Fixtures that run the real `eventbridge up` process on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns (status, headers, body) for every status."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class Process:
    """A running `eventbridge up` with its own state dir, manifests folder and ports."""

    def __init__(self, tmp: Path, *, relative: bool = False) -> None:
        self.tmp = tmp
        self.manifests = tmp / "manifests"
        self.manifests.mkdir(exist_ok=True)
        self.state = tmp / "state"
        self.port = free_port()
        self.webhook_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "eventbridge.log"
        self.relative = relative  # pass paths relative to the process's working directory, as users do

    def write(self, name: str, text: str) -> Path:
        path = self.manifests / name
        path.write_text(text.replace("WEBHOOK_PORT", str(self.webhook_port)))
        return path

    def copy_examples(self) -> None:
        for source in (REPO / "sensors").glob("webhook-*.yaml"):
            self.write(source.name, source.read_text().replace('"12000"', '"WEBHOOK_PORT"'))

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "EVENTBRIDGE_LOG_LEVEL": "info", **(extra_env or {})}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "eventbridge",
                    "up",
                    "-f",
                    self._arg(self.manifests),
                    "--state-dir",
                    self._arg(self.state),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--webhook-host",
                    "127.0.0.1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.tmp,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"eventbridge up exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                status, _, _ = http("GET", f"{self.url}/api/v1/version", timeout=1)
                if status == 200 and self._webhook_ready():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"eventbridge up did not become ready:\n{self.log.read_text()}")

    def _arg(self, path: Path) -> str:
        return str(path.relative_to(self.tmp)) if self.relative else str(path)

    def _webhook_ready(self) -> bool:
        if not any(self.manifests.glob("*eventsource*")):
            return True
        try:
            return http("GET", f"http://127.0.0.1:{self.webhook_port}/health", timeout=1)[0] == 200
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        status, _, raw = http(method, self.url + path, data, {"Content-Type": "application/json"})
        return status, json.loads(raw) if raw.strip() else None

    def post_event(self, endpoint: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, _, raw = http(
            "POST",
            f"http://127.0.0.1:{self.webhook_port}{endpoint}",
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )
        return status, json.loads(raw) if raw.strip() else None

    def workflows(self, namespace: str = "default") -> list[dict[str, Any]]:
        status, body = self.api("GET", f"/api/v1/workflows/{namespace}")
        assert status == 200, body
        return list(body["items"] or [])

    def wait_for(self, predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n--- log ---\n{self.log.read_text()[-4000:]}")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "eventbridge", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.tmp,
            env={**os.environ, "EVENTBRIDGE_SERVER": self.url},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"eventbridge {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result


def finished(workflow: dict[str, Any]) -> bool:
    return (workflow.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error")
