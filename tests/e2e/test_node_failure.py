"""A node that stops renewing its Lease loses its pods to healthy nodes, and a namespace
deletion takes everything in it — the control plane's promises seen through kubectl."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, Component, free_port, require, start_hollow_nodes, wait_for
from tests.e2e.test_components import RC_YAML

FAST = ("--lease-interval", "1s", "--status-interval", "1s")


@pytest.fixture
def fast_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A server whose node lifecycle reacts in seconds, not minutes."""
    require("kubectl")
    c = Cluster(tmp_path / "data", free_port())
    c.data_dir.mkdir()
    c.start("--node-monitor-grace-period", "4s", "--node-monitor-period", "1s",
            "--default-unreachable-toleration-seconds", "2",
            "--default-not-ready-toleration-seconds", "2")
    yield c
    c.stop()


def live_pods(c: Cluster) -> list[dict]:
    out = json.loads(c.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)
    return [p for p in out["items"] if not p["metadata"].get("deletionTimestamp")]


def test_pods_of_a_node_that_stops_renewing_move_to_healthy_nodes(
        fast_cluster: Cluster) -> None:
    c = fast_cluster
    doomed = start_hollow_nodes(c, 1, "--prefix", "doomed-", *FAST)
    healthy: Component | None = None
    try:
        c.kubectl("apply", "-f", "-", input=RC_YAML)
        wait_for("3 pods running on the doomed node",
                 lambda: len([p for p in live_pods(c)
                              if p["spec"].get("nodeName") == "doomed-0"
                              and p["status"].get("phase") == "Running"]) == 3, timeout=30)
        healthy = Component(c, "hollow-nodes", ("--count", "2", "--prefix", "healthy-", *FAST),
                            name="healthy").start()
        healthy.wait_log("2 hollow nodes ready", timeout=30)
        doomed.kill()  # the node's agent dies: no more lease renewals

        def unreachable() -> bool:
            node = json.loads(c.kubectl("get", "node", "doomed-0", "-o", "json").stdout)
            ready = next(x for x in node["status"]["conditions"] if x["type"] == "Ready")
            taints = {t["key"] for t in node["spec"].get("taints") or []}
            return ready["status"] == "Unknown" and \
                "node.kubernetes.io/unreachable" in taints
        wait_for("the silent node to become Ready=Unknown and tainted unreachable",
                 unreachable, timeout=30)

        def moved() -> bool:
            pods = live_pods(c)
            return len(pods) == 3 and all(
                p["spec"].get("nodeName", "").startswith("healthy-")
                and p["status"].get("phase") == "Running" for p in pods)
        wait_for("3 replacement pods running on the healthy nodes", moved, timeout=60)
        table = c.kubectl("get", "node", "doomed-0").stdout
        assert "NotReady" in table.splitlines()[1]
    finally:
        doomed.stop()
        if healthy is not None:
            healthy.stop()


def test_deleting_a_namespace_deletes_everything_in_it(fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.kubectl("create", "namespace", "doomed")
    c.kubectl("-n", "doomed", "apply", "-f", "-", input=RC_YAML)
    c.kubectl("-n", "doomed", "create", "configmap", "cfg", "--from-literal=a=1")
    wait_for("the RC's pods and the default service account",
             lambda: len(json.loads(c.kubectl("-n", "doomed", "get", "pods", "-o",
                                              "json").stdout)["items"]) == 3
             and c.kubectl("-n", "doomed", "get", "sa", "default", check=False).returncode == 0)
    c.kubectl("delete", "namespace", "doomed", "--wait=false")
    phase = c.kubectl("get", "namespace", "doomed", "-o", "jsonpath={.status.phase}",
                      check=False)
    assert phase.returncode != 0 or phase.stdout == "Terminating"
    wait_for("the namespace to be gone",
             lambda: c.kubectl("get", "namespace", "doomed", check=False).returncode != 0,
             timeout=30)
    leftovers = c.kubectl("get", "pods,rc,cm,sa", "-n", "doomed", "-o", "name", check=False)
    assert leftovers.stdout.strip() == ""
