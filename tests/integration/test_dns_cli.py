"""``publish_service`` against a real registry, and ``kubeling dns`` as a process against a
real server (health endpoint, a query, publishing itself as kube-system/kube-dns)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from kubeling.dns import publish_service
from tests.apiharness import client, kind, running_registry
from tests.cluster import REPO, Cluster, free_port, wait_for

SERVICES = kind("", "services")
ENDPOINTS = kind("", "endpoints")


async def test_publish_service_is_idempotent_and_fixes_drift(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        await publish_service(c, cluster_ip="10.43.0.10", address="192.0.2.7", port=10053)
        svc = await c.get(SERVICES, "kube-system", "kube-dns")
        ep = await c.get(ENDPOINTS, "kube-system", "kube-dns")
        assert svc["spec"]["clusterIP"] == "10.43.0.10"
        assert not svc["spec"].get("selector")
        assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
        assert sorted((p["name"], p["port"], p["protocol"], p["targetPort"])
                      for p in svc["spec"]["ports"]) == [
            ("dns", 53, "UDP", 10053), ("dns-tcp", 53, "TCP", 10053)]
        assert ep["subsets"][0]["addresses"] == [{"ip": "192.0.2.7"}]
        assert sorted((p["name"], p["port"]) for p in ep["subsets"][0]["ports"]) == [
            ("dns", 10053), ("dns-tcp", 10053)]

        await publish_service(c, cluster_ip="10.43.0.10", address="192.0.2.7", port=10053)
        assert (await c.get(SERVICES, "kube-system", "kube-dns"))["metadata"][
            "resourceVersion"] == svc["metadata"]["resourceVersion"]
        assert (await c.get(ENDPOINTS, "kube-system", "kube-dns"))["metadata"][
            "resourceVersion"] == ep["metadata"]["resourceVersion"]

        # a restart on another address and port: both objects follow
        await publish_service(c, cluster_ip="10.43.0.10", address="192.0.2.8", port=20053)
        svc2 = await c.get(SERVICES, "kube-system", "kube-dns")
        ep2 = await c.get(ENDPOINTS, "kube-system", "kube-dns")
        assert svc2["metadata"]["uid"] == svc["metadata"]["uid"]
        assert {p["targetPort"] for p in svc2["spec"]["ports"]} == {20053}
        assert ep2["subsets"][0]["addresses"] == [{"ip": "192.0.2.8"}]

        # a new cluster IP cannot be set in place: the Service is replaced
        await publish_service(c, cluster_ip="10.43.0.11", address="192.0.2.8", port=20053)
        svc3 = await c.get(SERVICES, "kube-system", "kube-dns")
        assert svc3["spec"]["clusterIP"] == "10.43.0.11"
        assert svc3["metadata"]["uid"] != svc["metadata"]["uid"]


def host_address() -> str:
    """A non-loopback address of this host (an Endpoints address may not be loopback)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[3].split("/")[0]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except OSError as exc:
        return 0, str(exc)


def test_kubeling_dns_command(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "data", free_port())
    cluster.data_dir.mkdir()
    cluster.start()
    dns_port, health_port = free_port(), free_port()
    address = host_address()
    log = open(tmp_path / "dns.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeling.cli.dns", "--kubeconfig", str(cluster.kubeconfig),
         "--listen", f"0.0.0.0:{dns_port}", "--publish-address", address,
         "--health-port", str(health_port), "--health-address", "127.0.0.1",
         "--upstream", f"127.0.0.1:{free_port()}",
         "--publish-cluster-ip", "10.43.0.10"],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "dns.log").read_text()
            return _get(f"http://127.0.0.1:{health_port}/health") == (200, "OK")
        wait_for("kubeling dns /health", healthy, timeout=20)
        assert _get(f"http://127.0.0.1:{health_port}/healthz")[0] == 200

        cluster.kubectl("create", "service", "clusterip", "dnscli", "--tcp=80:8080")

        def answered() -> bool:
            q = dns.message.make_query("dnscli.default.svc.cluster.local.", "A")
            resp = dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=2)
            return resp.rcode() == dns.rcode.NOERROR and bool(resp.answer)
        wait_for("the command to answer a new Service", answered, timeout=10)
        status, metrics = _get(f"http://127.0.0.1:{health_port}/metrics")
        assert status == 200 and "coredns_dns_requests_total" in metrics

        def published() -> bool:
            ep = json.loads(cluster.kubectl("get", "endpoints", "-n", "kube-system",
                                            "kube-dns", "-o", "json").stdout)
            subset = (ep.get("subsets") or [{}])[0]
            return [a["ip"] for a in subset.get("addresses") or ()] == [address] and \
                {p["port"] for p in subset.get("ports") or ()} == {dns_port}
        wait_for("the command's kube-dns Endpoints", published, timeout=10)
    finally:
        log.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        cluster.stop()
    assert proc.returncode == 0, (tmp_path / "dns.log").read_text()
