"""ReplicationControllers and ReplicaSets driven by the real kubectl against a real server.

No node agent runs in these tests, so pods may stay Pending (or bound with no
kubelet to finish a graceful deletion): counts below are of pods that are not
being deleted, which is what the controllers count too.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cluster import Cluster, require, wait_for

RC_YAML = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: nginx
spec:
  replicas: 3
  selector:
    app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.26
        ports:
        - containerPort: 80
"""

RS_YAML = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: frontend
spec:
  replicas: 2
  selector:
    matchExpressions:
    - {key: tier, operator: In, values: [frontend]}
  template:
    metadata:
      labels:
        tier: frontend
    spec:
      containers:
      - name: php
        image: php:8
"""


def live_pods(cluster: Cluster, ns: str, selector: str) -> list[str]:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout
    return sorted(p["metadata"]["name"] for p in json.loads(out)["items"]
                  if not p["metadata"].get("deletionTimestamp"))


def wait_pods(cluster: Cluster, ns: str, selector: str, count: int) -> list[str]:
    found = wait_for(f"{count} live pods with {selector}",
                     lambda: (lambda names: (names,) if len(names) == count else None)(
                         live_pods(cluster, ns, selector)), timeout=30)
    assert isinstance(found, tuple)
    return list(found[0])


def test_rc_replaces_a_deleted_pod_and_scales(cluster: Cluster, tmp_path: Path) -> None:
    require("kubectl")
    ns = "e2e-rc"
    cluster.kubectl("create", "namespace", ns)
    manifest = tmp_path / "rc.yaml"
    manifest.write_text(RC_YAML)
    out = cluster.kubectl("create", "-f", str(manifest), "-n", ns).stdout
    assert out.strip() == "replicationcontroller/nginx created"
    first = wait_pods(cluster, ns, "app=nginx", 3)
    assert all(name.startswith("nginx-") for name in first)

    victim = first[0]
    cluster.kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
    wait_for("a replacement for the deleted pod", lambda: (
        lambda names: len(names) == 3 and victim not in names)(
            live_pods(cluster, ns, "app=nginx")), timeout=30)

    out = cluster.kubectl("scale", "rc", "nginx", "--replicas=5", "-n", ns).stdout
    assert out.strip() == "replicationcontroller/nginx scaled"
    wait_pods(cluster, ns, "app=nginx", 5)
    cluster.kubectl("scale", "rc", "nginx", "--replicas=1", "-n", ns)
    wait_pods(cluster, ns, "app=nginx", 1)
    wait_for("the status of one replica", lambda: cluster.kubectl(
        "get", "rc", "nginx", "-n", ns, "-o", "jsonpath={.status.replicas}").stdout == "1",
        timeout=30)
    table = cluster.kubectl("get", "rc", "nginx", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert table[1].split()[:3] == ["nginx", "1", "1"]

    events = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    seen = {(e["reason"], e["message"]) for e in json.loads(events)["items"]
            if e["involvedObject"]["name"] == "nginx"}
    assert ("SuccessfulCreate", f"Created pod: {first[1]}") in seen
    assert any(r == "SuccessfulDelete" and m.startswith("Deleted pod: nginx-") for r, m in seen)


def test_replicaset_with_set_based_selector(cluster: Cluster, tmp_path: Path) -> None:
    require("kubectl")
    ns = "e2e-rs"
    cluster.kubectl("create", "namespace", ns)
    manifest = tmp_path / "rs.yaml"
    manifest.write_text(RS_YAML)
    cluster.kubectl("apply", "-f", str(manifest), "-n", ns)
    pods = wait_pods(cluster, ns, "tier=frontend", 2)
    owner = json.loads(cluster.kubectl("get", "pod", pods[0], "-n", ns, "-o", "json").stdout)
    ref = owner["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("ReplicaSet", "frontend", True)
    cluster.kubectl("scale", "rs", "frontend", "--replicas=0", "-n", ns)
    wait_pods(cluster, ns, "tier=frontend", 0)
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
