"""The ASGI application: authentication, routing and the Status error edge.

A raw ASGI callable rather than a framework: the routes are the Kubernetes
URL scheme, parsed once into a RequestInfo, and the hot path (create, get,
list, watch) does no work beyond what the registry and the encoder need.
Every failure leaves as a Kubernetes ``Status``.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from kubeling.api import errors, kinds
from kubeling.apiserver import codec, discovery, httpproxy, metrics, nodeproxy
from kubeling.apiserver.auth import Authenticator, User, is_public
from kubeling.apiserver.handlers import Handlers, Response
from kubeling.apiserver.nodeproxy import NodeProxy
from kubeling.apiserver.portforward import PortForwarder
from kubeling.apiserver.request import Request, RequestInfo, parse_path, parse_query
from kubeling.apiserver.watch import WatchStream
from kubeling.registry.registry import Registry

log = logging.getLogger("kubeling.apiserver")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+kubeling",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-26T00:00:00Z",
    "goVersion": f"python{platform.python_version()}",
    "compiler": "cpython",
    "platform": f"linux/{'amd64' if platform.machine() == 'x86_64' else platform.machine()}",
}

PEER_KEY = "kubeling.peer"


class ApiServer:
    def __init__(self, registry: Registry, authenticator: Authenticator, *,
                 ca_pem: bytes = b"", kubelet_client_cert: Path | None = None,
                 kubelet_client_key: Path | None = None) -> None:
        self.registry = registry
        self.auth = authenticator
        self.ca_pem = ca_pem  # served at /cacerts: a joining agent checks it against its token
        self.handlers = Handlers(registry)
        # pods/log, exec and attach: proxied to the pod's node with this client certificate.
        self.nodes = NodeProxy(registry, cert=kubelet_client_cert, key=kubelet_client_key)
        self.portforward = PortForwarder(self.nodes)  # pods/portforward (SPDY, WebSocket)
        # pods/proxy and services/proxy: HTTP relayed to a pod or a Service's endpoint.
        self.http_proxy = httpproxy.HttpProxy(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        method = scope["method"]
        path = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        req = Request(method, path, parse_query(scope.get("query_string", b"")), headers)
        info = parse_path(path)
        labels = _metric_labels(method, req, info)
        code = 500
        try:
            proxied = httpproxy.is_proxy(info)  # its body streams through: not read here
            if not proxied:
                req.body = await _read_body(receive, headers)
            if not is_public(path):
                authz = headers.get("authorization")
                user = self.auth.authenticate(authz.encode() if authz else None,
                                              scope.get(PEER_KEY))
                if user is None:
                    raise errors.unauthorized()
                req.user = user
            if proxied:
                assert info is not None
                code = await self.http_proxy.serve(scope, info, send, receive)
                return
            if info is not None and info.resource and _is_watch(req, info):
                code = await self._watch(req, info, send, receive)
                return
            if _is_node_stream(info) and info is not None and info.subresource == "portforward":
                await self.portforward.serve_http(req, info, scope)  # SPDY; else a Status
                return
            if _is_node_stream(info):
                assert info is not None
                streamed = await self._node_http(req, info, send, receive)
                if streamed:
                    code = 200
                    return
            resp = await self._route(req, info)
        except errors.StatusError as exc:
            if exc.code >= 500:
                log.error("%s %s: %s", method, path, exc.message)
            elif exc.code not in (404, 409):
                log.info("%s %s: %d %s: %s", method, path, exc.code, exc.reason, exc.message)
            resp = Response(exc.code, orjson.dumps(exc.to_status()))
        except Exception as exc:
            log.exception("%s %s failed", method, path)
            err = errors.internal(repr(exc))
            resp = Response(500, orjson.dumps(err.to_status()))
        code = resp.status
        try:
            await _send_response(send, resp)
        finally:
            metrics.REQUEST_METRICS.observe(labels, code, time.perf_counter() - start)

    async def _route(self, req: Request, info: RequestInfo | None) -> Response:
        path = req.path.rstrip("/") or "/"
        if info is None:
            return await self._non_resource(req, path)
        want = codec.negotiate(req.headers.get("accept"))
        if not info.version:
            if req.method != "GET":
                raise errors.method_not_supported(path, req.method)
            if info.api_prefix == "api":
                if want.shape == "discovery":
                    return _discovery(discovery.aggregated_discovery(True))
                return _json(discovery.api_versions())
            if not info.group:
                if want.shape == "discovery":
                    return _discovery(discovery.aggregated_discovery(False))
                return _json(discovery.api_group_list())
            group = discovery.api_group(info.group)
            if group is None:
                raise errors.StatusError(404, "NotFound", "the server could not find the "
                                         "requested resource")
            return _json(group)
        if not info.resource:
            if req.method != "GET":
                raise errors.method_not_supported(path, req.method)
            lst = discovery.api_resource_list(info.group, info.version)
            if lst is None:
                raise errors.StatusError(404, "NotFound", "the server could not find the "
                                         "requested resource")
            return _json(lst)
        kind = kinds.by_resource(info.group, info.resource)
        if kind is None or info.version not in kind.versions:
            raise errors.StatusError(404, "NotFound",
                                     "the server could not find the requested resource")
        if info.namespace is not None and not kind.namespaced:
            raise errors.StatusError(404, "NotFound",
                                     "the server could not find the requested resource")
        if info.subresource and info.subresource not in kind.subresources:
            raise errors.StatusError(404, "NotFound",
                                     "the server could not find the requested resource")
        return await self._resource(req, info, kind, want)

    async def _resource(self, req: Request, info: RequestInfo, kind: kinds.Kind,
                        want: codec.Want) -> Response:
        h = self.handlers
        m = req.method
        sub = info.subresource
        if not info.name:
            if m == "GET":
                return await h.list(req, info, kind, want)
            if m == "POST":
                return await h.create(req, info, kind, want)
            if m == "DELETE":
                return await h.delete_collection(req, info, kind, want)
            raise errors.method_not_supported(kind.resource, m.lower(), kind.group)
        if sub == "scale" and m == "GET":
            return await h.get_scale(info, kind, want)
        if sub == "binding":
            if m != "POST":
                raise errors.method_not_supported("pods/binding", m.lower())
            return await h.bind(req, info, kind, want)
        if sub in ("proxy", "eviction", "token", "ephemeralcontainers"):
            raise errors.StatusError(
                503, "ServiceUnavailable",
                f"the {kind.resource}/{sub} subresource needs a node agent, which this server "
                "does not run yet")
        if m == "GET":
            return await h.get(req, info, kind, want)
        if m == "PUT":
            return await h.update(req, info, kind, want)
        if m == "PATCH":
            return await h.patch(req, info, kind, want)
        if m == "DELETE":
            return await h.delete(req, info, kind, want)
        if m == "POST" and sub == "":
            raise errors.method_not_supported(kind.resource, "create", kind.group)
        raise errors.method_not_supported(kind.resource, m.lower(), kind.group)

    async def _non_resource(self, req: Request, path: str) -> Response:
        if req.method not in ("GET", "HEAD"):
            raise errors.method_not_supported(path, req.method)
        if path in ("/healthz", "/livez") or path.startswith(("/healthz/", "/livez/")):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/readyz" or path.startswith("/readyz/"):
            if not self.registry.cache.ready.is_set():
                return Response(500, b"[-]watch-cache not ready\nreadyz check failed",
                                "text/plain; charset=utf-8")
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return _json(VERSION_INFO)
        if path == "/cacerts" and self.ca_pem:
            return Response(200, self.ca_pem, "application/x-pem-file")
        if path == "/metrics":
            metrics.WATCHERS.labels("", "all").set(self.registry.cache.watcher_count())
            return Response(200, metrics.exposition(), "text/plain; version=0.0.4")
        if path == "/openapi/v2":
            from kubeling.apiserver import openapi

            accept = req.headers.get("accept", "")
            if "com.github.proto-openapi.spec.v2" in accept:
                return Response(200, openapi.openapi_v2_protobuf(),
                                openapi.PROTOBUF_V2_MEDIA_TYPE)
            return Response(200, openapi.openapi_v2_document())
        if path == "/openapi/v3":
            from kubeling.apiserver import openapi

            return _json(openapi.openapi_v3_index())
        if path.startswith("/openapi/v3/"):
            from kubeling.apiserver import openapi

            rest = path[len("/openapi/v3/"):]
            parts = rest.split("/")
            doc: bytes | None = None
            if parts[0] == "api" and len(parts) == 2:
                doc = openapi.openapi_v3_document("", parts[1])
            elif parts[0] == "apis" and len(parts) == 3:
                doc = openapi.openapi_v3_document(parts[1], parts[2])
            if doc is None:
                raise errors.StatusError(404, "NotFound", "the server could not find the "
                                         "requested resource")
            resp = Response(200, doc)
            etag = openapi.openapi_v3_hash(*openapi.group_version_of(rest) or ("", ""))
            if etag:
                resp.headers.append((b"etag", f'"{etag}"'.encode()))
            return resp
        if path == "/":
            paths = sorted({"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz",
                            "/metrics", "/openapi/v2", "/openapi/v3", "/version",
                            *(f"/apis/{g.name}" for g in kinds.groups()),
                            *(f"/apis/{g.name}/{v}" for g in kinds.groups() for v in g.versions)})
            return _json({"paths": paths})
        raise errors.StatusError(404, "NotFound", "the server could not find the requested "
                                 "resource")

    async def _node_http(self, req: Request, info: RequestInfo, send: Send,
                         receive: Receive) -> bool:
        """pods/log over plain HTTP; exec and attach here are the SPDY or non-upgrade
        requests, refused with the reason once the request itself has been checked.
        True once a response has been streamed."""
        if info.subresource == "log":
            if req.method != "GET":
                raise errors.method_not_supported("pods/log", req.method.lower())
            target = await self.nodes.log_target(req, info)
            if target is None:
                await _send_response(send, Response(200, b"", "text/plain"))
                return True
            await self.nodes.serve_log(target, send, receive)
            return True
        if req.method not in ("GET", "POST"):
            raise errors.method_not_supported(f"pods/{info.subresource}", req.method.lower())
        await self.nodes.stream_target(req, info)
        if "spdy" in req.headers.get("upgrade", "").lower():
            raise nodeproxy.spdy_refused()
        raise errors.bad_request("Upgrade request required")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """pods/exec and pods/attach over WebSocket: authenticated as any request, checked,
        then relayed to the pod's kubelet. A refusal is an HTTP answer with a Status."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        req = Request("GET", path, parse_query(scope.get("query_string", b"")), headers)
        info = parse_path(path)
        try:
            if (await receive())["type"] != "websocket.connect":
                return
            authz = headers.get("authorization")
            user = self.auth.authenticate(authz.encode() if authz else None,
                                          scope.get(PEER_KEY))
            if user is None:
                raise errors.unauthorized()
            req.user = user
            if not _is_node_stream(info) or info is None or info.subresource == "log":
                raise errors.StatusError(404, "NotFound",
                                         "the server could not find the requested resource")
            if info.subresource == "portforward":
                await self.portforward.serve_websocket(req, info, scope, send, receive)
                return
            target = await self.nodes.stream_target(req, info)
            await self.nodes.serve_stream(target, scope, send, receive)
        except errors.StatusError as exc:
            if exc.code not in (404,):
                log.info("websocket %s: %d %s: %s", path, exc.code, exc.reason, exc.message)
            body = orjson.dumps(exc.to_status())
            await send({"type": "websocket.http.response.start", "status": exc.code,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "websocket.http.response.body", "body": body})

    async def _watch(self, req: Request, info: RequestInfo, send: Send,
                     receive: Receive) -> int:
        kind = kinds.by_resource(info.group, info.resource)
        if kind is None or info.version not in kind.versions or \
                (info.namespace is not None and not kind.namespaced):
            raise errors.StatusError(404, "NotFound",
                                     "the server could not find the requested resource")
        want = codec.negotiate(req.headers.get("accept"))
        if info.name:
            req.query["fieldSelector"] = [
                ",".join(filter(None, [req.q("fieldSelector"), f"metadata.name={info.name}"]))]
        stream = WatchStream(self.registry, req, info, kind, want)
        frames = stream.frames()
        first = asyncio.ensure_future(anext(frames))
        ready, _ = await asyncio.wait({first}, timeout=0.05)
        if first in ready and isinstance(first.exception(), errors.StatusError):
            await frames.aclose()  # type: ignore[attr-defined]
            raise first.exception()  # type: ignore[misc]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"cache-control", b"no-cache, private")]})
        metrics.LONGRUNNING.labels("WATCH", kind.resource).inc()

        async def pump() -> None:
            try:
                frame = await first
            except StopAsyncIteration:
                frame = None
            if frame is not None:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                async for frame in frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks: set[asyncio.Task[None]] = {
            asyncio.create_task(pump(), name="watch-pump"),
            asyncio.create_task(disconnect(), name="watch-disconnect")}
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for t in done:
                if not t.cancelled() and t.exception() is not None and \
                        not isinstance(t.exception(), OSError):
                    log.error("watch on %s failed: %r", kind.resource, t.exception())
        finally:
            first.cancel()
            metrics.LONGRUNNING.labels("WATCH", kind.resource).dec()
            await frames.aclose()  # type: ignore[attr-defined]
        return 200


def _is_node_stream(info: RequestInfo | None) -> bool:
    return (info is not None and info.api_prefix == "api" and info.version == "v1"
            and info.resource == "pods" and bool(info.name) and info.namespace is not None
            and info.subresource in _NODE_STREAMS)


_NODE_STREAMS = ("log", "exec", "attach", "portforward")


def _is_watch(req: Request, info: RequestInfo) -> bool:
    return req.method == "GET" and (info.legacy_watch or req.q("watch").lower() in ("true", "1"))


def _json(obj: Any) -> Response:
    return Response(200, orjson.dumps(obj))


def _discovery(obj: Any) -> Response:
    return Response(200, orjson.dumps(obj), codec.DISCOVERY_V2)


async def _read_body(receive: Receive, headers: dict[str, str]) -> bytes:
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > codec.MAX_BODY:
        raise errors.too_large(f"Request entity too large: limit is {codec.MAX_BODY}")
    chunks = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        body = msg.get("body", b"")
        size += len(body)
        if size > codec.MAX_BODY:
            raise errors.too_large(f"Request entity too large: limit is {codec.MAX_BODY}")
        chunks.append(body)
        if not msg.get("more_body"):
            break
    return b"".join(chunks)


async def _send_response(send: Send, resp: Response) -> None:
    headers = [(b"content-type", resp.content_type.encode()),
               (b"content-length", str(len(resp.body)).encode()),
               (b"cache-control", b"no-cache, private"), *resp.headers]
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": resp.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _metric_labels(method: str, req: Request, info: RequestInfo | None,
                   ) -> tuple[str, str, str, str, str]:
    if info is None or not info.resource:
        return (method, "", "", "", "")
    if method == "GET":
        if info.legacy_watch or req.q("watch") in ("true", "1"):
            verb = "WATCH"
        else:
            verb = "GET" if info.name else "LIST"
    elif method == "POST":
        verb = "POST"
    else:
        verb = method
    return (verb, info.group, info.version, info.resource, info.subresource)


__all__ = ["ApiServer", "User"]
