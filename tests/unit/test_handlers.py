"""Probe and hook actions against a real local HTTP server, a TCP port and a fake runtime."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kubeling.client.interface import Obj
from kubeling.kubelet.handlers import HandlerResult, run_handler
from kubeling.runtime.protocol import ExecResult, NotFound, Runtime
from kubeling.utils.clock import FakeClock


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", location: str = "") -> None:
        self.send_response(code)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        _Handler.seen.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
        match self.path:
            case "/ok" | "/ok?x=1":
                self._send(200, b"fine")
            case "/fail":
                self._send(500, b"broken")
            case "/here":
                self._send(302, location="/ok")
            case "/away":
                self._send(302, b"moved", location="http://elsewhere.invalid/ok")
            case "/loop":
                self._send(302, location="/loop")
            case "/slow":
                time.sleep(1.5)
                self._send(200, b"late")
            case _:
                self._send(404, b"no")


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FakeRuntime:
    name = "fake"

    def __init__(self, result: ExecResult | None = None) -> None:
        self.result = result or ExecResult(0, b"", b"")
        self.calls: list[tuple[str, tuple[str, ...], float]] = []

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        self.calls.append((container_id, tuple(command), timeout))
        if container_id == "gone":
            raise NotFound("container gone")
        return self.result


POD: Obj = {"metadata": {"name": "p", "namespace": "default", "uid": "u"}}
CONTAINER: Obj = {"name": "c", "ports": [{"name": "web", "containerPort": 0}]}


async def run(handler: Obj, *, runtime: FakeRuntime | None = None, port: int = 0,
              container_id: str = "process://abc", timeout: float = 1.0,
              lifecycle: bool | None = None) -> HandlerResult:
    container = {"name": "c", "ports": [{"name": "web", "containerPort": port or 1}]}
    rt: Runtime = runtime or FakeRuntime()  # type: ignore[assignment]
    return await run_handler(handler, runtime=rt, pod=POD, container=container,
                             container_id=container_id, pod_ip="127.0.0.1", timeout=timeout,
                             lifecycle=lifecycle)


async def test_exec_success_failure_and_combined_output() -> None:
    rt = FakeRuntime(ExecResult(0, b"out ", b"err"))
    probe = {"exec": {"command": ["test", "-f", "/x"]}, "periodSeconds": 10}
    assert await run(probe, runtime=rt, timeout=3) == HandlerResult(True, "out err")
    assert rt.calls == [("abc", ("test", "-f", "/x"), 3)]
    rt.result = ExecResult(1, b"", b"no such file")
    assert await run(probe, runtime=rt) == HandlerResult(False, "no such file")


async def test_exec_timeout_and_runtime_errors() -> None:
    rt = FakeRuntime(ExecResult(-1, b"", b"", timed_out=True))
    result = await run({"exec": {"command": ["sleep", "10"]}}, runtime=rt)
    assert result == HandlerResult(False, 'command "sleep 10" timed out')
    result = await run({"exec": {"command": ["true"]}}, container_id="gone")
    assert not result.ok and result.errored and "not found" in result.output


async def test_http_probe_success_and_failure_wording(http_port: int) -> None:
    ok = await run({"httpGet": {"path": "/ok", "port": http_port}, "periodSeconds": 1})
    assert ok == HandlerResult(True, "fine")
    bad = await run({"httpGet": {"path": "/fail", "port": http_port}, "periodSeconds": 1})
    assert bad == HandlerResult(False, "HTTP probe failed with statuscode: 500")
    missing = await run({"httpGet": {"path": "/missing", "port": "web"}, "timeoutSeconds": 1},
                        port=http_port)
    assert missing == HandlerResult(False, "HTTP probe failed with statuscode: 404")


async def test_http_probe_sends_kubernetes_headers(http_port: int) -> None:
    _Handler.seen.clear()
    probe = {"httpGet": {"path": "ok?x=1", "port": http_port, "httpHeaders": [
        {"name": "x-custom", "value": "yes"}]}, "periodSeconds": 1}
    assert (await run(probe)).ok
    seen = _Handler.seen[-1]
    assert seen["path"] == "/ok?x=1"
    assert seen["User-Agent"] == "kube-probe/1.32"
    assert seen["Accept"] == "*/*"
    assert seen["X-Custom"] == "yes"
    hook = {"httpGet": {"path": "/ok", "port": http_port}}
    assert (await run(hook)).ok
    assert _Handler.seen[-1]["User-Agent"] == "kube-lifecycle/1.32"


async def test_http_redirects(http_port: int) -> None:
    local = await run({"httpGet": {"path": "/here", "port": http_port}, "periodSeconds": 1})
    assert local == HandlerResult(True, "fine")
    away = await run({"httpGet": {"path": "/away", "port": http_port}, "periodSeconds": 1})
    assert away.ok and away.warning
    assert away.output == "Probe terminated redirects, Response body: moved"
    loop = await run({"httpGet": {"path": "/loop", "port": http_port}, "periodSeconds": 1})
    assert loop == HandlerResult(
        False, f'Get "http://127.0.0.1:{http_port}/loop": stopped after 10 redirects')


async def test_http_connection_refused_and_timeout(http_port: int) -> None:
    port = closed_port()
    refused = await run({"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 1})
    assert refused == HandlerResult(
        False, f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: '
               "connect: connection refused")
    slow = await run({"httpGet": {"path": "/slow", "port": http_port}, "periodSeconds": 1},
                     timeout=0.3)
    assert slow == HandlerResult(
        False, f'Get "http://127.0.0.1:{http_port}/slow": context deadline exceeded '
               "(Client.Timeout exceeded while awaiting headers)")


async def test_http_hook_succeeds_on_any_answer(http_port: int) -> None:
    result = await run({"httpGet": {"path": "/fail", "port": http_port}}, lifecycle=True)
    assert result == HandlerResult(True, "broken")


async def test_named_port_not_found_errors() -> None:
    result = await run({"httpGet": {"path": "/", "port": "metrics"}, "periodSeconds": 1})
    assert result == HandlerResult(False, "port metrics not found", errored=True)
    result = await run({"tcpSocket": {"port": "metrics"}, "periodSeconds": 1})
    assert result == HandlerResult(False, "port metrics not found", errored=True)


async def test_tcp_socket(http_port: int) -> None:
    assert await run({"tcpSocket": {"port": "web"}}, port=http_port) == HandlerResult(True, "")
    port = closed_port()
    assert await run({"tcpSocket": {"port": port}}) == HandlerResult(
        False, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def test_grpc_is_not_supported() -> None:
    result = await run({"grpc": {"port": 9000}, "periodSeconds": 1})
    assert result.errored and not result.ok
    assert "not supported" in result.output


async def test_sleep_hook_on_a_fake_clock() -> None:
    import asyncio

    clock = FakeClock()
    rt: Runtime = FakeRuntime()  # type: ignore[assignment]
    task = asyncio.ensure_future(run_handler(
        {"sleep": {"seconds": 5}}, runtime=rt, pod=POD, container=CONTAINER,
        container_id="x", pod_ip="", timeout=30, clock=clock))
    await clock.advance(4.9)
    assert not task.done()
    await clock.advance(0.2)
    assert await task == HandlerResult(True, "")
    cut = asyncio.ensure_future(run_handler(
        {"sleep": {"seconds": 60}}, runtime=rt, pod=POD, container=CONTAINER,
        container_id="x", pod_ip="", timeout=2, clock=clock))
    await clock.advance(2)
    assert await cut == HandlerResult(False, "container terminated before sleep hook finished")
