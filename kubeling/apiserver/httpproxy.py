"""pods/proxy and services/proxy: HTTP relayed from the API server to a pod or a Service.

kube-apiserver lets an authenticated client reach a pod's or a Service's HTTP
port through it: ``/api/v1/namespaces/{ns}/pods/{[scheme:]name[:port]}/proxy/{path}``
goes to the pod's IP (on the given port, else the first declared container
port, else 80), and ``.../services/{[scheme:]name[:port]}/proxy/{path}`` to
one ready endpoint of the Service, picked at random, on the resolved target
port (the Service port given by number or name; the Endpoints' port of that
name). ``kubectl proxy`` and dashboards rely on it.

Every method is relayed; the request body streams to the target and the
answer streams back with its status and headers, minus the hop-by-hop ones
and the client's credentials (the API server authenticated the client; the
target must not see its token). A proxy path without its trailing slash is
redirected (301) to the one with it, as kube-apiserver does. Failures are
``Status`` objects: 404 for an unknown pod or Service, 400 for a malformed name
or a pod without an address, 503 when a Service has no ready endpoint or the
target cannot be reached.

The server reaches pod IPs directly: the OCI runtime's pod network is routed
from the host, and under the process runtime a pod's IP is its node's.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from kubeling.api import errors, kinds
from kubeling.apiserver.request import RequestInfo
from kubeling.registry.listing import ListOptions
from kubeling.registry.registry import Registry

log = logging.getLogger("kubeling.apiserver.httpproxy")

Obj = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PROXY_RESOURCES = ("pods", "services")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
# Never passed to the target: the client's credentials for the API server, and Host
# (the target's own is set by the HTTP client).
DROPPED_REQUEST = frozenset({"authorization", "host", "content-length"})
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

_PODS = kinds.by_resource("", "pods")
_SERVICES = kinds.by_resource("", "services")
_ENDPOINTS = kinds.by_resource("", "endpoints")
_SLICES = kinds.by_resource("discovery.k8s.io", "endpointslices")


def is_proxy(info: RequestInfo | None) -> bool:
    """Whether the request is a pods/proxy or services/proxy call."""
    return (info is not None and info.api_prefix == "api" and info.version == "v1"
            and info.resource in PROXY_RESOURCES and info.namespace is not None
            and bool(info.name) and info.subresource == "proxy")


def split_scheme_name_port(text: str) -> tuple[str, str, str]:
    """``name``, ``name:port`` or ``scheme:name:port`` (scheme http or https, default
    http); raises ValueError when malformed."""
    parts = text.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        raise ValueError(text)
    if not name or scheme not in ("", "http", "https"):
        raise ValueError(text)
    return scheme or "http", name, port


def _host_port(host: str, port: str | int) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port not in ("", 0) else host


def pod_location(pod: Obj, scheme: str, port: str) -> str:
    """``scheme://ip[:port]`` of a pod; 400 when it has no usable address."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not port:
        declared = [p for c in spec.get("containers") or () for p in c.get("ports") or ()]
        if declared:
            port = str(declared[0].get("containerPort", ""))
    ip = str(status.get("podIP") or next(
        (p.get("ip") for p in status.get("podIPs") or () if p.get("ip")), ""))
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise errors.bad_request("address not allowed") from None
    if address.is_loopback or address.is_link_local or address.is_multicast or \
            address.is_unspecified:
        raise errors.bad_request("address not allowed")
    return f"{scheme}://{_host_port(ip, port)}"


def service_port_name(service: Obj, port: str) -> str:
    """The Service port a request means, as the name its endpoints' ports carry: a number is
    looked up among the Service's ports (503 when absent); a name is taken as given."""
    if not port.isdigit():
        return port
    for sp in (service.get("spec") or {}).get("ports") or ():
        if int(sp.get("port", 0)) == int(port):
            return str(sp.get("name") or "")
    name = service["metadata"]["name"]
    raise errors.StatusError(503, "ServiceUnavailable",
                             f'no service port {port} found for service "{name}"')


def endpoints_candidates(endpoints: Obj, port_name: str) -> list[tuple[str, int]]:
    """Ready (ip, port) pairs of an Endpoints object for the named port."""
    out: list[tuple[str, int]] = []
    for subset in endpoints.get("subsets") or ():
        ports = [int(p["port"]) for p in subset.get("ports") or ()
                 if (p.get("name") or "") == port_name and p.get("port")]
        for port in ports:
            out.extend((a["ip"], port) for a in subset.get("addresses") or () if a.get("ip"))
    return out


def slice_candidates(slices: list[Obj], port_name: str) -> list[tuple[str, int]]:
    """Ready (ip, port) pairs of a Service's EndpointSlices for the named port."""
    out: list[tuple[str, int]] = []
    for eps in slices:
        ports = [int(p["port"]) for p in eps.get("ports") or ()
                 if (p.get("name") or "") == port_name and p.get("port")]
        for endpoint in eps.get("endpoints") or ():
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in (endpoint.get("addresses") or ())[:1]:
                out.extend((address, port) for port in ports)
    return out


def proxy_path(scope: Scope, info: RequestInfo) -> str | None:
    """What follows ``.../{name}/proxy`` in the raw request path ("/..."), or None when
    nothing does (not even a slash)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else scope["path"]
    path = path.split("?", 1)[0]
    segments = path.split("/")
    # "", "api", "v1", "namespaces", ns, resource, name, "proxy", ...
    if len(segments) <= 8:
        return None
    return "/" + "/".join(segments[8:])


def request_headers(headers: list[tuple[bytes, bytes]], peer: str) -> list[tuple[str, str]]:
    """The client's headers as the target gets them."""
    named = {v.strip().lower() for k, v in _decode(headers) if k == "connection"
             for v in v.split(",")}
    out = [(k, v) for k, v in _decode(headers)
           if k not in HOP_BY_HOP and k not in DROPPED_REQUEST and k not in named]
    if peer:
        prior = next((v for k, v in out if k == "x-forwarded-for"), "")
        out = [(k, v) for k, v in out if k != "x-forwarded-for"]
        out.append(("x-forwarded-for", f"{prior}, {peer}" if prior else peer))
    return out


def response_headers(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    """The target's headers as the client gets them (hop-by-hop ones dropped)."""
    named = {v.strip().lower() for v in headers.get_list("connection", split_commas=True)}
    return [(k, v) for k, v in headers.raw
            if k.decode("latin-1").lower() not in HOP_BY_HOP
            and k.decode("latin-1").lower() not in named]


def _decode(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]


class HttpProxy:
    """Resolves proxy targets from the registry and relays requests to them."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._http: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            # The target's certificate is not verified (as kube-apiserver's proxy).
            self._http = httpx.AsyncClient(verify=False, follow_redirects=False,
                                           timeout=httpx.Timeout(30.0, read=None))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def location(self, info: RequestInfo) -> str:
        """``scheme://host:port`` the request goes to."""
        try:
            scheme, name, port = split_scheme_name_port(info.name)
        except ValueError:
            kind = "pod" if info.resource == "pods" else "service"
            raise errors.bad_request(f'invalid {kind} request "{info.name}"') from None
        if info.resource == "pods":
            assert _PODS is not None
            pod = (await self.registry.get(_PODS, info.namespace, name)).obj
            return pod_location(pod, scheme, port)
        return f"{scheme}://{await self.service_endpoint(info.namespace or '', name, port)}"

    async def service_endpoint(self, namespace: str, name: str, port: str) -> str:
        """``host:port`` of a random ready endpoint of the Service."""
        assert _SERVICES is not None and _ENDPOINTS is not None and _SLICES is not None
        service = (await self.registry.get(_SERVICES, namespace, name)).obj
        port_name = service_port_name(service, port)
        candidates: list[tuple[str, int]] = []
        try:
            endpoints = (await self.registry.get(_ENDPOINTS, namespace, name)).obj
            candidates = endpoints_candidates(endpoints, port_name)
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
        if not candidates:
            page = await self.registry.list(_SLICES, namespace, ListOptions(
                label_selector=f"{SERVICE_NAME_LABEL}={name}"))
            candidates = slice_candidates([c.obj for c in page.items], port_name)
        if not candidates:
            raise errors.StatusError(503, "ServiceUnavailable",
                                     f'no endpoints available for service "{name}"')
        ip, number = random.choice(candidates)
        return _host_port(ip, number)

    async def serve(self, scope: Scope, info: RequestInfo, send: Send,
                    receive: Receive) -> int:
        """Relay one request; returns the status sent. Raises StatusError before anything
        was sent."""
        rest = proxy_path(scope, info)
        query = scope.get("query_string") or b""
        if rest is None:
            location = scope["path"] + "/" + (f"?{query.decode('latin-1')}" if query else "")
            await send({"type": "http.response.start", "status": 301,
                        "headers": [(b"location", location.encode("latin-1")),
                                    (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return 301
        base = await self.location(info)
        url = base + rest + (f"?{query.decode('latin-1')}" if query else "")
        peer = (scope.get("client") or ("", 0))[0] or ""
        headers = request_headers(scope.get("headers") or [], peer)
        raw = dict(_decode(scope.get("headers") or []))
        length = raw.get("content-length", "")
        has_body = bool(length and length != "0") or "transfer-encoding" in raw
        if length and has_body:
            headers.append(("content-length", length))
        client = self.http()
        request = client.build_request(scope["method"], url, headers=headers,
                                       content=_body(receive) if has_body else None)
        try:
            upstream = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.info("proxy to %s failed: %s", url, exc)
            raise errors.StatusError(503, "ServiceUnavailable",
                                     f"error trying to reach service: {exc}") from None
        try:
            await send({"type": "http.response.start", "status": upstream.status_code,
                        "headers": response_headers(upstream.headers)})
            try:
                async for chunk in upstream.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
            except httpx.HTTPError as exc:
                log.info("proxy answer from %s cut: %s", url, exc)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away
        finally:
            await upstream.aclose()
        return upstream.status_code


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body"):
            return
