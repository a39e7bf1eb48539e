"""The pod lifecycle end to end through kubectl and the server's own node (process runtime,
restart back-off 1 s doubling to 8 s): a crashing container reaching CrashLoopBackOff with
growing back-off, init containers in order, restart policies giving Succeeded and Failed,
graceful deletion within the grace period, and ``kubectl describe`` in Kubernetes' words."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import Cluster, require, wait_for


@pytest.fixture
def ns(agent_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    require("kubectl")
    raw = request.node.name.removeprefix("test_").lower()
    name = ("life-" + re.sub(r"[^a-z0-9]+", "-", raw))[:40].strip("-")
    agent_cluster.kubectl("create", "namespace", name)
    yield name
    agent_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def create(cluster: Cluster, ns: str, name: str, containers: list[dict[str, Any]],
           **spec: Any) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"terminationGracePeriodSeconds": 1, **spec,
                         "containers": containers}}
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def sh(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script]}


def get_pod(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    res = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict(get_pod(cluster, ns, name).get("status") or {})


def test_crashing_container_reaches_crash_loop_back_off(agent_cluster: Cluster,
                                                        ns: str) -> None:
    create(agent_cluster, ns, "crash", [sh("main", "echo boom; exit 3")])
    seen: list[str] = []

    def looping() -> bool:
        cs = (status(agent_cluster, ns, "crash").get("containerStatuses") or [{}])[0]
        waiting = cs.get("state", {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            message = waiting.get("message", "")
            if message not in seen:
                seen.append(message)
        return cs.get("restartCount", 0) >= 4

    wait_for("four restarts of a crashing container", looping, timeout=40, interval=0.2)
    assert any(m.startswith("back-off 2s restarting failed container=main pod=crash_")
               for m in seen), seen
    assert any(m.startswith("back-off 4s") for m in seen), seen
    cs = status(agent_cluster, ns, "crash")["containerStatuses"][0]
    last = cs["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert status(agent_cluster, ns, "crash")["phase"] == "Running"
    out = agent_cluster.kubectl("describe", "pod", "crash", "-n", ns).stdout
    assert "Back-off restarting failed container main in pod crash_" in out
    assert "Created container: main" in out and "Started container main" in out
    assert "Exit Code:    3" in out
    previous = agent_cluster.kubectl("logs", "crash", "-n", ns, "--previous", check=False)
    assert previous.returncode != 0 or "boom" in previous.stdout


def test_init_containers_run_in_order_before_the_app(agent_cluster: Cluster, ns: str) -> None:
    create(agent_cluster, ns, "inits", [sh("app", "echo app; sleep 300")],
           initContainers=[sh("first", "sleep 1; echo first"), sh("second", "echo second")])

    def running() -> bool:
        return status(agent_cluster, ns, "inits").get("phase") == "Running"

    wait_for("the pod Running after its init containers", running, timeout=30, interval=0.2)
    s = status(agent_cluster, ns, "inits")
    first, second = s["initContainerStatuses"]
    assert first["state"]["terminated"]["reason"] == "Completed"
    assert second["state"]["terminated"]["reason"] == "Completed"
    assert first["state"]["terminated"]["finishedAt"] <= \
        second["state"]["terminated"]["startedAt"]
    assert second["state"]["terminated"]["finishedAt"] <= \
        s["containerStatuses"][0]["state"]["running"]["startedAt"]
    conditions = {c["type"]: c["status"] for c in s["conditions"]}
    assert conditions["Initialized"] == "True" and conditions["Ready"] == "True"


@pytest.mark.parametrize(("policy", "code", "phase"), [("Never", 0, "Succeeded"),
                                                       ("Never", 2, "Failed"),
                                                       ("OnFailure", 0, "Succeeded")])
def test_restart_policies_end_in_their_phase(agent_cluster: Cluster, ns: str, policy: str,
                                             code: int, phase: str) -> None:
    name = f"{policy.lower()}-{code}"
    create(agent_cluster, ns, name, [sh("main", f"exit {code}")], restartPolicy=policy)
    wait_for(f"phase {phase}", lambda: status(agent_cluster, ns, name).get("phase") == phase,
             timeout=20, interval=0.2)
    cs = status(agent_cluster, ns, name)["containerStatuses"][0]
    assert cs["restartCount"] == 0
    assert cs["state"]["terminated"]["exitCode"] == code
    out = agent_cluster.kubectl("get", "pod", name, "-n", ns).stdout
    assert ("Completed" if code == 0 else "Error") in out


def test_graceful_deletion_within_the_grace_period(agent_cluster: Cluster, ns: str) -> None:
    create(agent_cluster, ns, "polite",
           [sh("main", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done")],
           terminationGracePeriodSeconds=30)
    create(agent_cluster, ns, "stubborn",
           [sh("main", "trap '' TERM; while true; do sleep 0.1; done")],
           terminationGracePeriodSeconds=3)
    for name in ("polite", "stubborn"):
        wait_for(f"{name} running",
                 lambda n=name: status(agent_cluster, ns, n).get("phase") == "Running",
                 timeout=20, interval=0.2)
    start = time.monotonic()
    agent_cluster.kubectl("delete", "pod", "polite", "-n", ns, "--wait=true", timeout=30)
    assert time.monotonic() - start < 10, "a process ending on SIGTERM is deleted promptly"
    start = time.monotonic()
    agent_cluster.kubectl("delete", "pod", "stubborn", "-n", ns, "--wait=true", timeout=30)
    took = time.monotonic() - start
    assert 2.5 <= took < 12, f"a process ignoring SIGTERM is killed at the deadline ({took:.1f}s)"
