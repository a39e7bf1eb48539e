"""A tiny HTTP server for components that run alone: ``/healthz``, ``/readyz``, ``/metrics``.

A scheduler or controller manager started apart from the API server has no
web framework around it; monitoring still needs to ask it whether it is
healthy and to scrape its metrics. Plain HTTP, GET only, one short answer per
connection: nothing here is on a hot path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kubeling.utils import metrics

log = logging.getLogger("kubeling.health")

Check = Callable[[], bool]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class HealthServer:
    """Serves the named checks (all must pass for 200) and the component metrics."""

    def __init__(self, *, host: str = "0.0.0.0", port: int = 0,
                 checks: dict[str, Check] | None = None) -> None:
        self.host = host
        self.port = port
        self.checks: dict[str, Check] = checks if checks is not None else {}  # may grow later
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("serving /healthz and /metrics on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def health(self) -> tuple[int, bytes]:
        lines, ok = [], True
        for name, check in self.checks.items():
            try:
                good = bool(check())
            except Exception:  # a check that raises is a failed check
                log.exception("health check %s raised", name)
                good = False
            ok = ok and good
            lines.append(f"[{'+' if good else '-'}]{name} {'ok' if good else 'failed'}")
        lines.append("healthz check passed" if ok else "healthz check failed")
        return (200 if ok else 500), ("\n".join(lines) + "\n").encode()

    def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a request line."""
        path = path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path in ("/healthz", "/readyz", "/livez"):
            code, body = self.health()
            return code, "text/plain; charset=utf-8", body
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", metrics.exposition()
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            code, ctype, body = self.answer(method, path)
            writer.write(
                f"HTTP/1.1 {code} {_REASONS.get(code, '')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError, ValueError):
            pass
        finally:
            writer.close()
