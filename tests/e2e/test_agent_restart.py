"""An agent killed and started again adopts the pods it was running: the same container, no
restart, the process never stopped; a pod deleted afterwards leaves no process behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil

from tests.cluster import AGENT_NODE, Cluster, wait_for

MARK = "36011"  # the sleep's argument, to find its process among the other tests'
POD = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: survivor}}
spec:
  nodeName: {AGENT_NODE}
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: busybox:1.36
    command: [sleep, "{MARK}"]
"""


def sleepers() -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if len(cmd) == 2 and Path(cmd[0]).name == "sleep" and cmd[1] == MARK:
            found.append(proc.pid)
    return found


def pod(cluster: Cluster) -> dict[str, Any] | None:
    res = cluster.kubectl("get", "pod", "survivor", "-o", "json", check=False)
    if res.returncode != 0:
        return None
    obj: dict[str, Any] = json.loads(res.stdout)
    return obj


def ready(cluster: Cluster) -> dict[str, Any] | None:
    p = pod(cluster)
    if p is None or p["status"].get("phase") != "Running":
        return None
    statuses = p["status"].get("containerStatuses") or []
    return p if statuses and statuses[0].get("ready") else None


def heartbeat(cluster: Cluster) -> str:
    """The Ready condition's lastHeartbeatTime ("" unless Ready)."""
    node = json.loads(cluster.kubectl("get", "node", AGENT_NODE, "-o", "json").stdout)
    for c in node["status"]["conditions"]:
        if c["type"] == "Ready" and c["status"] == "True":
            return str(c["lastHeartbeatTime"])
    return ""


def test_a_restarted_agent_adopts_its_running_pods(fresh_agent_cluster: Cluster) -> None:
    cluster = fresh_agent_cluster
    cluster.kubectl("apply", "-f", "-", input=POD)
    before = wait_for("the pod Running and ready", lambda: ready(cluster), timeout=60,
                      interval=0.3)
    assert isinstance(before, dict)
    status = before["status"]["containerStatuses"][0]
    pids = wait_for("its process", sleepers, timeout=10)
    assert isinstance(pids, list) and len(pids) == 1
    started = psutil.Process(pids[0]).create_time()

    stamp = heartbeat(cluster)
    cluster.kill()  # SIGKILL: the agent gets no chance to clean up
    assert sleepers() == pids, "the container must outlive its agent"
    cluster.start()
    wait_for("the node to report Ready again", lambda: heartbeat(cluster) > stamp,
             timeout=60, interval=0.5)
    after = wait_for("the pod Running and ready after the restart", lambda: ready(cluster),
                     timeout=60, interval=0.3)
    assert isinstance(after, dict)
    again = after["status"]["containerStatuses"][0]
    assert again["containerID"] == status["containerID"]
    assert again["restartCount"] == 0
    assert again["state"]["running"]["startedAt"] == status["state"]["running"]["startedAt"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert sleepers() == pids
    assert psutil.Process(pids[0]).create_time() == started
    # The status above may still be the one written before the kill. Proof that the new
    # agent took the container over: it sees it die, and restarts it as its first restart.
    wait_for("the restarted agent to be ready", lambda: cluster.log_path.read_text(
        errors="replace").count(f"node agent {AGENT_NODE} ready") >= 2, timeout=30)
    psutil.Process(pids[0]).kill()

    def restarted() -> dict[str, Any] | None:
        p = pod(cluster)
        cs = ((p or {}).get("status") or {}).get("containerStatuses") or [{}]
        return cs[0] if cs[0].get("restartCount") == 1 and "running" in cs[0]["state"] \
            else None

    third = wait_for("the adopted container's restart", restarted, timeout=30, interval=0.3)
    assert isinstance(third, dict)
    assert third["lastState"]["terminated"]["containerID"] == status["containerID"]
    assert third["lastState"]["terminated"]["exitCode"] == 137
    assert third["containerID"] != status["containerID"]
    assert len(sleepers()) == 1

    cluster.kubectl("delete", "pod", "survivor", "--wait=true", timeout=60)
    wait_for("no process left of the deleted pod", lambda: not sleepers(), timeout=20)
