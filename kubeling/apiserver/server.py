"""Serving the API over HTTPS: uvicorn (uvloop, httptools) with client certificates.

uvicorn does not put the verified peer certificate in the ASGI scope, so a
small protocol subclass reads it from the TLS connection once and adds the
user it names to every request's scope under ``kubeling.peer``; the WebSocket
protocol (exec and attach) gets the same treatment. A plain ``Upgrade: SPDY/3.1``
request (kubectl port-forward) may be taken over by its handler.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kubeling.apiserver.app import PEER_KEY, ApiServer
from kubeling.apiserver.auth import User, user_from_peercert
from kubeling.apiserver.portforward import HIJACK_KEY

with warnings.catch_warnings():  # uvicorn 0.34 still builds on websockets' legacy API
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

log = logging.getLogger("kubeling.apiserver")


class _Hijacked(asyncio.StreamReaderProtocol):
    """The protocol of a connection taken over after a SPDY upgrade."""

    def __init__(self, reader: asyncio.StreamReader, on_lost: Callable[[], None]) -> None:
        super().__init__(reader)
        self._on_lost = on_lost

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._on_lost()


class PeerCertProtocol(HttpToolsProtocol):
    """httptools protocol that records the TLS client certificate's user, and lets the
    application take over a connection upgraded to SPDY/3.1 (kubectl port-forward): the
    request is handled as any other (authentication, checks), and the handler may then
    call ``scope["extensions"][HIJACK_KEY](head)`` to write its 101 and get the
    connection as asyncio streams."""

    _peer: User | None = None
    _hijacked: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            try:
                self._peer = user_from_peercert(ssl_object.getpeercert())
            except (ValueError, ssl.SSLError):
                self._peer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[PEER_KEY] = self._peer  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        upgrade = self._get_upgrade() if self.parser.should_upgrade() else None
        if upgrade is not None and upgrade.startswith(b"spdy/") and self.cycle is not None:
            cycle = self.cycle
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[HIJACK_KEY] = lambda head: self._hijack(cycle, head)

    def _unsupported_upgrade_warning(self) -> None:
        if not (self._get_upgrade() or b"").startswith(b"spdy/"):
            super()._unsupported_upgrade_warning()

    def _hijack(self, cycle: Any, head: bytes) -> tuple[asyncio.StreamReader,
                                                        asyncio.StreamWriter]:
        transport = self.transport
        cycle.response_started = cycle.response_complete = True  # uvicorn writes no more
        self._unset_keepalive_if_required()
        reader = asyncio.StreamReader(limit=1 << 20)
        protocol = _Hijacked(reader, on_lost=lambda: self.connections.discard(self))
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        self._hijacked = transport
        transport.write(head)
        transport.resume_reading()
        writer = asyncio.StreamWriter(transport, protocol, reader, asyncio.get_running_loop())
        return reader, writer

    def shutdown(self) -> None:
        if self._hijacked is not None:
            self._hijacked.abort()
            return
        # An idle keep-alive connection is dropped at once: a TLS close would wait for the
        # client's close_notify, which an idle client never sends, and stall the shutdown.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()
        else:
            super().shutdown()


class PeerWebSocketProtocol(WebSocketProtocol):
    """uvicorn's WebSocket protocol, with the TLS client certificate's user in the scope
    (exec and attach authenticate like any other request)."""

    _peer: User | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            try:
                self._peer = user_from_peercert(ssl_object.getpeercert())
            except (ValueError, ssl.SSLError):
                self._peer = None

    async def run_asgi(self) -> None:
        self.scope[PEER_KEY] = self._peer  # type: ignore[literal-required]
        await super().run_asgi()


def make_config(app: ApiServer, *, host: str, port: int, cert: Path | None, key: Path | None,
                ca: Path | None) -> uvicorn.Config:
    kwargs: dict[str, Any] = {}
    if cert is not None and key is not None:
        kwargs.update(ssl_certfile=str(cert), ssl_keyfile=str(key))
        if ca is not None:
            kwargs.update(ssl_ca_certs=str(ca), ssl_cert_reqs=ssl.CERT_OPTIONAL)
    return uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http=PeerCertProtocol, ws=PeerWebSocketProtocol,
        lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=120,
        backlog=4096, limit_concurrency=None, server_header=False, date_header=True,
        # Open watches never finish on their own: cut them off rather than stall a shutdown.
        timeout_graceful_shutdown=5,
        **kwargs,
    )


class Server(uvicorn.Server):
    """uvicorn's server without its own signal handlers (the CLI owns them)."""

    def install_signal_handlers(self) -> None:
        return
