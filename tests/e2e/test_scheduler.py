"""The scheduler inside ``kubeling server``, driven by the real kubectl.

Nodes are plain Node objects created through the API (Ready, with capacity);
no node agent runs, so pods stay bound but never start. What is checked is
what a user sees: where pods land, the PodScheduled condition, and the
FailedScheduling / Scheduled events in ``kubectl describe``.
"""

from __future__ import annotations

import json

from tests.cluster import Cluster, require, wait_for

CP_TAINT = "node-role.kubernetes.io/control-plane"


def node_yaml(name: str, *, taint: bool = False) -> str:
    taints = (f"  taints:\n  - key: {CP_TAINT}\n    effect: NoSchedule\n" if taint else "")
    return f"""\
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
    kubernetes.io/hostname: {name}
spec:
{taints or '  {}' + chr(10)}status:
  capacity: {{cpu: "1", memory: 4Gi, pods: "110"}}
  allocatable: {{cpu: "1", memory: 4Gi, pods: "110"}}
  conditions:
  - type: Ready
    status: "True"
    reason: KubeletReady
    message: kubelet is posting ready status
---
"""


def pod_yaml(name: str, cpu: str, scheduler: str = "default-scheduler") -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  schedulerName: {scheduler}
  containers:
  - name: c
    image: nginx:1.26
    resources:
      requests: {{cpu: {cpu}}}
---
"""


def pod(cluster: Cluster, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)


def test_pods_are_placed_and_failures_explained(fresh_cluster: Cluster) -> None:
    require("kubectl")
    c = fresh_cluster
    c.kubectl("create", "-f", "-", input=node_yaml("cp", taint=True) + node_yaml("w1")
              + node_yaml("w2"))
    c.kubectl("create", "-f", "-", input=pod_yaml("fill-1", "800m") + pod_yaml("fill-2", "800m")
              + pod_yaml("mine", "100m", scheduler="my-scheduler"))
    wait_for("both fillers bound", lambda: all(
        pod(c, n)["spec"].get("nodeName") for n in ("fill-1", "fill-2")), timeout=20)
    assert {pod(c, n)["spec"]["nodeName"] for n in ("fill-1", "fill-2")} == {"w1", "w2"}

    c.kubectl("create", "-f", "-", input=pod_yaml("big", "500m"))
    expected = (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        f"{{{CP_TAINT}: }}, 2 Insufficient cpu. preemption: 0/3 nodes are available: "
        "1 Preemption is not helpful for scheduling, 2 No preemption victims found for "
        "incoming pod.")

    def condition() -> dict | None:
        conds = pod(c, "big").get("status", {}).get("conditions") or []
        return next((x for x in conds if x["type"] == "PodScheduled"), None)
    cond = wait_for("big's PodScheduled condition", condition, timeout=20)
    assert isinstance(cond, dict)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable",
                                                                 expected)
    described = wait_for("FailedScheduling in describe", lambda: (
        out if "FailedScheduling" in (out := c.kubectl("describe", "pod", "big").stdout)
        else None), timeout=20)
    assert isinstance(described, str)
    assert "default-scheduler" in described and "2 Insufficient cpu." in described

    # Room is made: the pending pod is retried on the deletion and lands there.
    freed = pod(c, "fill-1")["spec"]["nodeName"]
    c.kubectl("delete", "pod", "fill-1", "--grace-period=0", "--force")
    wait_for("big bound after a pod was deleted",
             lambda: pod(c, "big")["spec"].get("nodeName") == freed, timeout=30)
    events = c.kubectl("get", "events", "--field-selector", "involvedObject.name=big",
                       "-o", "json").stdout
    messages = [e["message"] for e in json.loads(events)["items"] if e["reason"] == "Scheduled"]
    assert messages == [f"Successfully assigned default/big to {freed}"]
    # Another scheduler's pod is left alone.
    assert not pod(c, "mine")["spec"].get("nodeName")
