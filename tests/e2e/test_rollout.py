"""Every ``kubectl rollout`` subcommand against a real server that runs the scheduler and the
controllers, with hollow nodes running the pods: the output kubectl prints, and the
ReplicaSets and pods at each step."""

from __future__ import annotations

import json
from typing import Any

from tests.cluster import Cluster, require, wait_for


def _json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def replica_sets(cluster: Cluster) -> list[tuple[str, int, str]]:
    """(revision, spec.replicas, image) of the Deployment's ReplicaSets, by revision."""
    items = _json(cluster, "get", "rs", "-l", "app=web")["items"]
    out = [(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            rs["spec"]["replicas"], rs["spec"]["template"]["spec"]["containers"][0]["image"])
           for rs in items]
    return sorted(out, key=lambda t: int(t[0]))


def running_images(cluster: Cluster) -> list[str]:
    items = _json(cluster, "get", "pods", "-l", "app=web")["items"]
    return sorted(p["spec"]["containers"][0]["image"] for p in items
                  if not p["metadata"].get("deletionTimestamp")
                  and (p.get("status") or {}).get("phase") == "Running")


def settled(cluster: Cluster, image: str, n: int) -> bool:
    return running_images(cluster) == [image] * n


def rollout_status(cluster: Cluster) -> str:
    out = cluster.kubectl("rollout", "status", "deploy/web", "--timeout=90s", timeout=120).stdout
    assert out.rstrip().endswith('deployment "web" successfully rolled out'), out
    for line in out.splitlines()[:-1]:
        assert line.startswith('Waiting for deployment "web" rollout to finish: '), out
    return out


def test_rollout_lifecycle_with_kubectl(hollow_cluster: Cluster) -> None:
    require("kubectl")
    c = hollow_cluster
    out = c.kubectl("create", "deployment", "web", "--image=nginx:1.26", "--replicas=3").stdout
    assert out.strip() == "deployment.apps/web created"
    rollout_status(c)
    assert replica_sets(c) == [("1", 3, "nginx:1.26")]
    wait_for("3 pods of 1.26", lambda: settled(c, "nginx:1.26", 3), timeout=30)

    out = c.kubectl("set", "image", "deploy/web", "nginx=nginx:1.27").stdout
    assert out.strip() == "deployment.apps/web image updated"
    c.kubectl("annotate", "deploy/web", "kubernetes.io/change-cause=nginx 1.27")
    rollout_status(c)
    wait_for("3 pods of 1.27", lambda: settled(c, "nginx:1.27", 3), timeout=30)
    assert replica_sets(c) == [("1", 0, "nginx:1.26"), ("2", 3, "nginx:1.27")]
    history = c.kubectl("rollout", "history", "deploy/web").stdout
    lines = [line.split(None, 1) for line in history.strip().splitlines()]
    assert lines[0] == ["deployment.apps/web"]
    assert lines[1:] == [["REVISION", "CHANGE-CAUSE"], ["1", "<none>"], ["2", "nginx 1.27"]]
    one = c.kubectl("rollout", "history", "deploy/web", "--revision=1").stdout
    assert "nginx:1.26" in one and "nginx:1.27" not in one
    assert "pod-template-hash=" in one

    out = c.kubectl("rollout", "undo", "deploy/web", "--to-revision=1").stdout
    assert out.strip() == "deployment.apps/web rolled back"
    rollout_status(c)
    wait_for("back to 1.26", lambda: settled(c, "nginx:1.26", 3), timeout=30)
    assert replica_sets(c) == [("2", 0, "nginx:1.27"), ("3", 3, "nginx:1.26")]

    assert c.kubectl("rollout", "pause", "deploy/web").stdout.strip() == \
        "deployment.apps/web paused"
    c.kubectl("set", "image", "deploy/web", "nginx=nginx:1.28")
    wait_for("the paused deployment observed", lambda: _observed(c), timeout=30)
    assert replica_sets(c) == [("2", 0, "nginx:1.27"), ("3", 3, "nginx:1.26")]
    undo = c.kubectl("rollout", "undo", "deploy/web", check=False)
    assert undo.returncode != 0 and "you cannot rollback a paused deployment" in undo.stderr
    assert c.kubectl("rollout", "resume", "deploy/web").stdout.strip() == \
        "deployment.apps/web resumed"
    rollout_status(c)
    wait_for("3 pods of 1.28", lambda: settled(c, "nginx:1.28", 3), timeout=30)
    assert [rs[2] for rs in replica_sets(c)] == ["nginx:1.27", "nginx:1.26", "nginx:1.28"]

    assert c.kubectl("rollout", "restart", "deploy/web").stdout.strip() == \
        "deployment.apps/web restarted"
    rollout_status(c)
    d = _json(c, "get", "deploy/web")
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]
    assert replica_sets(c)[-1][:2] == ("5", 3) and len(replica_sets(c)) == 4

    assert c.kubectl("scale", "deploy/web", "--replicas=5").stdout.strip() == \
        "deployment.apps/web scaled"
    rollout_status(c)
    wait_for("5 pods", lambda: len(running_images(c)) == 5, timeout=30)
    assert replica_sets(c)[-1][:2] == ("5", 5)

    out = c.kubectl("delete", "deploy", "web").stdout
    assert out.strip() == 'deployment.apps "web" deleted'
    wait_for("replica sets and pods gone", lambda: not replica_sets(c)
             and not _json(c, "get", "pods", "-l", "app=web")["items"], timeout=60)


def _observed(c: Cluster) -> bool:
    d = _json(c, "get", "deploy/web")
    return bool(d["status"].get("observedGeneration") == d["metadata"]["generation"])
