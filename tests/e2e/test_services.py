"""Services end to end: the issue's user story with real containers, nftables and the DNS.

One server is also its node (``--runtime oci``) and runs the service proxy
(nftables in the host's namespace) and the cluster DNS; its upstream is a
stand-in resolver on loopback (the machine has no Internet). Three busybox
``httpd`` pods answer with their own names behind ``kubectl expose``; a busybox
client pod asks through the cluster IP and DNS names, exactly as a user's
``kubectl run client --image=busybox -- wget -qO- http://web`` would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, free_port, wait_for
from tests.dnsupstream import Upstream
from tests.ocipods import apply, ctr, exec_, node_ready, oci_data_dir, pod, running
from tests.ocitools import sweep

pytestmark = pytest.mark.root

CGROUP_PARENT = f"kubeling-svc-{os.getpid()}"
OUTSIDE = {"outside.example": "192.0.2.7"}
START_FLAGS: list[str] = []  # the server's flags, for the restart
SERVE = ("mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && "
         "exec httpd -f -p 8080 -h /www")


def web_deployment(name: str, replicas: int) -> dict:
    labels = {"app": name}
    probe = {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1,
             "failureThreshold": 1, "successThreshold": 1}
    container = ctr("httpd", "sh", "-c", SERVE, readinessProbe=probe,
                    ports=[{"name": "http", "containerPort": 8080}])
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container],
                                           "terminationGracePeriodSeconds": 1}}}}


def nft_ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                          check=True).stdout


def host_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode().strip()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = oci_data_dir(tmp_path_factory, "kubeling-svc", "nft")
    with Upstream(OUTSIDE) as upstream:
        c = Cluster(data, free_port(), agent=True, runtime="oci", proxy=True)
        extra = ("--cgroup-parent", CGROUP_PARENT, "--cluster-dns-port", "0",
                 "--cluster-dns-upstream", upstream.address)
        c.start(*extra)
        START_FLAGS[:] = extra
        try:
            wait_for("the node to be Ready with a pod CIDR", lambda: node_ready(c), timeout=60)
            apply(c, web_deployment("web", 3))
            apply(c, pod("client", ctr("client", "sleep", "3600")))
            c.kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080")
            running(c, "client")
            wait_for("3 ready endpoints of web", lambda: len(ready_ips(c, "web")) == 3,
                     timeout=90)
            yield c
        finally:
            c.kubectl("delete", "deploy,pods,svc", "--all", "--wait=false", check=False)
            c.stop()
            subprocess.run(["nft", "delete", "table", "ip", "kubeling"], check=False,
                           capture_output=True)
            sweep(data / "agent", CGROUP_PARENT)


def ready_ips(c: Cluster, service: str) -> list[str]:
    out = c.kubectl("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}",
                    "-o", "json", check=False).stdout
    ips = []
    for item in json.loads(out or '{"items": []}')["items"]:
        for ep in item.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready"):
                ips.extend(ep["addresses"])
    return sorted(ips)


def web_pods(c: Cluster) -> dict[str, str]:
    """name -> pod IP of the web pods."""
    pods = json.loads(c.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p["status"].get("podIP", "") for p in pods}


def ask(c: Cluster, url: str, times: int) -> list[str]:
    """``times`` requests from the client pod; one answer (a pod name) per line."""
    # (no `wget -T`: busybox 1.35's wget crashes with it; `timeout` bounds each request)
    script = f"for i in $(seq {times}); do timeout 3 wget -qO- {url} || echo FAILED; done"
    return exec_(c, "client", "sh", "-c", script).split()


def cluster_ip(c: Cluster, name: str) -> str:
    return c.kubectl("get", "svc", name, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()


def test_cluster_ip_and_dns_name_reach_all_three_pods(svc: Cluster) -> None:
    names = set(web_pods(svc))
    ip = cluster_ip(svc, "web")
    assert ip.startswith("10.43."), ip
    for url in (f"http://{ip}/", "http://web/", "http://web.default.svc.cluster.local/"):
        answers = ask(svc, url, 30)
        assert len(answers) == 30 and "FAILED" not in answers, (url, answers)
        assert set(answers) == names, (url, answers)


def test_pods_resolve_through_the_cluster_dns(svc: Cluster) -> None:
    resolv = exec_(svc, "client", "cat", "/etc/resolv.conf")
    dns_ip = svc.kubectl("get", "svc", "kube-dns", "-n", "kube-system", "-o",
                         "jsonpath={.spec.clusterIP}").stdout.strip()
    assert dns_ip == "10.43.0.10"
    assert "nameserver 10.43.0.10" in resolv, resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv, resolv
    assert "ndots:5" in resolv, resolv
    out = exec_(svc, "client", "nslookup", "web.default.svc.cluster.local")
    assert cluster_ip(svc, "web") in out, out
    # the reverse record of the cluster IP names the Service
    out = exec_(svc, "client", "nslookup", cluster_ip(svc, "web"))
    assert "web.default.svc.cluster.local" in out, out
    missing = svc.kubectl("exec", "client", "--", "nslookup", "nosuch.default.svc.cluster.local",
                          check=False)
    assert missing.returncode != 0 and "NXDOMAIN" in missing.stdout + missing.stderr, missing


def test_outside_names_are_forwarded(svc: Cluster) -> None:
    out = exec_(svc, "client", "nslookup", "outside.example")
    assert "192.0.2.7" in out, out


def test_headless_and_per_pod_records(svc: Cluster) -> None:
    apply(svc, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                "spec": {"clusterIP": "None", "selector": {"app": "db"},
                         "ports": [{"name": "tcp", "port": 5432}]}})
    for i in range(2):
        manifest = pod(f"db-{i}", ctr("db", "sleep", "3600"), hostname=f"db-{i}",
                       subdomain="db")
        manifest["metadata"]["labels"] = {"app": "db"}
        apply(svc, manifest)
    ips = {f"db-{i}": running(svc, f"db-{i}")["status"]["podIP"] for i in range(2)}
    wait_for("2 ready endpoints of db", lambda: len(ready_ips(svc, "db")) == 2, timeout=60)
    out = exec_(svc, "client", "nslookup", "db.default.svc.cluster.local")
    assert all(ip in out for ip in ips.values()), out
    out = exec_(svc, "client", "nslookup", "db-1.db.default.svc.cluster.local")
    assert ips["db-1"] in out and ips["db-0"] not in out, out
    # the pod knows its own fully qualified name
    hosts = exec_(svc, "db-0", "cat", "/etc/hosts")
    assert re.search(rf"{re.escape(ips['db-0'])}\s+db-0\.db\.default\.svc\.cluster\.local",
                     hosts), hosts


def test_node_port_answers_from_the_host(svc: Cluster) -> None:
    svc.kubectl("expose", "deployment", "web", "--name=web-np", "--type=NodePort",
                "--port=80", "--target-port=8080")
    port = int(svc.kubectl("get", "svc", "web-np", "-o",
                           "jsonpath={.spec.ports[0].nodePort}").stdout)
    assert 30000 <= port <= 32767
    node = json.loads(svc.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    node_ip = next(a["address"] for a in node["status"]["addresses"]
                   if a["type"] == "InternalIP")
    names = set(web_pods(svc))
    seen: set[str] = set()

    def all_answered() -> bool:
        seen.add(host_get(f"http://{node_ip}:{port}/"))
        return seen == names

    wait_for(f"answers from all web pods on {node_ip}:{port}", all_answered, timeout=30,
             interval=0)
    assert seen <= names


def test_port_forward_carries_http_to_a_pod(svc: Cluster) -> None:
    name = sorted(web_pods(svc))[0]
    proc = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(svc.kubeconfig), "port-forward", f"pod/{name}",
         ":8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=svc.env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr
                              else "")
        assert host_get(f"http://127.0.0.1:{match.group(1)}/") == name
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_pod_failing_readiness_drops_out(svc: Cluster) -> None:
    pods = web_pods(svc)
    victim = sorted(pods)[-1]
    url = f"http://{cluster_ip(svc, 'web')}/"
    start = time.monotonic()
    exec_(svc, victim, "rm", "/tmp/ready")
    try:
        def gone() -> bool:
            return victim not in ask(svc, url, 20)

        wait_for(f"{victim} out of the answers", gone, timeout=15, interval=0)
        elapsed = time.monotonic() - start
        print(f"{victim} dropped out of the answers {elapsed:.2f}s after failing readiness")
        assert pods[victim] not in ready_ips(svc, "web")
    finally:
        exec_(svc, victim, "touch", "/tmp/ready")
    wait_for(f"{victim} back in the answers", lambda: victim in ask(svc, url, 20), timeout=15,
             interval=0)


def test_rules_survive_a_restart_and_go_with_their_service(svc: Cluster) -> None:
    ip = cluster_ip(svc, "web")
    names = set(web_pods(svc))
    svc.kill()  # SIGKILL: nothing is cleaned up on the way out
    # the server is down, the rules and pods are not: the host still reaches the Service
    assert host_get(f"http://{ip}/") in names
    svc.start(*START_FLAGS)
    wait_for("the node Ready again", lambda: node_ready(svc), timeout=60)
    # the adopted pods are probed again before they count as ready (a blip, as with a kubelet)
    wait_for("3 ready endpoints of web again", lambda: len(ready_ips(svc, "web")) == 3,
             timeout=60)
    assert set(ask(svc, f"http://{ip}/", 20)) <= names
    assert ip in nft_ruleset()
    svc.kubectl("delete", "svc", "web")
    wait_for(f"the rules of {ip} removed", lambda: ip not in nft_ruleset(), timeout=10)
    with pytest.raises(OSError):
        host_get(f"http://{ip}/", timeout=1)
