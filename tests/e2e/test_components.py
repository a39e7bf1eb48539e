"""Components as separate processes: hollow nodes, a standalone scheduler, and controller
managers that hand over leadership when the leader is killed."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, Component, free_port, require, start_hollow_nodes, wait_for

RC_YAML = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 3
  selector:
    app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.26
"""

LEASE = ("--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s",
         "--leader-elect-retry-period", "1s")


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    require("kubectl")


@pytest.fixture
def own_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A server started with the flags in the test's ``server_flags`` attribute."""
    c = Cluster(tmp_path / "data", free_port())
    c.data_dir.mkdir()
    c.start(*getattr(request.function, "server_flags", ()))
    yield c
    c.stop()


def pods(cluster: Cluster, selector: str) -> list[dict]:
    out = cluster.kubectl("get", "pods", "-l", selector, "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def running(cluster: Cluster, selector: str, n: int) -> list[dict]:
    found = pods(cluster, selector)
    ok = len(found) == n and all(p["status"].get("phase") == "Running" for p in found)
    return found if ok else []


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def lease_holder(cluster: Cluster, name: str) -> str:
    out = cluster.kubectl("get", "lease", "-n", "kube-system", name, "-o",
                          "jsonpath={.spec.holderIdentity}", check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def test_hollow_nodes_run_what_the_scheduler_binds(hollow_cluster: Cluster) -> None:
    c = hollow_cluster
    nodes = json.loads(c.kubectl("get", "nodes", "-l", "type=hollow", "-o", "json").stdout)
    assert sorted(n["metadata"]["name"] for n in nodes["items"]) == [
        "hollow-node-0", "hollow-node-1", "hollow-node-2"]
    table = c.kubectl("get", "nodes").stdout
    assert table.count(" Ready ") == 3, table
    leases = c.kubectl("get", "leases", "-n", "kube-node-lease", "-o", "name").stdout.split()
    assert sorted(leases) == [f"lease.coordination.k8s.io/hollow-node-{i}" for i in range(3)]

    c.kubectl("run", "web", "--image=nginx:1.26", "--labels=app=solo")
    pod = wait_for("the pod Running", lambda: running(c, "app=solo", 1), timeout=30)[0]
    assert pod["spec"]["nodeName"].startswith("hollow-node-")
    assert pod["status"]["podIP"] and pod["status"]["hostIP"]
    c.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=20s")
    started = time.monotonic()
    c.kubectl("delete", "pod", "web", timeout=30)  # waits until the node has removed it
    assert time.monotonic() - started < 10


def test_standalone_scheduler_binds_pods(own_cluster: Cluster) -> None:
    c = own_cluster
    hollow = start_hollow_nodes(c, 2)
    port = free_port()
    sched = Component(c, "scheduler", ("--health-port", str(port), *LEASE)).start()
    try:
        c.kubectl("run", "solo", "--image=nginx:1.26", "--labels=app=solo")
        wait_for("the pod bound and Running", lambda: running(c, "app=solo", 1), timeout=30)
        assert lease_holder(c, "kube-scheduler")
        code, body = http_get(port, "/healthz")
        assert code == 200 and "[+]scheduler ok" in body, body
    finally:
        sched.stop()
        hollow.stop()


test_standalone_scheduler_binds_pods.server_flags = ("--disable-scheduler",)  # type: ignore[attr-defined]


def test_leader_election_hands_over_when_the_leader_is_killed(own_cluster: Cluster) -> None:
    c = own_cluster
    hollow = start_hollow_nodes(c, 2)
    flags = ("--controllers", "replicationcontroller", *LEASE)
    port_a, port_b = free_port(), free_port()
    a = Component(c, "controller-manager", ("--health-port", str(port_a), *flags), "cm-a")
    b = Component(c, "controller-manager", ("--health-port", str(port_b), *flags), "cm-b")
    try:
        c.kubectl("apply", "-f", "-", input=RC_YAML)
        time.sleep(1.5)  # the server runs no controllers: nothing may create the pods
        assert pods(c, "app=web") == []

        a.start()
        a.wait_log("became leader")
        wait_for("3 pods Running", lambda: running(c, "app=web", 3), timeout=30)
        holder = lease_holder(c, "kube-controller-manager")
        assert holder and holder in a.log_path.read_text()
        code, body = http_get(port_a, "/metrics")
        assert code == 200 and 'workqueue_adds_total{name="replication-controller"}' in body

        b.start()
        b.wait_log("waiting to lead")
        code, _ = http_get(port_b, "/healthz") if _up(port_b) else (0, "")
        assert code == 200
        assert lease_holder(c, "kube-controller-manager") == holder  # b only waits

        a.kill()
        killed = time.monotonic()
        victim = pods(c, "app=web")[0]["metadata"]["name"]
        c.kubectl("delete", "pod", victim, timeout=30)
        b.wait_log("became leader", timeout=20)
        took = time.monotonic() - killed
        assert took < 4 + 2 * 1.2 + 2, f"takeover took {took:.1f}s"
        assert lease_holder(c, "kube-controller-manager") not in ("", holder)
        found = wait_for("3 pods again under the new leader",
                         lambda: running(c, "app=web", 3), timeout=30)
        assert victim not in [p["metadata"]["name"] for p in found]
    finally:
        a.stop()
        b.stop()
        hollow.stop()


test_leader_election_hands_over_when_the_leader_is_killed.server_flags = (  # type: ignore[attr-defined]
    "--disable-controllers",)


def _up(port: int) -> bool:
    def ready() -> bool:
        try:
            return http_get(port, "/healthz")[0] in (200, 500)
        except OSError:
            return False
    wait_for(f"health server on port {port}", ready, timeout=10)
    return True
