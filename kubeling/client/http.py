"""The HTTPS client: the API's verbs against any Kubernetes-compatible API server.

Components that run apart from the API server (a remote scheduler, controller
manager or hollow nodes) use it; it keeps the contract of
:class:`kubeling.client.interface.Client`, so they run the same code as the
in-process components of the all-in-one server.

Failures come in two kinds, so callers know how to retry:

- The server answered with a non-2xx status: :class:`StatusError` carrying the
  code, reason, message and details (name, kind, group, causes,
  retryAfterSeconds) of the returned ``Status``.
- The server could not be reached or the connection broke before an answer
  (refused, reset, TLS failure, timeout): :class:`ApiUnreachable`, a
  ``ConnectionError``. Back off and try again; nothing is known about whether
  a write took effect.

A watch whose connection breaks mid-stream just ends, as when the server
closes it; the caller watches again from the last revision it saw. Unlike the
in-process client, a watch without a resourceVersion (or "0") first yields
the current objects as ADDED events, as the Kubernetes API does.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from kubeling.api.errors import StatusError
from kubeling.api.kinds import Kind, api_version
from kubeling.client import kubeconfig
from kubeling.client.interface import ListResult, Obj, PatchType, WatchEvent
from kubeling.utils.clock import REAL, Clock

log = logging.getLogger("kubeling.client.http")

PATCH_CONTENT_TYPES: dict[str, str] = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
            413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}


class ApiUnreachable(ConnectionError):
    """The API server could not be reached, or the connection failed before an answer."""


def status_error(code: int, body: bytes, headers: httpx.Headers | None = None) -> StatusError:
    """The :class:`StatusError` of a failed response (a ``Status`` body, or any other)."""
    status: Any = None
    try:
        status = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        pass
    if not isinstance(status, dict) or status.get("kind") != "Status":
        text = body.decode(errors="replace").strip()
        return StatusError(code, _REASONS.get(code, "Unknown"),
                           text or f"the server responded with HTTP {code}",
                           retry_after=_retry_after(headers))
    return status_from_object(status, code=code, headers=headers)


def status_from_object(status: Obj, *, code: int = 0,
                       headers: httpx.Headers | None = None) -> StatusError:
    """A :class:`StatusError` from a ``Status`` object (a response body or a watch ERROR)."""
    code = int(status.get("code") or code or 500)
    details = status.get("details") or {}
    retry = details.get("retryAfterSeconds")
    return StatusError(
        code,
        status.get("reason") or _REASONS.get(code, "Unknown"),
        status.get("message") or "",
        name=details.get("name"),
        group=details.get("group"),
        kind=details.get("kind"),
        causes=list(details.get("causes") or []),
        retry_after=int(retry) if retry is not None else _retry_after(headers),
    )


def _retry_after(headers: httpx.Headers | None) -> int | None:
    value = headers.get("retry-after") if headers is not None else None
    return int(value) if value and value.isdigit() else None


@contextmanager
def _pem_files(*blobs: bytes | None) -> Iterator[list[str | None]]:
    """Private temporary files holding PEM data (ssl loads client keys only from files)."""
    paths: list[str | None] = []
    try:
        for blob in blobs:
            if blob is None:
                paths.append(None)
                continue
            fd, path = tempfile.mkstemp(suffix=".pem")
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            paths.append(path)
        yield paths
    finally:
        for p in paths:
            if p is not None:
                os.unlink(p)


class _RateLimiter:
    """Requests spaced 1/qps apart, as client-go's token bucket with a burst of one."""

    def __init__(self, qps: float, clock: Clock) -> None:
        self.interval = 1.0 / qps
        self.clock = clock
        self.next_slot = 0.0

    async def wait(self) -> None:
        now = self.clock.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await self.clock.sleep(slot - now)


class HttpClient:
    """:class:`kubeling.client.interface.Client` over HTTPS (HTTP/1.1, pooled connections).

    Up to ``max_connections`` requests run at once; more wait for a free connection. On
    one machine fewer connections cost less client CPU (the pool is scanned per request);
    across a network more of them hide latency. ``qps`` > 0 spaces requests evenly.
    """

    def __init__(self, server: str, *, token: str = "", ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None,
                 user_agent: str = "kubeling", field_manager: str = "kubeling",
                 qps: float = 0, insecure: bool = False, max_connections: int = 100,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.server = server.rstrip("/")
        self.field_manager = field_manager
        if ssl_context is None:
            ssl_context = ssl.create_default_context(cafile=ca_file)
            if cert_file:
                ssl_context.load_cert_chain(cert_file, key_file)
            if insecure:
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        common: dict[str, Any] = {"base_url": self.server, "headers": headers,
                                  "verify": ssl_context, "http1": True, "http2": False}
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0, pool=30.0),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            **common)
        # Watches hold their connection for minutes: a pool of their own, unbounded, so
        # they never starve short requests.
        self._watch_http = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            **common)
        self._limiter = _RateLimiter(qps, REAL) if qps > 0 else None

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, *, context: str = "",
                        field_manager: str = "kubeling", user_agent: str = "kubeling",
                        qps: float = 0, max_connections: int = 100) -> HttpClient:
        """A client for the current context of the kubeconfig at ``path`` (default:
        ``$KUBECONFIG``, then ``~/.kube/config``)."""
        creds = kubeconfig.load(path, context=context)
        ctx = ssl.create_default_context(
            cafile=creds.ca_file,
            cadata=creds.ca_data.decode() if creds.ca_data else None)
        if creds.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if creds.cert_file or creds.cert_data:
            with _pem_files(creds.cert_data, creds.key_data) as (cert_tmp, key_tmp):
                ctx.load_cert_chain(creds.cert_file or cert_tmp or "",
                                    creds.key_file or key_tmp)
        return cls(creds.server, token=creds.token, user_agent=user_agent,
                   field_manager=field_manager, qps=qps, max_connections=max_connections,
                   ssl_context=ctx)

    # ----- plumbing -------------------------------------------------------------------

    @staticmethod
    def path(kind: Kind, namespace: str | None, name: str = "", subresource: str = "") -> str:
        """The URL path of a collection, an object or an object's subresource."""
        version = kind.stored_version
        parts = [f"/apis/{kind.group}/{version}" if kind.group else f"/api/{version}"]
        if kind.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(kind.resource)
        if name:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)

    async def _request(self, method: str, url: str, *, params: dict[str, str] | None = None,
                       body: Any = None, content_type: str = "application/json") -> Obj:
        if self._limiter is not None:
            await self._limiter.wait()
        headers = {"Content-Type": content_type} if body is not None else None
        content = orjson.dumps(body) if body is not None else None
        try:
            resp = await self._http.request(method, url, params=params, content=content,
                                            headers=headers)
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"{method} {self.server}{url}: {exc!r}") from exc
        if resp.status_code >= 300:
            raise status_error(resp.status_code, resp.content, resp.headers)
        result: Obj = orjson.loads(resp.content) if resp.content else {}
        return result

    def _typed(self, kind: Kind, obj: Obj) -> Obj:
        if obj.get("apiVersion") and obj.get("kind"):
            return obj
        return {**obj, "apiVersion": api_version(kind.group, kind.stored_version),
                "kind": kind.kind}

    @staticmethod
    def _list_params(label_selector: str, field_selector: str,
                     resource_version: str) -> dict[str, str]:
        params = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if resource_version:
            params["resourceVersion"] = resource_version
        return params

    # ----- the verbs ------------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        return await self._request("GET", self.path(kind, namespace, name))

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "",
                   limit: int = 0, continue_: str = "",
                   resource_version: str = "") -> ListResult:
        params = self._list_params(label_selector, field_selector, resource_version)
        if limit:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        body = await self._request("GET", self.path(kind, namespace), params=params)
        meta = body.get("metadata") or {}
        items = [self._typed(kind, item) for item in body.get("items") or []]
        return ListResult(items, str(meta.get("resourceVersion", "")),
                          str(meta.get("continue") or ""))

    async def watch(self, kind: Kind, namespace: str | None = None, *,
                    resource_version: str = "", label_selector: str = "",
                    field_selector: str = "", allow_bookmarks: bool = True,
                    timeout_seconds: int = 0) -> AsyncIterator[WatchEvent]:
        params = self._list_params(label_selector, field_selector, resource_version)
        params["watch"] = "1"
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds:
            params["timeoutSeconds"] = str(timeout_seconds)
        if self._limiter is not None:
            await self._limiter.wait()
        url = self.path(kind, namespace)
        request = self._watch_http.build_request("GET", url, params=params)
        try:
            resp = await self._watch_http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"watch {self.server}{url}: {exc!r}") from exc
        try:
            if resp.status_code >= 300:
                raise status_error(resp.status_code, await resp.aread(), resp.headers)
            pending = b""
            async for chunk in resp.aiter_bytes():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield self._event(kind, line)
            if pending.strip():
                yield self._event(kind, pending)
        except httpx.TransportError as exc:
            log.debug("watch %s ended: %r", url, exc)
        finally:
            await resp.aclose()

    def _event(self, kind: Kind, line: bytes) -> WatchEvent:
        ev = orjson.loads(line)
        obj = ev.get("object") or {}
        if ev.get("type") == "ERROR":
            raise status_from_object(obj)
        return WatchEvent(ev["type"], obj)

    async def create(self, kind: Kind, namespace: str | None, obj: Obj) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return await self._request("POST", self.path(kind, ns), body=self._typed(kind, obj),
                                   params={"fieldManager": self.field_manager})

    async def update(self, kind: Kind, obj: Obj, *, subresource: str = "") -> Obj:
        meta = obj["metadata"]
        url = self.path(kind, meta.get("namespace"), meta["name"], subresource)
        return await self._request("PUT", url, body=self._typed(kind, obj),
                                   params={"fieldManager": self.field_manager})

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, *,
                    patch_type: PatchType = "merge", subresource: str = "",
                    field_manager: str = "", force: bool = False) -> Obj:
        params = {"fieldManager": field_manager or self.field_manager}
        if force:
            params["force"] = "true"
        return await self._request("PATCH", self.path(kind, namespace, name, subresource),
                                   params=params, body=patch,
                                   content_type=PATCH_CONTENT_TYPES[patch_type])

    async def delete(self, kind: Kind, namespace: str | None, name: str, *,
                     options: Obj | None = None) -> Obj:
        """Delete with DeleteOptions. Returns the object when the server sends it back
        (still finalizing, or a kind that returns deleted objects), else the server's
        success ``Status`` (whose ``details`` name the object and its uid)."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", **(options or {})}
        return await self._request("DELETE", self.path(kind, namespace, name), body=body)

    async def bind(self, namespace: str, name: str, node: str, *, uid: str = "") -> None:
        meta: Obj = {"name": name, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": meta,
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        url = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}" \
              "/binding"
        await self._request("POST", url, body=binding,
                            params={"fieldManager": self.field_manager})

    async def close(self) -> None:
        await self._http.aclose()
        await self._watch_http.aclose()
