"""Serving the API over HTTPS: uvicorn (uvloop, httptools) with client certificates.

uvicorn does not put the verified peer certificate in the ASGI scope, so a
small protocol subclass reads it from the TLS connection once and adds the
user it names to every request's scope under ``kubeling.peer``; the WebSocket
protocol (exec and attach) gets the same treatment.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kubeling.apiserver.app import PEER_KEY, ApiServer
from kubeling.apiserver.auth import User, user_from_peercert

with warnings.catch_warnings():  # uvicorn 0.34 still builds on websockets' legacy API
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

log = logging.getLogger("kubeling.apiserver")


class PeerCertProtocol(HttpToolsProtocol):
    """httptools protocol that records the TLS client certificate's user."""

    _peer: User | None = None

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

    def shutdown(self) -> None:
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
