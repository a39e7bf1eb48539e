"""The kubelet's own HTTPS API: container logs, exec, attach, port-forward, health, metrics
and stats.

The API server reaches a node's containers only through this server, on the
kubelet's paths (``/containerLogs/{ns}/{pod}/{container}``,
``/exec/{ns}/{pod}/{container}``, ``/attach/...``, ``/stats/summary``,
``/metrics/resource``). Clients must present a certificate signed by the
cluster CA (the API server calls with its kubelet-client certificate).
Containers are found through the runtime alone, by the labels the agent gives
them, so static pods and pods the API no longer lists are served alike.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kubeling.client.interface import Obj
from kubeling.kubelet import logs, portforward, streams
from kubeling.kubelet.context import CONTAINER_NAME, POD_NAME, POD_NAMESPACE, KubeletContext
from kubeling.runtime.protocol import ContainerState, ContainerStatus, RuntimeFailure
from kubeling.utils import metrics
from kubeling.utils.tasks import spawn

with warnings.catch_warnings():  # uvicorn 0.34 still builds on websockets' legacy API
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

log = logging.getLogger("kubeling.kubelet.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_TRUE = ("1", "true", "True")


class StatsSource(Protocol):
    """What ``/stats/summary`` and ``/metrics/resource`` serve (kubelet/stats.py)."""

    def summary(self) -> Obj: ...

    def resource_metrics(self) -> bytes: ...


class HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class KubeletServer:
    def __init__(self, ctx: KubeletContext, *, cert_file: Path, key_file: Path,
                 client_ca_file: Path | None, stats: StatsSource | None = None) -> None:
        self.ctx = ctx
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.stats = stats
        self.port = 0
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listen on ``options.address``:``options.port`` (0 = a free port); the bound port."""
        opts = self.ctx.options
        family = socket.AF_INET6 if ":" in opts.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((opts.address, opts.port))
        sock.listen(512)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        kwargs: dict[str, Any] = {}
        if self.client_ca_file is not None:
            kwargs.update(ssl_ca_certs=str(self.client_ca_file),
                          ssl_cert_reqs=ssl.CERT_REQUIRED)
        config = uvicorn.Config(
            self, loop="none", http=_HttpProtocol, ws=WebSocketProtocol, lifespan="off",
            log_level="warning", access_log=False, server_header=False,
            ssl_certfile=str(self.cert_file), ssl_keyfile=str(self.key_file),
            timeout_graceful_shutdown=2, ws_ping_interval=None, **kwargs)
        server = _Server(config)
        self._server = server
        task = spawn(server.serve(sockets=[sock]), name="kubelet-server")
        self._task = task
        while not server.started and not task.done():
            await _tick()
        if task.done():
            task.result()
        log.info("kubelet API serving on %s:%d", opts.address, self.port)
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # ----- the ASGI application ---------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"),
                         keep_blank_values=True)
        try:
            if method not in ("GET", "HEAD", "POST"):
                raise HttpError(405, "method not allowed")
            await self._http(method, path, query, scope, receive, send)
        except HttpError as exc:
            await _respond(send, exc.code, exc.message.encode(), "text/plain; charset=utf-8")

    async def _http(self, method: str, path: str, query: dict[str, list[str]], scope: Scope,
                    receive: Receive, send: Send) -> None:
        if path == "/healthz":
            await _respond(send, 200, b"ok", "text/plain; charset=utf-8")
        elif path == "/metrics":
            await _respond(send, 200, metrics.exposition(), "text/plain; version=0.0.4")
        elif path == "/metrics/resource":
            if self.stats is None:
                raise HttpError(503, "stats are not available on this node")
            await _respond(send, 200, self.stats.resource_metrics(),
                           "text/plain; version=0.0.4")
        elif path == "/stats/summary":
            if self.stats is None:
                raise HttpError(503, "stats are not available on this node")
            await _respond(send, 200, orjson.dumps(self.stats.summary()), "application/json")
        elif path == "/pods":
            await _respond(send, 200, orjson.dumps(self._pod_list()), "application/json")
        elif path.startswith("/containerLogs/"):
            ns, pod, container = _split(path, "/containerLogs/")
            await self._logs(ns, pod, container, query, send, receive)
        elif path.startswith("/portForward/"):
            raise HttpError(400, "Upgrade request required")
        elif path.startswith(("/exec/", "/attach/")):
            if "spdy" in _header(scope, b"upgrade").lower():
                raise HttpError(400, "SPDY is not supported: exec and attach are served over "
                                     "WebSocket (v5.channel.k8s.io, v4.channel.k8s.io)")
            raise HttpError(400, "Upgrade request required")
        else:
            raise HttpError(404, "404 page not found")

    def _pod_list(self) -> Obj:
        node = self.ctx.options.node_name
        informer = self.ctx.informers.informer(("", "pods"),
                                               field_selector=f"spec.nodeName={node}")
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                "items": informer.list()}

    # ----- containers, found through the runtime -------------------------------------

    async def find_containers(self, namespace: str, pod: str,
                              container: str) -> list[ContainerStatus]:
        """The container's attempts in the pod's newest sandbox, newest first."""
        runtime = self.ctx.runtime
        sandboxes = [s for s in await runtime.list_pod_sandboxes()
                     if s.labels.get(POD_NAMESPACE, s.namespace) == namespace
                     and s.labels.get(POD_NAME, s.name) == pod]
        if not sandboxes:
            return []
        newest = max(sandboxes, key=lambda s: (s.created_at, s.attempt))
        found = [c for c in await runtime.list_containers(newest.id)
                 if c.labels.get(CONTAINER_NAME, c.name) == container]
        found.sort(key=lambda c: (c.attempt, c.created_at), reverse=True)
        return found

    async def _logs(self, namespace: str, pod: str, container: str,
                    query: dict[str, list[str]], send: Send, receive: Receive) -> None:
        try:
            opts = logs.LogOptions.from_query(query, now=self.ctx.clock.now())
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        previous = _q(query, "previous") in _TRUE
        attempts = await self.find_containers(namespace, pod, container)
        if not attempts:
            raise HttpError(400, f'container "{container}" in pod "{pod}" is not available')
        if previous:
            if len(attempts) < 2:
                raise HttpError(400, f'previous terminated container "{container}" in pod '
                                     f'"{pod}" not found')
            target = attempts[1]
        else:
            target = attempts[0]
        if not target.log_path:
            raise HttpError(400, f'container "{container}" in pod "{pod}" has no log file')
        runtime = self.ctx.runtime
        cid = target.id

        async def running() -> bool:
            try:
                status = await runtime.container_status(cid)
            except RuntimeFailure:
                return False
            return status.state in (ContainerState.RUNNING, ContainerState.CREATED)

        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"cache-control", b"no-cache, private")]})
        reader = logs.read_logs(Path(target.log_path), opts, running=running,
                                clock=self.ctx.clock)
        await streams.stream_body(reader, send, receive)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"),
                         keep_blank_values=True)
        if (await receive())["type"] != "websocket.connect":
            return
        if path.startswith("/portForward/"):
            await self._port_forward(path, query, scope, send, receive)
            return
        try:
            if path.startswith("/exec/"):
                verb = "exec"
            elif path.startswith("/attach/"):
                verb = "attach"
            else:
                raise HttpError(404, "404 page not found")
            ns, pod, container = _split(path, f"/{verb}/")
            request = streams.StreamRequest.from_query(verb, query)
            protocol = streams.negotiate(scope.get("subprotocols") or [])
        except (HttpError, streams.StreamError) as exc:
            code = exc.code if isinstance(exc, HttpError) else 400
            await send({"type": "websocket.http.response.start", "status": code,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "websocket.http.response.body", "body": str(exc).encode()})
            return
        attempts = await self.find_containers(ns, pod, container)
        current = attempts[0] if attempts else None
        await streams.serve(self.ctx.runtime, request, current, protocol, send, receive,
                            container_name=container)

    async def _port_forward(self, path: str, query: dict[str, list[str]], scope: Scope,
                            send: Send, receive: Receive) -> None:
        """``/portForward/{ns}/{pod}[/{uid}]`` over WebSocket (kubelet/portforward.py)."""
        parts = [unquote(p) for p in path[len("/portForward/"):].strip("/").split("/")]
        try:
            if len(parts) not in (2, 3) or not all(parts):
                raise portforward.PortForwardRequestError(404, "404 page not found")
            ports = portforward.parse_ports(query.get("ports", []) + query.get("port", []))
            protocol = portforward.negotiate(list(scope.get("subprotocols") or []))
            sandbox = await portforward.find_sandbox(self.ctx.runtime, parts[0], parts[1])
            if sandbox is None:
                raise portforward.PortForwardRequestError(404, "pod does not exist")
        except portforward.PortForwardRequestError as exc:
            await send({"type": "websocket.http.response.start", "status": exc.code,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "websocket.http.response.body", "body": str(exc).encode()})
            return
        uid = parts[2] if len(parts) == 3 else ""
        await portforward.serve(self.ctx.runtime, sandbox, sandbox, uid, ports, protocol,
                                send, receive)


class _HttpProtocol(HttpToolsProtocol):
    def shutdown(self) -> None:
        # An idle keep-alive connection (the API server pools them) is dropped at once: a
        # TLS close would wait for a close_notify the idle client never sends.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()
        else:
            super().shutdown()


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        return


async def _tick() -> None:
    await asyncio.sleep(0.01)


def _split(path: str, prefix: str) -> tuple[str, str, str]:
    parts = [unquote(p) for p in path[len(prefix):].strip("/").split("/")]
    if len(parts) != 3 or not all(parts):
        raise HttpError(404, "404 page not found")
    return parts[0], parts[1], parts[2]


def _q(query: dict[str, list[str]], name: str) -> str:
    v = query.get(name)
    return v[-1] if v else ""


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return ""


async def _respond(send: Send, status: int, body: bytes, ctype: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
