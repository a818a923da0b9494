"""Streaming answers as argo-server sends them.

argo-server streams through grpc-gateway: with ``Accept: text/event-stream`` each message is a
server-sent event ``data: {"result": ...}`` followed by a blank line (the argo CLI reads these);
otherwise newline-delimited JSON ``{"result": ...}``. Heartbeats are SSE comment lines ``:``
(short enough for the argo CLI to skip).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class ResultStream:
    """A prepared streaming response that writes ``{"result": ...}`` messages."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.sse = "text/event-stream" in request.headers.get("Accept", "")
        content_type = "text/event-stream" if self.sse else "application/json"
        self.response = web.StreamResponse(
            headers={
                "Content-Type": content_type,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        self.closed = False

    async def prepare(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, result: Any) -> bool:
        """Write one message; False once the client has gone away."""
        return await self._write(json.dumps({"result": result}, separators=(",", ":")))

    async def send_raw(self, document: Any) -> bool:
        return await self._write(json.dumps(document, separators=(",", ":")))

    async def _write(self, text: str) -> bool:
        if self.closed:
            return False
        data = f"data: {text}\n\n" if self.sse else f"{text}\n"
        try:
            await self.response.write(data.encode())
        except (ConnectionResetError, RuntimeError):
            self.closed = True
            return False
        return True

    async def heartbeat(self) -> bool:
        if self.closed:
            return False
        if not self.sse:
            return True
        try:
            await self.response.write(b":\n\n")
        except (ConnectionResetError, RuntimeError):
            self.closed = True
            return False
        return True

    async def finish(self) -> web.StreamResponse:
        if not self.closed:
            try:
                await self.response.write_eof()
            except (ConnectionResetError, RuntimeError):
                self.closed = True
        return self.response
