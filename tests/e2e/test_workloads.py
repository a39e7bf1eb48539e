"""DaemonSets, Jobs and CronJobs end to end: a real server with hollow nodes, driven by kubectl."""

from __future__ import annotations

import json
from typing import Any

from tests.cluster import Cluster, require, start_hollow_nodes, wait_for

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "agent:1"}]
"""

JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  completions: 3
  parallelism: 2
  template:
    metadata:
      annotations: {"kubeling.io/hollow-exit-after": "1"}
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: "perl:5"}]
"""

CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations: {"kubeling.io/hollow-exit-after": "1"}
        spec:
          restartPolicy: Never
          containers: [{name: tick, image: "busybox"}]
"""


def _json(c: Cluster, *args: str) -> Any:
    return json.loads(c.kubectl(*args, "-o", "json").stdout)


def _agent_nodes(c: Cluster) -> list[str]:
    pods = _json(c, "get", "pods", "-l", "app=agent")["items"]
    return sorted(p["spec"].get("nodeName", "") for p in pods
                  if not p["metadata"].get("deletionTimestamp"))


def test_daemonset_follows_nodes_joining_and_leaving(hollow_cluster: Cluster) -> None:
    require("kubectl")
    c = hollow_cluster
    c.kubectl("apply", "-f", "-", input=DAEMONSET)
    out = c.kubectl("rollout", "status", "ds/agent", "--timeout=60s").stdout
    assert 'daemon set "agent" successfully rolled out' in out
    assert _agent_nodes(c) == ["hollow-node-0", "hollow-node-1", "hollow-node-2"]

    late = start_hollow_nodes(c, 1, "--prefix", "late-node-")
    try:
        wait_for("a pod on the joining node", lambda: "late-node-0" in _agent_nodes(c),
                 timeout=30)
        c.kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    finally:
        late.stop()
    c.kubectl("delete", "node", "late-node-0")
    wait_for("the leaving node's pod gone", lambda: "late-node-0" not in _agent_nodes(c),
             timeout=30)
    status = _json(c, "get", "ds", "agent")["status"]
    assert status["desiredNumberScheduled"] == 3

    c.kubectl("set", "image", "ds/agent", "agent=agent:2")
    c.kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    pods = _json(c, "get", "pods", "-l", "app=agent")["items"]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"agent:2"}


def test_job_completes(hollow_cluster: Cluster) -> None:
    require("kubectl")
    c = hollow_cluster
    c.kubectl("apply", "-f", "-", input=JOB)
    c.kubectl("wait", "--for=condition=complete", "job/pi", "--timeout=60s")
    job = _json(c, "get", "job", "pi")
    assert job["status"]["succeeded"] == 3
    assert job["status"]["completionTime"]
    table = c.kubectl("get", "job", "pi").stdout
    assert "3/3" in table
    pods = _json(c, "get", "pods", "-l", "batch.kubernetes.io/job-name=pi")["items"]
    assert len(pods) == 3
    assert all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert all(not p["metadata"].get("finalizers") for p in pods)
    events = c.kubectl("get", "events", "--field-selector", "involvedObject.name=pi").stdout
    assert "Completed" in events and "SuccessfulCreate" in events


def test_cronjob_runs_a_job_that_completes(hollow_cluster: Cluster) -> None:
    require("kubectl")
    c = hollow_cluster
    c.kubectl("apply", "-f", "-", input=CRONJOB)

    def completed_job() -> str:
        for job in _json(c, "get", "jobs")["items"]:
            if job["metadata"]["name"].startswith("tick-") and any(
                    cond["type"] == "Complete" and cond["status"] == "True"
                    for cond in (job.get("status") or {}).get("conditions") or ()):
                return str(job["metadata"]["name"])
        return ""

    name = wait_for("a completed job of the cronjob", completed_job, timeout=90, interval=1)
    assert isinstance(name, str)
    minutes = int(name.removeprefix("tick-"))
    assert minutes > 28_000_000
    wait_for("lastSuccessfulTime", lambda: (_json(c, "get", "cronjob", "tick").get("status")
                                            or {}).get("lastSuccessfulTime"), timeout=30)
