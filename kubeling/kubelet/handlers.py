"""Running one probe or lifecycle-hook action: exec, httpGet, tcpSocket, sleep.

Probes and postStart/preStop hooks share their action types, so one function
runs both and reports the outcome with Kubernetes' wording (the words end up
in ``Unhealthy`` and ``FailedPostStartHook`` events). The differences follow
the kubelet: an httpGet probe succeeds on 200-399 and sends
``User-Agent: kube-probe/1.32``, while an httpGet hook succeeds on any HTTP
answer and sends ``kube-lifecycle/1.32``. Redirects are followed up to ten
times while they stay on the same host; a redirect elsewhere ends the probe
as a success with a warning. HTTPS is not verified, as Kubernetes does not.

gRPC probes are not supported by kubeling: such a probe errors (its result
never changes) with a message saying so.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from kubeling.client.interface import Obj
from kubeling.runtime.protocol import Runtime, RuntimeFailure
from kubeling.utils.clock import REAL, Clock

KUBE_VERSION = "1.32"
MAX_OUTPUT = 10 * 1024
MAX_REDIRECTS = 10
_PROBE_FIELDS = ("periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold",
                 "initialDelaySeconds", "terminationGracePeriodSeconds", "grpc")


@dataclass(frozen=True)
class HandlerResult:
    """``ok``: the action succeeded. ``output``: what it said (command output, response body,
    or why it failed). ``warning``: succeeded with a caveat (a probe stopped at a redirect to
    another host). ``errored``: the action could not be run at all (no such port, a runtime
    error); a probe that errors keeps its previous result, as the kubelet's does."""

    ok: bool
    output: str
    warning: bool = False
    errored: bool = False


class _HandlerError(Exception):
    pass


def bare_id(container_id: str) -> str:
    """A runtime id from an API ``containerID`` (``<runtime>://<id>``) or a bare id."""
    return container_id.split("://", 1)[1] if "://" in container_id else container_id


def is_probe(handler: Obj) -> bool:
    return any(k in handler for k in _PROBE_FIELDS)


def resolve_port(port: object, container: Obj) -> int:
    """A port given as a number, a numeric string, or the name of a container port."""
    if isinstance(port, bool):
        raise _HandlerError(f"invalid port number: {port}")
    if isinstance(port, int):
        number = port
    else:
        text = str(port or "")
        if text.isdigit():
            number = int(text)
        else:
            for spec in container.get("ports") or ():
                if spec.get("name") == text:
                    number = int(spec.get("containerPort", 0))
                    break
            else:
                raise _HandlerError(f"port {text} not found")
    if not 0 < number < 65536:
        raise _HandlerError(f"invalid port number: {number}")
    return number


def _hostport(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


async def run_handler(handler: Obj, *, runtime: Runtime, pod: Obj, container: Obj,
                      container_id: str, pod_ip: str, timeout: float,
                      lifecycle: bool | None = None, clock: Clock = REAL) -> HandlerResult:
    """Run a Probe's or a LifecycleHandler's action. ``lifecycle`` says which it is (guessed
    from the probe-only fields when not given). Never raises for the action's own failures."""
    as_hook = (not is_probe(handler)) if lifecycle is None else lifecycle
    try:
        if handler.get("exec") is not None:
            command = [str(c) for c in handler["exec"].get("command") or ()]
            return await _run_exec(runtime, bare_id(container_id), command, timeout)
        if handler.get("httpGet") is not None:
            return await _run_http(handler["httpGet"], container, pod_ip, timeout, as_hook)
        if handler.get("tcpSocket") is not None:
            return await _run_tcp(handler["tcpSocket"], container, pod_ip, timeout)
        if handler.get("sleep") is not None:
            seconds = float(handler["sleep"].get("seconds", 0))
            if seconds > timeout > 0:
                await clock.sleep(timeout)
                return HandlerResult(False, "container terminated before sleep hook finished")
            await clock.sleep(seconds)
            return HandlerResult(True, "")
        if handler.get("grpc") is not None:
            return HandlerResult(False, "gRPC probes are not supported by kubeling",
                                 errored=True)
    except _HandlerError as exc:
        return HandlerResult(False, str(exc), errored=True)
    return HandlerResult(False, "missing probe handler" if not as_hook else
                         "invalid handler: no exec, httpGet, tcpSocket or sleep action",
                         errored=True)


async def _run_exec(runtime: Runtime, container_id: str, command: list[str],
                    timeout: float) -> HandlerResult:
    try:
        result = await runtime.exec_sync(container_id, command, timeout=timeout)
    except RuntimeFailure as exc:
        return HandlerResult(False, exc.message, errored=True)
    if result.timed_out:
        return HandlerResult(False, f'command "{" ".join(command)}" timed out')
    output = (result.stdout + result.stderr)[:MAX_OUTPUT].decode("utf-8", errors="replace")
    return HandlerResult(result.exit_code == 0, output)


def _os_error_words(exc: BaseException) -> str | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None:
            return {errno.ECONNREFUSED: "connection refused",
                    errno.EHOSTUNREACH: "no route to host",
                    errno.ENETUNREACH: "network is unreachable",
                    errno.ECONNRESET: "connection reset by peer"}.get(
                        cur.errno, (cur.strerror or str(cur)).lower())
        cur = cur.__cause__ or cur.__context__
    return None


def _dial_error(exc: BaseException, address: str) -> str:
    words = _os_error_words(exc)
    if words is None:
        words = str(exc) or type(exc).__name__
        if "refused" in words.lower():
            words = "connection refused"
    return f"dial tcp {address}: connect: {words}"


async def _run_tcp(action: Obj, container: Obj, pod_ip: str, timeout: float) -> HandlerResult:
    host = action.get("host") or pod_ip
    port = resolve_port(action.get("port"), container)
    address = _hostport(host, port)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return HandlerResult(False, f"dial tcp {address}: i/o timeout")
    except OSError as exc:
        return HandlerResult(False, _dial_error(exc, address))
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return HandlerResult(True, "")


def http_url(action: Obj, container: Obj, pod_ip: str) -> str:
    scheme = (action.get("scheme") or "HTTP").lower()
    host = action.get("host") or pod_ip
    port = resolve_port(action.get("port"), container)
    path = action.get("path") or ""
    parts = urlsplit(path)
    route = parts.path if not parts.path or parts.path.startswith("/") else "/" + parts.path
    return urlunsplit((scheme, _hostport(host, port), route, parts.query, ""))


def http_headers(action: Obj, *, lifecycle: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for header in action.get("httpHeaders") or ():
        name = str(header.get("name", ""))
        canonical = "-".join(w[:1].upper() + w[1:].lower() for w in name.split("-"))
        headers[canonical] = str(header.get("value", ""))
    headers.setdefault("User-Agent", f"kube-{'lifecycle' if lifecycle else 'probe'}/"
                                     f"{KUBE_VERSION}")
    if "Accept" not in headers:
        headers["Accept"] = "*/*"
    elif not headers["Accept"]:
        del headers["Accept"]
    return headers


async def _run_http(action: Obj, container: Obj, pod_ip: str, timeout: float,
                    lifecycle: bool) -> HandlerResult:
    url = http_url(action, container, pod_ip)
    headers = http_headers(action, lifecycle=lifecycle)
    origin_host = urlsplit(url).hostname
    limit = httpx.Timeout(timeout if timeout > 0 else None)
    async with httpx.AsyncClient(verify=False, timeout=limit, follow_redirects=False,
                                 trust_env=False) as client:
        try:
            async with asyncio.timeout(timeout if timeout > 0 else None):
                for _ in range(MAX_REDIRECTS + 1):
                    response = await client.get(url, headers=headers)
                    body = (await response.aread())[:MAX_OUTPUT].decode("utf-8", "replace")
                    location = response.headers.get("location")
                    if not response.is_redirect or not location:
                        break
                    target = urljoin(url, location)
                    if urlsplit(target).hostname != origin_host:
                        break
                    url = target
                else:
                    return HandlerResult(False, f'Get "{url}": stopped after '
                                                f"{MAX_REDIRECTS} redirects")
        except (TimeoutError, httpx.TimeoutException):
            return HandlerResult(False, f'Get "{url}": context deadline exceeded '
                                        "(Client.Timeout exceeded while awaiting headers)")
        except httpx.TransportError as exc:
            address = urlsplit(url).netloc
            if isinstance(exc, httpx.ConnectError):
                return HandlerResult(False, f'Get "{url}": {_dial_error(exc, address)}')
            return HandlerResult(False, f'Get "{url}": {exc or type(exc).__name__}')
    code = response.status_code
    if lifecycle:
        return HandlerResult(True, body)
    if 200 <= code < 300:
        return HandlerResult(True, body)
    if 300 <= code < 400:
        return HandlerResult(True, f"Probe terminated redirects, Response body: {body}",
                             warning=True)
    return HandlerResult(False, f"HTTP probe failed with statuscode: {code}")
