"""pods/log, pods/exec and pods/attach: checked here, then proxied to the pod's node.

The API server holds no container output: it validates the request against
the pod as Kubernetes' registry does (which container, is the pod on a node,
is there a log to show), then calls the kubelet on the node's InternalIP and
``status.daemonEndpoints.kubeletEndpoint.Port`` over HTTPS with the
kubelet-client certificate (the kubelet's own certificate is not verified, as
kube-apiserver without ``--kubelet-certificate-authority``). Logs are relayed
as a byte stream; exec and attach as WebSocket frames, untouched, both ways.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from kubeling.api import errors, kinds
from kubeling.apiserver.request import Request, RequestInfo
from kubeling.registry.registry import Registry

log = logging.getLogger("kubeling.apiserver.nodeproxy")

Obj = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_PODS = kinds.by_resource("", "pods")
_NODES = kinds.by_resource("", "nodes")
_ADDRESS_PREFERENCE = ("InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS")
_TRUE = ("1", "true", "True")
MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class Target:
    """Where one request goes on the kubelet."""

    url: str  # https://host:port/path?query (wss:// for streams)
    pod: Obj


class NodeProxy:
    def __init__(self, registry: Registry, *, cert: Path | None, key: Path | None) -> None:
        self.registry = registry
        self.cert = cert
        self.key = key
        self._ssl: ssl.SSLContext | None = None
        self._http: httpx.AsyncClient | None = None

    # ----- connection to kubelets ---------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if self.cert is not None and self.key is not None:
                ctx.load_cert_chain(str(self.cert), str(self.key))
            self._ssl = ctx
        return self._ssl

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(verify=self.ssl_context(), timeout=httpx.Timeout(
                30.0, read=None))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def node_endpoint(self, node_name: str) -> tuple[str, int]:
        assert _NODES is not None
        try:
            node = (await self.registry.get(_NODES, None, node_name)).obj
        except errors.StatusError as exc:
            if exc.code == 404:
                raise errors.StatusError(
                    404, "NotFound", f'nodes "{node_name}" not found') from None
            raise
        status = node.get("status") or {}
        port = (((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {})
                .get("Port") or 0)
        addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or ()}
        host = next((addrs[t] for t in _ADDRESS_PREFERENCE if addrs.get(t)), "")
        if not host or not port:
            raise errors.StatusError(
                503, "ServiceUnavailable",
                f"node {node_name} has no kubelet endpoint (status.addresses and "
                "status.daemonEndpoints.kubeletEndpoint.Port) to reach it on")
        return host, int(port)

    # ----- validation ---------------------------------------------------------------

    async def get_pod(self, info: RequestInfo) -> Obj:
        assert _PODS is not None
        return (await self.registry.get(_PODS, info.namespace, info.name)).obj

    async def log_target(self, req: Request, info: RequestInfo) -> Target | None:
        """The kubelet URL for a pods/log request; None for an unscheduled pod (no logs)."""
        pod = await self.get_pod(info)
        container = choose_container(pod, req.q("container"))
        params: list[tuple[str, str]] = []
        for name in ("follow", "previous", "timestamps"):
            if req.q(name) in _TRUE:
                params.append((name, "true"))
        for name in ("sinceSeconds", "tailLines", "limitBytes"):
            if req.q(name):
                value = req.qint(name)
                least = 0 if name == "tailLines" else 1
                if value < least:
                    must = "greater than or equal to 0" if least == 0 else "greater than 0"
                    raise errors.invalid("PodLogOptions", "", [{
                        "reason": "FieldValueInvalid", "field": name,
                        "message": f"Invalid value: {value}: must be {must}"}])
                params.append((name, str(value)))
        if req.q("sinceTime"):
            if req.q("sinceSeconds"):
                raise errors.invalid("PodLogOptions", "", [{
                    "reason": "FieldValueForbidden", "field": "",
                    "message": "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be "
                               "specified"}])
            params.append(("sinceTime", req.q("sinceTime")))
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name:
            return None
        check_log_status(pod, container, previous=req.q("previous") in _TRUE)
        host, port = await self.node_endpoint(node_name)
        meta = pod["metadata"]
        query = urlencode(params)
        url = (f"https://{_host(host)}:{port}/containerLogs/{meta['namespace']}/{meta['name']}/"
               f"{container}" + (f"?{query}" if query else ""))
        return Target(url, pod)

    async def stream_target(self, req: Request, info: RequestInfo) -> Target:
        """The kubelet URL (wss://) for pods/exec or pods/attach."""
        pod = await self.get_pod(info)
        container = choose_container(pod, req.q("container"))
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name:
            raise errors.bad_request(f"pod {info.name} does not have a host assigned")
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            verb = "exec into" if info.subresource == "exec" else "attach to"
            raise errors.bad_request(
                f"cannot {verb} a container in a completed pod; current phase is {phase}")
        params: list[tuple[str, str]] = []
        for name in ("stdin", "stdout", "stderr", "tty"):
            if req.q(name) in _TRUE:
                params.append((name, "1"))
        if info.subresource == "exec":
            commands = req.query.get("command", [])
            if not commands:
                raise errors.bad_request("you must specify at least one command for the "
                                         "container")
            params.extend(("command", c) for c in commands)
        if not any(req.q(n) in _TRUE for n in ("stdin", "stdout", "stderr")):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        host, port = await self.node_endpoint(node_name)
        meta = pod["metadata"]
        url = (f"wss://{_host(host)}:{port}/{info.subresource}/{meta['namespace']}/"
               f"{meta['name']}/{container}?{urlencode(params)}")
        return Target(url, pod)

    # ----- relays -------------------------------------------------------------------

    async def serve_log(self, target: Target, send: Send, receive: Receive) -> int:
        """Relay the kubelet's answer; the response starts only once the kubelet agreed."""
        client = self.http()
        try:
            upstream = await client.send(client.build_request("GET", target.url), stream=True)
        except httpx.HTTPError as exc:
            raise errors.internal(f"error dialing backend: {exc}") from None
        try:
            if not 200 <= upstream.status_code <= 206:
                body = b""
                async for chunk in upstream.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_ERROR_BODY:
                        break
                raise _upstream_error(upstream.status_code, body.decode(errors="replace"),
                                      target.pod)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"),
                                    (b"cache-control", b"no-cache, private")]})

            async def pump() -> None:
                async for chunk in upstream.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})

            await _until_disconnect(pump(), receive)
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass
            return 200
        finally:
            await upstream.aclose()

    async def serve_stream(self, target: Target, scope: Scope, send: Send,
                           receive: Receive) -> None:
        """Connect to the kubelet first, then accept the client with the subprotocol the
        kubelet chose, then relay frames both ways until either side closes."""
        offered = [Subprotocol(p) for p in scope.get("subprotocols") or ()]
        try:
            upstream = await connect(target.url, ssl=self.ssl_context(),
                                     subprotocols=offered or None, max_size=None,
                                     open_timeout=15, compression=None)
        except InvalidStatus as exc:
            body = exc.response.body or b""
            raise _upstream_error(exc.response.status_code, body.decode(errors="replace"),
                                  target.pod) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise errors.internal(f"error dialing backend: {exc}") from None
        try:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            await _relay(upstream, send, receive)
        finally:
            await upstream.close()


def choose_container(pod: Obj, container: str) -> str:
    """The container a request means, with Kubernetes' errors for none or a wrong one."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    all_names = [c["name"] for key in ("initContainers", "containers", "ephemeralContainers")
                 for c in spec.get(key) or ()]
    if not container:
        containers: list[Obj] = spec.get("containers") or []
        if len(containers) == 1:
            return str(containers[0]["name"])
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        raise errors.bad_request(f"a container name must be specified for pod {name}, "
                                 f"choose one of: [{' '.join(all_names)}]")
    if container not in all_names:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def check_log_status(pod: Obj, container: str, *, previous: bool) -> None:
    """The kubelet's answer for a container with no log to show, from the pod's status
    (a container the status does not know yet is left for the kubelet to judge)."""
    status = pod.get("status") or {}
    name = pod["metadata"]["name"]
    found = None
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        found = next((s for s in status.get(key) or () if s.get("name") == container), None)
        if found is not None:
            break
    if found is None:
        return
    state = found.get("state") or {}
    last = (found.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found')
        return
    if "running" in state or "terminated" in state or last:
        return
    waiting = state.get("waiting")
    reason = (waiting or {}).get("reason") or ""
    if reason == "ErrImagePull":
        detail = ": image can't be pulled"
    elif reason == "ImagePullBackOff":
        detail = ": trying and failing to pull image"
    elif waiting is not None:
        detail = f": {reason}"
    else:
        detail = " - no logs yet"
    raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start'
                             f"{detail}")


def spdy_refused() -> errors.StatusError:
    return errors.bad_request(
        "this server streams exec, attach and port-forward over WebSocket only "
        "(v5.channel.k8s.io, v4.channel.k8s.io); SPDY upgrades are not supported: use "
        "kubectl 1.30 or later, or a client that speaks the WebSocket channel protocols")


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _upstream_error(code: int, body: str, pod: Obj) -> errors.StatusError:
    """A kubelet error as kube-apiserver reports it (its generic response checker)."""
    text = body.strip()
    try:
        status = orjson.loads(text)
        if isinstance(status, dict) and status.get("kind") == "Status":
            text = str(status.get("message") or text)
    except orjson.JSONDecodeError:
        pass
    if code == 400:
        return errors.bad_request(text)
    if code == 500:
        return errors.internal(text)
    if code == 404:
        return errors.StatusError(404, "NotFound", text)
    return errors.StatusError(code, "InternalError" if code >= 500 else "BadRequest", text)


async def _until_disconnect(work: Awaitable[None], receive: Receive) -> None:
    async def disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks: set[asyncio.Future[None]] = {asyncio.ensure_future(work),
                                         asyncio.ensure_future(disconnect())}
    done: set[asyncio.Future[None]] = set()
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        exc = None if t.cancelled() else t.exception()
        if exc is not None and not isinstance(exc, OSError | httpx.HTTPError):
            raise exc


async def _relay(upstream: ClientConnection, send: Send, receive: Receive) -> None:
    async def down() -> None:
        try:
            async for message in upstream:
                if isinstance(message, str):
                    await send({"type": "websocket.send", "text": message})
                else:
                    await send({"type": "websocket.send", "bytes": message})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        await send({"type": "websocket.close", "code": 1000 if code in (1005, 1006) else code})

    async def up() -> None:
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("bytes") is not None:
                await upstream.send(msg["bytes"])
            elif msg.get("text") is not None:
                await upstream.send(msg["text"])

    tasks = {asyncio.ensure_future(down()), asyncio.ensure_future(up())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
