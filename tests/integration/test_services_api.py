"""Services, Endpoints and EndpointSlices as a user sees them: a real ``kubeling server``
(its own node, process runtime, so pods run and probes decide readiness) driven by kubectl."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Cluster, free_port, kill_containers, require, wait_for

NS = "svc-api"


def apply(c: Cluster, obj: dict[str, Any]) -> None:
    c.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(obj))


def probe_pod(name: str, flag: Path, app: str = "probe") -> dict[str, Any]:
    probe = {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
             "failureThreshold": 1, "successThreshold": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 3600"],
                "ports": [{"name": "http", "containerPort": 8080}], "readinessProbe": probe}]}}


def get_json(c: Cluster, *args: str) -> Any:
    res = c.kubectl("get", "-n", NS, *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def slice_ready(c: Cluster, svc: str) -> dict[str, bool]:
    out = get_json(c, "endpointslices", "-l", f"kubernetes.io/service-name={svc}")
    return {e["targetRef"]["name"]: e["conditions"]["ready"]
            for s in (out or {}).get("items", []) for e in s.get("endpoints") or []}


def endpoint_ips(c: Cluster, svc: str, field: str) -> list[str]:
    ep = get_json(c, "endpoints", svc) or {}
    return [a["ip"] for s in ep.get("subsets") or [] for a in s.get(field) or []]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    require("kubectl")
    data = tmp_path_factory.mktemp("kubeling-svcapi")
    c = Cluster(data, free_port(), agent=True, runtime="process")
    c.start("--listen", f"0.0.0.0:{c.port}")
    flags = data / "flags"
    flags.mkdir()
    try:
        c.kubectl("create", "namespace", NS)
        (flags / "p1").touch()
        apply(c, probe_pod("p1", flags / "p1"))
        c.kubectl("expose", "pod", "p1", "-n", NS, "--name=probe", "--port=80",
                  "--target-port=http")
        wait_for("p1 ready in its slice", lambda: slice_ready(c, "probe") == {"p1": True},
                 timeout=60)
        yield c, flags
    finally:
        c.kubectl("delete", "namespace", NS, "--wait=false", check=False)
        c.stop()
        kill_containers(data)


def test_endpoints_and_slices_as_kubectl_shows_them(cluster: tuple[Cluster, Path]) -> None:
    c, _ = cluster
    pod_ip = get_json(c, "pod", "p1")["status"]["podIP"]
    table = c.kubectl("get", "endpoints", "probe", "-n", NS).stdout.splitlines()
    assert table[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert table[1].split()[:2] == ["probe", f"{pod_ip}:8080"]
    table = c.kubectl("get", "endpointslices", "-n", NS).stdout.splitlines()
    assert table[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    row = table[1].split()
    assert row[0].startswith("probe-") and row[1:4] == ["IPv4", "8080", pod_ip]
    (sl,) = get_json(c, "endpointslices")["items"]
    assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert sl["endpoints"][0]["nodeName"] and sl["endpoints"][0]["targetRef"]["kind"] == "Pod"


def test_a_pod_going_unready_moves_within_seconds(cluster: tuple[Cluster, Path]) -> None:
    c, flags = cluster
    started = time.monotonic()
    (flags / "p1").unlink()
    wait_for("p1 not ready in Endpoints and its slice",
             lambda: endpoint_ips(c, "probe", "notReadyAddresses") and
             slice_ready(c, "probe") == {"p1": False}, timeout=10)
    took = time.monotonic() - started
    print(f"readiness drop seen in Endpoints and slices after {took:.2f}s "
          "(probe period 1s included)")
    assert not endpoint_ips(c, "probe", "addresses")
    (flags / "p1").touch()
    wait_for("p1 ready again", lambda: slice_ready(c, "probe") == {"p1": True}, timeout=10)


def test_publish_not_ready_addresses(cluster: tuple[Cluster, Path]) -> None:
    c, flags = cluster
    apply(c, probe_pod("q1", flags / "q1", app="q"))  # never ready
    apply(c, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "q"},
              "spec": {"selector": {"app": "q"}, "publishNotReadyAddresses": True,
                       "clusterIP": "None", "ports": [{"port": 80, "targetPort": 8080}]}})
    wait_for("q1 published though not ready",
             lambda: endpoint_ips(c, "q", "addresses") and slice_ready(c, "q") == {"q1": True},
             timeout=30)
    pod = get_json(c, "pod", "q1")
    ready = [x for x in pod["status"].get("conditions", []) if x["type"] == "Ready"]
    assert ready and ready[0]["status"] == "False"


def test_node_port_collision_and_range(cluster: tuple[Cluster, Path]) -> None:
    c, _ = cluster
    c.kubectl("create", "service", "nodeport", "np1", "-n", NS, "--tcp=80:8080",
              "--node-port=30555")
    res = c.kubectl("create", "service", "nodeport", "np2", "-n", NS, "--tcp=80:8080",
                    "--node-port=30555", check=False)
    assert res.returncode != 0
    assert 'Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 30555: ' \
        "provided port is already allocated" in res.stderr, res.stderr
    res = c.kubectl("create", "service", "nodeport", "np3", "-n", NS, "--tcp=80:8080",
                    "--node-port=80", check=False)
    assert "provided port is not in the valid range. The range of valid ports is " \
        "30000-32767" in res.stderr, res.stderr
    res = c.kubectl("create", "service", "clusterip", "far", "-n", NS, "--tcp=80:8080",
                    "--clusterip=10.0.0.5", check=False)
    assert "The range of valid IPs is 10.43.0.0/16" in res.stderr, res.stderr


def test_load_balancer_gets_the_node_address(cluster: tuple[Cluster, Path]) -> None:
    c, _ = cluster
    node = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    node_ip = next(a["address"] for a in node["status"]["addresses"]
                   if a["type"] == "InternalIP")
    c.kubectl("create", "service", "loadbalancer", "lb", "-n", NS, "--tcp=80:8080")

    def external_ip() -> str:
        row = c.kubectl("get", "svc", "lb", "-n", NS, "--no-headers").stdout.split()
        return row[3] if len(row) > 3 else ""
    wait_for("the LoadBalancer's EXTERNAL-IP", lambda: external_ip() == node_ip, timeout=15)


def test_the_kubernetes_service_leads_to_the_api_server(cluster: tuple[Cluster, Path]) -> None:
    c, _ = cluster
    ep = json.loads(c.kubectl("get", "endpoints", "kubernetes", "-o", "json").stdout)
    assert ep["subsets"][0]["ports"] == [{"name": "https", "port": c.port, "protocol": "TCP"}]
    assert ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    svc = json.loads(c.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] == "10.43.0.1"
    assert svc["spec"]["ports"][0]["targetPort"] == c.port
    sl = json.loads(c.kubectl("get", "endpointslice", "kubernetes", "-o", "json").stdout)
    assert sl["endpoints"][0]["addresses"] == [ep["subsets"][0]["addresses"][0]["ip"]]
