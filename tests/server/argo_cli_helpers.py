"""Run the real `eventbridge up` process and the real argo CLI (built by scripts/argo_cli.sh) against it."""

from __future__ import annotations

import json
import os
import re
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
BUILD_SCRIPT = REPO / "scripts" / "argo_cli.sh"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without ANSI colour and cursor codes (``argo logs`` colours pod names; ``--watch`` redraws)."""
    return _ANSI.sub("", text)


def argo_binary() -> Path:
    """The argo CLI built by scripts/argo_cli.sh; fails (never skips) with how to build it."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise AssertionError(
            f"the argo CLI is not built ({result.stderr.strip()}); `make test` builds it with scripts/argo_cli.sh"
        )
    return Path(result.stdout.strip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A running `eventbridge up` on a free loopback port, with its own state and manifests folders."""

    def __init__(self, tmp: Path, *, auth_file: Path | None = None) -> None:
        self.tmp = tmp
        self.manifests = tmp / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "eventbridge.log"
        self.auth_file = auth_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, token: str = "") -> None:
        args = [sys.executable, "-m", "eventbridge", "up", "-f", str(self.manifests)]
        args += ["--state-dir", str(self.tmp / "state"), "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--webhook-host", "127.0.0.1", "--no-watch"]
        if self.auth_file is not None:
            args += ["--auth-file", str(self.auth_file)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"eventbridge up exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if self.api("GET", "/api/v1/version", token=token)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"eventbridge up did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def api(self, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, json.loads(raw) if raw.strip() else None


class Argo:
    """The real argo CLI pointed at one server."""

    def __init__(self, binary: Path, server: Server, workdir: Path) -> None:
        self.binary = binary
        self.server = server
        self.workdir = workdir

    def env(self, token: str = "") -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ARGO_", "KUBECONFIG")) and key not in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy")
        }
        env.update(
            ARGO_SERVER=f"127.0.0.1:{self.server.port}",
            ARGO_HTTP1="true",
            ARGO_SECURE="false",
            ARGO_NAMESPACE="default",
            KUBECONFIG=str(self.workdir / "no-kubeconfig"),
            HOME=str(self.workdir),
            NO_COLOR="1",
        )
        # Always set: without ARGO_TOKEN the CLI looks for a kubeconfig token (as against argo-server
        # in `--auth-mode=server`, an empty token means "no authentication").
        env["ARGO_TOKEN"] = f"Bearer {token}" if token else ""
        return env

    def run(
        self, *args: str, token: str = "", check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``argo ARGS``; with ``check`` a non-zero exit fails the test with both outputs and the server log."""
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            env=self.env(token),
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"argo {' '.join(args)} exited {result.returncode}\n--- stdout ---\n{result.stdout}\n"
                f"--- stderr ---\n{result.stderr}\n--- server log ---\n{self.server.log.read_text()[-3000:]}"
            )
        return result

    def json(self, *args: str, token: str = "") -> Any:
        return json.loads(self.run(*args, "-o", "json", token=token).stdout)
