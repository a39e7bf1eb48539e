"""Probes end to end through kubectl and the server's own node (process runtime): a failing
liveness probe restarts its container, a readiness probe flips the Ready condition both ways
as the test creates and removes a file, and httpGet probes against a ``python3 -m
http.server`` container."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, free_port, require, wait_for


@pytest.fixture
def ns(agent_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    require("kubectl")
    name = "probe-" + request.node.name.removeprefix("test_").replace("_", "-")[:40]
    agent_cluster.kubectl("create", "namespace", name)
    yield name
    agent_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(cluster: Cluster, ns: str, manifest: dict) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def pod(name: str, container: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "main", "image": "busybox:1.36", **container}]}}


def get_pod(cluster: Cluster, ns: str, name: str) -> dict:
    res = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def condition(cluster: Cluster, ns: str, name: str, kind: str) -> str:
    for cond in get_pod(cluster, ns, name).get("status", {}).get("conditions") or ():
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return ""


def restarts(cluster: Cluster, ns: str, name: str) -> int:
    statuses = get_pod(cluster, ns, name).get("status", {}).get("containerStatuses") or []
    return int(statuses[0].get("restartCount", 0)) if statuses else 0


def describe(cluster: Cluster, ns: str, name: str) -> str:
    return cluster.kubectl("describe", "pod", name, "-n", ns).stdout


def exec_probe(path: Path, **fields: int) -> dict:
    return {"exec": {"command": ["test", "-f", str(path)]}, "periodSeconds": 1, **fields}


def test_failing_liveness_probe_restarts_the_container(agent_cluster: Cluster, ns: str,
                                                       tmp_path: Path) -> None:
    apply(agent_cluster, ns, pod("live", {
        "command": ["sleep", "3600"],
        "livenessProbe": exec_probe(tmp_path / "alive", failureThreshold=2)}))
    wait_for("the container restarted by its liveness probe",
             lambda: restarts(agent_cluster, ns, "live") >= 1, timeout=60)
    text = describe(agent_cluster, ns, "live")
    assert "Liveness probe failed" in text
    assert "Unhealthy" in text
    assert "Killing" in text
    assert "failed liveness probe, will be restarted" in text
    # A passing probe keeps the next run alive.
    (tmp_path / "alive").touch()
    count = restarts(agent_cluster, ns, "live")
    wait_for("the pod running and ready",
             lambda: condition(agent_cluster, ns, "live", "Ready") == "True", timeout=60)
    assert restarts(agent_cluster, ns, "live") <= count + 1


def test_readiness_flips_the_ready_condition_both_ways(agent_cluster: Cluster, ns: str,
                                                       tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    apply(agent_cluster, ns, pod("ready", {
        "command": ["sleep", "3600"],
        "readinessProbe": exec_probe(flag, failureThreshold=1)}))
    wait_for("the container running",
             lambda: condition(agent_cluster, ns, "ready", "Initialized") == "True"
             and get_pod(agent_cluster, ns, "ready")["status"]["containerStatuses"][0]
             ["state"].get("running"), timeout=60)
    assert condition(agent_cluster, ns, "ready", "Ready") == "False"
    flag.touch()
    wait_for("Ready=True after the file appeared",
             lambda: condition(agent_cluster, ns, "ready", "Ready") == "True", timeout=30)
    assert condition(agent_cluster, ns, "ready", "ContainersReady") == "True"
    flag.unlink()
    wait_for("Ready=False after the file went away",
             lambda: condition(agent_cluster, ns, "ready", "Ready") == "False", timeout=30)
    assert "Readiness probe failed" in describe(agent_cluster, ns, "ready")
    assert restarts(agent_cluster, ns, "ready") == 0


def test_http_get_probes_against_a_python_http_server(agent_cluster: Cluster,
                                                      ns: str) -> None:
    python = shutil.which("python3") or sys.executable
    port, other = free_port(), free_port()
    apply(agent_cluster, ns, pod("web", {
        "command": [python, "-m", "http.server", str(port)],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}}))
    apply(agent_cluster, ns, pod("web404", {
        "command": [python, "-m", "http.server", str(other)],
        "readinessProbe": {"httpGet": {"path": "/missing", "port": other},
                           "periodSeconds": 1}}))
    wait_for("the web pod Ready through its httpGet probe",
             lambda: condition(agent_cluster, ns, "web", "Ready") == "True", timeout=60)
    wait_for("the 404 answer reported as an Unhealthy event",
             lambda: "HTTP probe failed with statuscode: 404"
             in describe(agent_cluster, ns, "web404"), timeout=60)
    assert condition(agent_cluster, ns, "web404", "Ready") == "False"
