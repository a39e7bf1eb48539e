"""kubectl port-forward end to end: the real kubectl 1.32 (SPDY tunnelled in WebSocket, and
plain SPDY when told not to use WebSockets), kubectl 1.20 (plain SPDY) and the official Python
client (WebSocket channels), through the API server to the kubelet of the server's own node
(process runtime: the pod's port is on the host's localhost)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import portforward as k8s_portforward

from tests.cluster import Cluster, free_port, require, wait_for

NS = "portfwd"
KUBECTL_120 = Path(__file__).resolve().parents[2] / ".tools/kubectl-1.20/usr/bin/kubectl"
BIG = 300_000  # beyond SPDY's initial 64 KiB window: nobody may wait for WINDOW_UPDATE


def server_pod(name: str, port: int, root: Path, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "web", "image": "busybox:1.36",
                "command": ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1",
                            "--directory", str(root)],
                "ports": [{"containerPort": port, "name": "http"}]}]}}


@pytest.fixture(scope="module")
def web(agent_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory,
        ) -> Iterator[tuple[Cluster, int, Path]]:
    require("kubectl")
    c = agent_cluster
    root = tmp_path_factory.mktemp("www")
    (root / "index.txt").write_text("hello through port-forward\n")
    (root / "big.bin").write_bytes(bytes(range(256)) * (BIG // 256))
    port = free_port()
    c.kubectl("create", "namespace", NS)
    c.kubectl("apply", "-n", NS, "-f", "-",
              input=json.dumps(server_pod("web", port, root, {"app": "web"})))
    c.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/web", "--timeout=60s")
    yield c, port, root
    c.kubectl("delete", "namespace", NS, "--wait=false", check=False)


class Forward:
    """A running ``kubectl port-forward``, its local port read from its output."""

    def __init__(self, cluster: Cluster, *args: str, binary: str = "kubectl",
                 env: dict[str, str] | None = None, namespace: str = NS) -> None:
        self.proc = subprocess.Popen(
            [binary, "port-forward", "-n", namespace, *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**cluster.env(), **(env or {})})
        self.stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
        if found is None:
            self.close()
            raise AssertionError(f"kubectl port-forward said {line!r}: {''.join(self.stderr)}")
        self.port = int(found.group(1))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Forward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def http_get(port: int, path: str) -> bytes:
    """One HTTP/1.0 GET; the whole response (headers and body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def body(response: bytes) -> bytes:
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head
    return rest


def test_pod_over_websocket_tunnel(web: tuple[Cluster, int, Path]) -> None:
    cluster, port, root = web
    with Forward(cluster, "pod/web", f":{port}") as fwd:
        assert body(http_get(fwd.port, "/index.txt")) == b"hello through port-forward\n"
        assert body(http_get(fwd.port, "/big.bin")) == (root / "big.bin").read_bytes()
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda: results.append(
            body(http_get(fwd.port, "/index.txt")))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [b"hello through port-forward\n"] * 2
        assert fwd.proc.poll() is None


def test_plain_spdy_fallback(web: tuple[Cluster, int, Path]) -> None:
    cluster, port, root = web
    with Forward(cluster, "pod/web", f":{port}",
                 env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}) as fwd:
        assert body(http_get(fwd.port, "/index.txt")) == b"hello through port-forward\n"
        assert body(http_get(fwd.port, "/big.bin")) == (root / "big.bin").read_bytes()


def test_refused_port_reports_the_kubelets_error(web: tuple[Cluster, int, Path]) -> None:
    """kubectl 1.32 prints the error stream's text and then, as since 1.28 against any
    cluster, drops the forwarding session ("lost connection to pod")."""
    cluster, _, _ = web
    closed = free_port()
    with Forward(cluster, "pod/web", f":{closed}") as fwd:
        with socket.create_connection(("127.0.0.1", fwd.port), timeout=20) as sock:
            sock.settimeout(20)
            assert sock.recv(100) == b""
        wait_for("kubectl's error line",
                 lambda: any("connection refused" in line.lower() for line in fwd.stderr),
                 timeout=20)
        line = next(x for x in fwd.stderr if "refused" in x.lower())
        assert f"error forwarding port {closed} to pod" in line
        assert "127.0.0.1:" in line and "connect: connection refused" in line
        fwd.proc.wait(20)
        wait_for("kubectl's last word", lambda: any(
            "lost connection to pod" in x for x in fwd.stderr), timeout=10)


def test_errors_before_forwarding(web: tuple[Cluster, int, Path]) -> None:
    cluster, port, _ = web
    res = cluster.kubectl("port-forward", "-n", NS, "pod/nope", f":{port}", check=False,
                          timeout=30)
    assert res.returncode != 0 and 'pods "nope" not found' in res.stderr
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
        "spec": {"nodeSelector": {"no-such-label": "x"},
                 "containers": [{"name": "c", "image": "x"}]}}))
    raw = f"/api/v1/namespaces/{NS}/pods/%s/portforward?ports={port}"
    res = cluster.kubectl("get", "--raw", raw % "nowhere", check=False)
    assert res.returncode != 0 and "does not have a host assigned" in res.stderr, res.stderr
    res = cluster.kubectl("get", "--raw", raw % "web", check=False)
    assert res.returncode != 0 and "Upgrade request required" in res.stderr, res.stderr


def test_deployment_and_service(web: tuple[Cluster, int, Path]) -> None:
    cluster, port, _ = web
    cluster.kubectl("create", "service", "clusterip", "web", "-n", NS, f"--tcp=80:{port}")
    # kubectl maps the Service's port 80 to the pod's target port itself.
    with Forward(cluster, "svc/web", ":80") as fwd:
        assert body(http_get(fwd.port, "/index.txt")) == b"hello through port-forward\n"


def test_python_client_portforward(web: tuple[Cluster, int, Path]) -> None:
    cluster, port, _ = web
    conf = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(cluster.kubeconfig),
                                client_configuration=conf)
    api = k8s.CoreV1Api(k8s.ApiClient(conf))
    pf = k8s_portforward(api.connect_get_namespaced_pod_portforward, "web", NS,
                         ports=str(port))
    sock = pf.socket(port)
    sock.setblocking(True)
    sock.sendall(b"GET /index.txt HTTP/1.0\r\nHost: x\r\n\r\n")
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    assert body(b"".join(chunks)) == b"hello through port-forward\n"
    assert pf.error(port) is None
    pf.close()


def test_kubectl_120_plain_spdy(web: tuple[Cluster, int, Path]) -> None:
    cluster, port, _ = web
    if not KUBECTL_120.exists():
        require(str(KUBECTL_120))
    with Forward(cluster, "pod/web", f":{port}", binary=str(KUBECTL_120)) as fwd:
        assert body(http_get(fwd.port, "/index.txt")) == b"hello through port-forward\n"


@pytest.mark.root
def test_oci_pod_loopback_only_server(tmp_path: Path) -> None:
    """With the OCI runtime the kubelet connects inside the pod's network namespace: a server
    listening on the pod's own 127.0.0.1 answers kubectl port-forward."""
    import os

    from tests.imagebuild import build_image
    from tests.ocipods import IMAGE, apply, ctr, node_ready, pod, running
    from tests.ocitools import sweep

    for tool in ("kubectl", "runc", "busybox", "iptables"):
        require(tool)
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the OCI runtime tests need root in CI")
        pytest.skip("the OCI runtime needs root")
    cgroup_parent = f"kubeling-pf-{os.getpid()}"
    data = tmp_path / "oci"
    imports = data / "agent" / "images-import"
    imports.mkdir(parents=True)
    build_image(imports / "busybox.tar", name=IMAGE)
    c = Cluster(data, free_port(), agent=True, runtime="oci")
    c.start("--cgroup-parent", cgroup_parent)
    try:
        wait_for("the node to be Ready with a pod CIDR", lambda: node_ready(c), timeout=60)
        script = ("mkdir -p /www && echo hello from inside > /www/index.html && "
                  "exec httpd -f -p 127.0.0.1:8080 -h /www")
        apply(c, pod("loop", ctr("web", "sh", "-c", script)))
        running(c, "loop")
        with Forward(c, "pod/loop", ":8080", namespace="default") as fwd:
            got = wait_for("the pod's answer", lambda: _try_get(fwd.port), timeout=20)
            assert got == b"hello from inside\n"
    finally:
        c.kubectl("delete", "pods", "--all", "--wait=false", check=False)
        c.stop()
        sweep(data / "agent", cgroup_parent)


def _try_get(port: int) -> bytes | None:
    try:
        response = http_get(port, "/index.html")
    except OSError:
        return None
    head, _, rest = response.partition(b"\r\n\r\n")
    return rest if head.startswith(b"HTTP/1.") and b" 200 " in head else None
