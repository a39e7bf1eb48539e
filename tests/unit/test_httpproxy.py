"""pods/proxy and services/proxy: target resolution and header handling, then one relay
through a real registry to a real HTTP server on localhost."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeling.api import errors
from kubeling.apiserver import httpproxy
from kubeling.apiserver.httpproxy import (
    endpoints_candidates,
    pod_location,
    proxy_path,
    request_headers,
    response_headers,
    service_port_name,
    slice_candidates,
    split_scheme_name_port,
)
from kubeling.apiserver.request import parse_path
from kubeling.registry.registry import Registry, WriteOptions
from tests.apiharness import kind, running_registry


def test_split_scheme_name_port() -> None:
    assert split_scheme_name_port("web") == ("http", "web", "")
    assert split_scheme_name_port("web:8080") == ("http", "web", "8080")
    assert split_scheme_name_port("https:web:443") == ("https", "web", "443")
    assert split_scheme_name_port("https:web:") == ("https", "web", "")
    for bad in ("", ":80", "ftp:web:21", "a:b:c:d"):
        with pytest.raises(ValueError):
            split_scheme_name_port(bad)


def pod(ip: str = "10.42.0.7", *ports: int) -> dict[str, Any]:
    return {"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b", "ports": [
                {"containerPort": p} for p in ports]}]},
            "status": {"podIP": ip}}


def test_pod_location() -> None:
    assert pod_location(pod("10.42.0.7", 8080, 9090), "http", "") == "http://10.42.0.7:8080"
    assert pod_location(pod("10.42.0.7", 8080), "https", "443") == "https://10.42.0.7:443"
    assert pod_location(pod("10.42.0.7"), "http", "") == "http://10.42.0.7"
    assert pod_location(pod("fd00::7"), "http", "80") == "http://[fd00::7]:80"
    for ip in ("", "127.0.0.1", "169.254.1.1", "0.0.0.0"):
        with pytest.raises(errors.StatusError) as err:
            pod_location(pod(ip), "http", "80")
        assert err.value.code == 400


def service(*ports: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web"}, "spec": {"ports": list(ports)}}


def test_service_port_name() -> None:
    svc = service({"name": "http", "port": 80}, {"name": "admin", "port": 9000})
    assert service_port_name(svc, "80") == "http"
    assert service_port_name(svc, "admin") == "admin"
    assert service_port_name(service({"port": 80}), "80") == ""
    assert service_port_name(svc, "") == ""
    with pytest.raises(errors.StatusError) as err:
        service_port_name(svc, "81")
    assert err.value.code == 503
    assert err.value.message == 'no service port 81 found for service "web"'


def test_candidates_from_endpoints_and_slices() -> None:
    endpoints = {"subsets": [
        {"addresses": [{"ip": "10.42.0.1"}, {"ip": "10.42.0.2"}],
         "notReadyAddresses": [{"ip": "10.42.0.3"}],
         "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9000}]}]}
    assert endpoints_candidates(endpoints, "http") == [("10.42.0.1", 8080), ("10.42.0.2", 8080)]
    assert endpoints_candidates(endpoints, "") == []
    slices = [{"ports": [{"name": "http", "port": 8080}], "endpoints": [
        {"addresses": ["10.42.0.1"], "conditions": {"ready": True}},
        {"addresses": ["10.42.0.3"], "conditions": {"ready": False}},
        {"addresses": ["10.42.0.4"]}]}]
    assert slice_candidates(slices, "http") == [("10.42.0.1", 8080), ("10.42.0.4", 8080)]


def test_proxy_path_and_headers() -> None:
    path = "/api/v1/namespaces/ns/services/web:80/proxy/a%2Fb/c"
    info = parse_path(path)
    assert info is not None and httpproxy.is_proxy(info)
    assert proxy_path({"raw_path": path.encode(), "path": ""}, info) == "/a%2Fb/c"
    short = "/api/v1/namespaces/ns/pods/p/proxy"
    assert proxy_path({"path": short}, parse_path(short)) is None  # type: ignore[arg-type]
    assert proxy_path({"path": short + "/"}, parse_path(short)) == "/"  # type: ignore[arg-type]
    assert not httpproxy.is_proxy(parse_path("/api/v1/nodes/n/proxy/"))
    assert not httpproxy.is_proxy(parse_path("/api/v1/namespaces/ns/pods/p/log"))
    sent = request_headers([(b"Authorization", b"Bearer x"), (b"Host", b"api"),
                            (b"Connection", b"keep-alive, X-Drop"), (b"X-Drop", b"1"),
                            (b"Accept", b"*/*"), (b"Transfer-Encoding", b"chunked"),
                            (b"X-Forwarded-For", b"192.0.2.1")], "192.0.2.9")
    assert sent == [("accept", "*/*"), ("x-forwarded-for", "192.0.2.1, 192.0.2.9")]
    back = response_headers(httpx.Headers([("Content-Type", "text/html"),
                                           ("Connection", "close, X-Hop"), ("X-Hop", "1"),
                                           ("Keep-Alive", "5"), ("Set-Cookie", "a=1"),
                                           ("Set-Cookie", "b=2")]))
    assert back == [(b"Content-Type", b"text/html"), (b"Set-Cookie", b"a=1"),
                    (b"Set-Cookie", b"b=2")]


class Echo(BaseHTTPRequestHandler):
    def answer(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(size).decode() if size else ""
        out = json.dumps({"method": self.command, "path": self.path, "body": body}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[int]:
    server = ThreadingHTTPServer(("0.0.0.0", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


def host_ip() -> str:
    """An address of this host that is not loopback (pods' IPs never are)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
        except OSError:
            pytest.skip("no non-loopback address")
    return ""


async def relay(registry: Registry, path: str, body: bytes = b"",
                method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    proxy = httpproxy.HttpProxy(registry)
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body[:3], "more_body": True},
              {"type": "http.request", "body": body[3:], "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-length", str(len(body)).encode())] if body else []
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": b"q=1", "headers": headers, "client": ("127.0.0.1", 5)}
    info = parse_path(path)
    assert info is not None
    try:
        status = await proxy.serve(scope, info, send, receive)
    finally:
        await proxy.close()
    start = sent[0]
    assert start["status"] == status
    return (status, {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent[1:]))


async def test_relay_through_a_real_registry(tmp_path: Path, echo: int) -> None:
    ip = host_ip()
    opts = WriteOptions(field_manager="test")
    async with running_registry(tmp_path) as registry:
        await registry.create(kind("", "namespaces"), None,
                              {"metadata": {"name": "ns"}}, opts)
        await registry.create(kind("", "pods"), "ns", {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x",
                                     "ports": [{"containerPort": echo}]}]}}, opts)
        pods = kind("", "pods")
        current = (await registry.get(pods, "ns", "p")).obj
        current["status"] = {"podIP": ip, "podIPs": [{"ip": ip}]}
        await registry.update(pods, "ns", "p", current, opts, subresource="status")
        status, _, body = await relay(registry, "/api/v1/namespaces/ns/pods/p/proxy/x",
                                      b"hello", "POST")
        assert status == 200
        assert json.loads(body) == {"method": "POST", "path": "/x?q=1", "body": "hello"}

        await registry.create(kind("", "services"), "ns", {
            "metadata": {"name": "web"},
            "spec": {"ports": [{"name": "http", "port": 80}]}}, opts)
        with pytest.raises(errors.StatusError) as err:
            await relay(registry, "/api/v1/namespaces/ns/services/web:80/proxy/")
        assert err.value.code == 503
        await registry.create(kind("", "endpoints"), "ns", {
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": ip}],
                         "ports": [{"name": "http", "port": echo}]}]}, opts)
        status, _, body = await relay(registry, "/api/v1/namespaces/ns/services/web:http/proxy/y")
        assert (status, json.loads(body)["path"]) == (200, "/y?q=1")
        status, headers, _ = await relay(registry, "/api/v1/namespaces/ns/services/web/proxy")
        assert status == 301
        assert headers["location"] == "/api/v1/namespaces/ns/services/web/proxy/?q=1"
