"""pods/proxy, services/proxy and ``kubectl proxy`` against a real server.

A process-runtime pod runs a small Python HTTP server that echoes what reaches it
(method, path, query, headers, body). It is reached through the API server with
``kubectl get --raw`` (pods/proxy by port number, by its first declared port;
services/proxy by Service port number and name), with other methods and a body
over HTTPS with the admin token, and through ``kubectl proxy`` on a free port.
The Service's endpoints come from the endpoints controller of the server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster import Cluster, free_port, wait_for

ECHO = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    def answer(self):
        size = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(size).decode() if size else ""
        out = json.dumps({"method": self.command, "path": self.path, "body": body,
                          "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("x-echo", "yes")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Echo).serve_forever()
"""


@pytest.fixture(scope="module")
def web(agent_cluster: Cluster) -> Iterator[tuple[Cluster, str, int]]:
    ns = f"proxy-{free_port()}"
    c = agent_cluster
    c.kubectl("create", "namespace", ns)
    port = free_port()
    python = shutil.which("python3") or sys.executable
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "echo", "namespace": ns, "labels": {"app": "echo"}},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "echo", "image": "busybox:1.36",
               "command": [python, "-c", ECHO, str(port)],
               "ports": [{"name": "http", "containerPort": port}],
               "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": ns},
           "spec": {"selector": {"app": "echo"},
                    "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}
    lonely = {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "lonely", "namespace": ns},
              "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]}}
    for obj in (pod, svc, lonely):
        c.kubectl("apply", "-f", "-", input=json.dumps(obj))
    wait_for("the echo pod Ready", lambda: c.kubectl(
        "-n", ns, "get", "pod", "echo", "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}").stdout == "True",
        timeout=60)
    wait_for("the echo Service's endpoints", lambda: c.kubectl(
        "-n", ns, "get", "endpoints", "echo", "-o", "jsonpath={.subsets[0].addresses[0].ip}",
        check=False).stdout != "", timeout=30)
    yield c, ns, port
    c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def raw(c: Cluster, path: str) -> dict:
    return json.loads(c.kubectl("get", "--raw", path).stdout)


def test_pod_proxy(web: tuple[Cluster, str, int]) -> None:
    c, ns, port = web
    seen = raw(c, f"/api/v1/namespaces/{ns}/pods/echo:{port}/proxy/some/path?x=1&y=2")
    assert seen["method"] == "GET"
    assert seen["path"] == "/some/path?x=1&y=2"
    assert "authorization" not in seen["headers"]
    assert raw(c, f"/api/v1/namespaces/{ns}/pods/echo/proxy/")["path"] == "/"
    assert raw(c, f"/api/v1/namespaces/{ns}/pods/http:echo:{port}/proxy/a")["path"] == "/a"


def test_service_proxy(web: tuple[Cluster, str, int]) -> None:
    c, ns, _ = web
    assert raw(c, f"/api/v1/namespaces/{ns}/services/echo:80/proxy/x")["path"] == "/x"
    assert raw(c, f"/api/v1/namespaces/{ns}/services/echo:web/proxy/y")["path"] == "/y"


def test_methods_bodies_headers_and_errors(web: tuple[Cluster, str, int]) -> None:
    c, ns, port = web
    base = f"{c.url}/api/v1/namespaces/{ns}"
    with httpx.Client(verify=False, headers={"authorization": f"Bearer {c.token}"},
                      timeout=30) as http:
        posted = http.post(f"{base}/services/echo:80/proxy/post", content=b"hello body",
                           headers={"x-custom": "1"})
        assert posted.status_code == 201
        assert posted.headers["x-echo"] == "yes"
        echoed = posted.json()
        assert (echoed["method"], echoed["body"]) == ("POST", "hello body")
        assert echoed["headers"]["x-custom"] == "1"
        assert "authorization" not in echoed["headers"]
        for method in ("PUT", "PATCH", "DELETE"):
            answer = http.request(method, f"{base}/pods/echo:{port}/proxy/m", content=b"x")
            assert answer.json()["method"] == method

        redirect = http.get(f"{base}/services/echo:80/proxy", follow_redirects=False)
        assert redirect.status_code == 301
        assert redirect.headers["location"].endswith("/services/echo:80/proxy/")

        missing = http.get(f"{base}/pods/nope/proxy/")
        assert missing.status_code == 404 and missing.json()["kind"] == "Status"
        empty = http.get(f"{base}/services/lonely:80/proxy/")
        assert empty.status_code == 503
        assert empty.json()["message"] == 'no endpoints available for service "lonely"'
        bad_port = http.get(f"{base}/services/echo:81/proxy/")
        assert bad_port.status_code == 503
        assert bad_port.json()["message"] == 'no service port 81 found for service "echo"'
        unnamed = http.get(f"{base}/services/echo/proxy/")  # its only port has a name
        assert unnamed.status_code == 503
        bad = http.get(f"{base}/pods/ftp:echo:1/proxy/")
        assert bad.status_code == 400


def test_kubectl_proxy(web: tuple[Cluster, str, int]) -> None:
    c, ns, _ = web
    port = free_port()
    binary = shutil.which("kubectl")
    assert binary is not None
    proc = subprocess.Popen([binary, "proxy", f"--port={port}", "--address=127.0.0.1"],
                            env=c.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def namespaces() -> dict | None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/namespaces", timeout=5)
            except httpx.HTTPError:
                return None
            return answer.json() if answer.status_code == 200 else None

        listed = wait_for("kubectl proxy to answer", namespaces, timeout=20)
        assert ns in [n["metadata"]["name"] for n in listed["items"]]  # type: ignore[index]
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/namespaces/{ns}/services/"
                           "echo:80/proxy/through/kubectl?q=1", timeout=10)
        assert answer.status_code == 200
        assert answer.json()["path"] == "/through/kubectl?q=1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
