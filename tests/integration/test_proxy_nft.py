"""The service proxy's nftables rules with real nft and real traffic, as root.

A throwaway "node" network namespace holds a bridge with two "pods" (their own
namespaces, busybox httpd answering their name) and an uplink to a "client"
namespace that plays the rest of the world. A real ``kubeling server`` holds
the Services and EndpointSlices; the proxy runs in the test process and
programs nft inside the node (``command_prefix``). Requests are real TCP
connections made from inside the namespaces.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kubeling.api import errors, kinds
from kubeling.client.http import HttpClient
from kubeling.proxy import ServiceProxy
from tests.cluster import REPO, Cluster, free_port, require

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

SFX = f"{os.getpid() % 100000}"
NODE, CLIENT, POD_A, POD_B = (f"kp{SFX}{x}" for x in ("n", "c", "a", "b"))
NODE_IP, CLIENT_IP = "192.168.77.1", "192.168.77.2"
IPS = {POD_A: "10.42.7.10", POD_B: "10.42.7.11"}
NAMES = {POD_A: "A", POD_B: "B"}
TABLE = f"kltest{SFX}"


def _kind(group: str, resource: str) -> kinds.Kind:
    kind = kinds.by_resource(group, resource)
    assert kind is not None
    return kind


SERVICE = _kind("", "services")
SLICE = _kind("discovery.k8s.io", "endpointslices")
NAMESPACE = _kind("", "namespaces")
FETCH = r"""
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    t = time.monotonic()
    try:
        s = socket.create_connection((host, port), timeout=2)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        s.close()
        out.append(data.split(b"\r\n\r\n", 1)[-1].decode().strip())
    except ConnectionRefusedError:
        out.append("refused %.2f" % (time.monotonic() - t))
    except socket.timeout:
        out.append("timeout")
    except OSError as e:
        out.append("error %s" % e)
print(json.dumps(out))
"""


def sh(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    require("nft")
    require("busybox")
    require("nsenter")
    root = tmp_path_factory.mktemp("proxy-net")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (NODE, CLIENT, POD_A, POD_B):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", NODE, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", NODE, "addr", "add", "10.42.7.1/24", "dev", "br0")
        sh("ip", "-n", NODE, "link", "set", "br0", "up")
        for i, pod in enumerate((POD_A, POD_B)):
            sh("ip", "-n", NODE, "link", "add", f"vp{i}", "type", "veth", "peer", "name",
               "eth0", "netns", pod)
            sh("ip", "-n", NODE, "link", "set", f"vp{i}", "master", "br0", "up")
            # as the CNI bridge plugin's hairpinMode: a pod's DNATed packet to itself is
            # bridged back out of the port it came in on
            sh("ip", "-n", NODE, "link", "set", f"vp{i}", "type", "bridge_slave",
               "hairpin", "on")
            sh("ip", "-n", pod, "addr", "add", f"{IPS[pod]}/24", "dev", "eth0")
            sh("ip", "-n", pod, "link", "set", "eth0", "up")
            sh("ip", "-n", pod, "route", "add", "default", "via", "10.42.7.1")
            www = root / pod
            www.mkdir()
            (www / "index.html").write_text(NAMES[pod] + "\n")
            procs.append(subprocess.Popen(in_ns(pod, "busybox", "httpd", "-f", "-p", "8080",
                                                "-h", str(www))))
        sh("ip", "-n", NODE, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
           "netns", CLIENT)
        sh("ip", "-n", NODE, "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        sh("ip", "-n", NODE, "link", "set", "eth0", "up")
        sh("ip", "-n", NODE, "route", "add", "default", "via", CLIENT_IP)
        sh("ip", "-n", CLIENT, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        sh("ip", "-n", CLIENT, "link", "set", "eth0", "up")
        sh("ip", "-n", CLIENT, "route", "add", "default", "via", NODE_IP)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for ns in (NODE, CLIENT, POD_A, POD_B):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("proxy-server"), free_port())
    c.start("--advertise-address", "203.0.113.1", "--disable-scheduler")
    yield c
    c.stop()


def api(server: Cluster) -> HttpClient:
    return HttpClient(server.url, token=server.token, ca_file=str(server.ca))


@pytest.fixture
async def client(server: Cluster, request: pytest.FixtureRequest
                 ) -> AsyncIterator[tuple[HttpClient, str]]:
    """An API client and a namespace of the test's own."""
    c = api(server)
    ns = "p" + request.node.name.replace("_", "-")[5:40].strip("-").lower()
    await c.create(NAMESPACE, None, {"metadata": {"name": ns}})
    yield c, ns
    await c.close()


def make_proxy(server_client: HttpClient, **kw: Any) -> ServiceProxy:
    kw.setdefault("check_period", 0.3)
    return ServiceProxy(server_client, node_name="node-a", node_ips=[NODE_IP],
                        cluster_cidr="10.42.0.0/16", mode="nftables", table=TABLE,
                        command_prefix=["nsenter", f"--net=/run/netns/{NODE}"], **kw)


@pytest.fixture
async def proxy(topology: None, server: Cluster) -> AsyncIterator[ServiceProxy]:
    c = api(server)
    p = make_proxy(c)
    await p.start()
    yield p
    await p.stop(cleanup=True)
    await c.close()


async def fetch(ns: str, host: str, port: int, n: int = 1) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        *in_ns(ns, sys.executable, "-c", FETCH, host, str(port), str(n)),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return list(json.loads(out))


async def until(what: str, fn: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def put_service(c: HttpClient, ns: str, name: str, ip: str, **spec: Any) -> None:
    port = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
    if "node_port" in spec:
        port["nodePort"] = spec.pop("node_port")
        spec["type"] = "NodePort"
    await c.create(SERVICE, ns, {"metadata": {"name": name},
                                 "spec": {"clusterIP": ip, "ports": [port], **spec}})


async def put_slice(c: HttpClient, ns: str, svc: str, pods: list[str]) -> None:
    body: dict[str, Any] = {"metadata": {"name": f"{svc}-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [IPS[p]], "conditions": {"ready": True},
                           "nodeName": "node-a"} for p in pods]}
    try:
        old = await c.get(SLICE, ns, f"{svc}-x")
    except errors.StatusError:
        await c.create(SLICE, ns, body)
        return
    body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    await c.update(SLICE, body)


def nft_list() -> str:
    return subprocess.run(in_ns(NODE, "nft", "list", "ruleset"), capture_output=True,
                          text=True).stdout


async def test_cluster_ip_balances_and_follows_endpoints(
        proxy: ServiceProxy, client: tuple[HttpClient, str]) -> None:
    c, ns = client
    await put_service(c, ns, "web", "10.43.7.20")
    await put_slice(c, ns, "web", [POD_A, POD_B])

    async def both_answer() -> bool:
        return set(await fetch(CLIENT, "10.43.7.20", 80, 30)) == {"A", "B"}
    await until("both endpoints answering from outside the cluster", both_answer)
    # from a pod on the bridge (replies come back through br_netfilter) and from the node
    assert set(await fetch(POD_B, "10.43.7.20", 80, 30)) == {"A", "B"}
    assert set(await fetch(NODE, "10.43.7.20", 80, 30)) == {"A", "B"}

    await put_slice(c, ns, "web", [POD_A])

    async def only_a() -> bool:
        return set(await fetch(CLIENT, "10.43.7.20", 80, 20)) == {"A"}
    await until("the removed endpoint to be out", only_a)


async def test_client_ip_affinity_sticks(proxy: ServiceProxy,
                                         client: tuple[HttpClient, str]) -> None:
    c, ns = client
    await put_service(c, ns, "sticky", "10.43.7.21", sessionAffinity="ClientIP")
    await put_slice(c, ns, "sticky", [POD_A, POD_B])

    async def answered() -> list[str]:
        return [r for r in await fetch(CLIENT, "10.43.7.21", 80, 20) if r in ("A", "B")]
    got = await until("the sticky service to answer", answered)
    assert len(set(got)) == 1, got
    assert set(await fetch(CLIENT, "10.43.7.21", 80, 20)) == set(got)


async def test_node_port_and_hairpin(proxy: ServiceProxy,
                                     client: tuple[HttpClient, str]) -> None:
    c, ns = client
    await put_service(c, ns, "np", "10.43.7.22", node_port=30877)
    await put_slice(c, ns, "np", [POD_A])

    async def via_node_port() -> bool:
        return await fetch(CLIENT, NODE_IP, 30877, 3) == ["A"] * 3
    await until("the node port to answer", via_node_port)
    assert await fetch(NODE, NODE_IP, 30877, 2) == ["A"] * 2  # the node to itself
    # a pod reaching itself through its Service (hairpin, masqueraded)
    assert await fetch(POD_A, "10.43.7.22", 80, 3) == ["A"] * 3
    assert await fetch(POD_A, NODE_IP, 30877, 2) == ["A"] * 2


async def test_no_endpoints_is_refused_at_once_and_deletion_removes_rules(
        proxy: ServiceProxy, client: tuple[HttpClient, str]) -> None:
    c, ns = client
    await put_service(c, ns, "empty", "10.43.7.23", node_port=30878)

    async def refused() -> list[str]:
        out = await fetch(CLIENT, "10.43.7.23", 80, 1) + await fetch(CLIENT, NODE_IP, 30878, 1)
        return out if all(r.startswith("refused") for r in out) else []
    await until("connections to a Service without endpoints refused", refused)
    for r in await refused():
        assert float(r.split()[1]) < 0.5  # a reject, not a timeout
    await put_slice(c, ns, "empty", [POD_B])

    async def answers() -> bool:
        return await fetch(CLIENT, "10.43.7.23", 80, 1) == ["B"]
    await until("the service to answer once it has an endpoint", answers)
    assert f"{ns}/empty/tcp/http" in nft_list()

    await c.delete(SERVICE, ns, "empty")

    async def gone() -> bool:
        text = nft_list()
        return f"{ns}/empty/" not in text and "10.43.7.23" not in text and "30878" not in text
    await until("the deleted Service's chains and elements to go", gone)


async def test_restart_keeps_rules_table_recovery_and_cleanup(
        topology: None, server: Cluster, client: tuple[HttpClient, str]) -> None:
    c, ns = client
    await put_service(c, ns, "keep", "10.43.7.24")
    await put_slice(c, ns, "keep", [POD_A])
    first = make_proxy(api(server))
    await first.start()
    try:
        async def answers() -> bool:
            return await fetch(CLIENT, "10.43.7.24", 80, 1) == ["A"]
        await until("the service to answer", answers)
    finally:
        await first.stop()  # rules stay
        await first.client.close()
    assert await fetch(CLIENT, "10.43.7.24", 80, 2) == ["A", "A"]

    second = make_proxy(api(server))
    await second.start()  # takes the table over
    try:
        assert await fetch(CLIENT, "10.43.7.24", 80, 1) == ["A"]
        await asyncio.to_thread(sh, *in_ns(NODE, "nft", "delete", "table", "ip", TABLE))
        await until("the table to be programmed again", answers)
        assert second.full_syncs >= 2
    finally:
        await second.stop()
        await second.client.close()
    # kube-proxy --cleanup
    proc = await asyncio.to_thread(
        subprocess.run, in_ns(NODE, sys.executable, "-m", "kubeling.cli.proxy", "--cleanup",
                              "--table", TABLE), capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert f"table ip {TABLE}" not in nft_list()

