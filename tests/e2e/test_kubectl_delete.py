"""The real kubectl (1.32) deleting from kubeling: cascading, graceful pods, wait.

Deployments get a hand-made ReplicaSet as dependent (there is no deployment
controller in these tests) so that orphan, background and foreground deletion
have something to cascade to; a dependent holding a finalizer of its own keeps
a foreground deletion visibly in progress.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from tests.cluster import Cluster, require, wait_for


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    require("kubectl")


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"kd-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def get(cluster: Cluster, ns: str, what: str) -> dict[str, Any] | None:
    res = cluster.kubectl("-n", ns, "get", what, "-o", "json", check=False)
    if res.returncode != 0:
        assert "NotFound" in res.stderr, res.stderr
        return None
    obj: dict[str, Any] = json.loads(res.stdout)
    return obj


def deployment_with_replicaset(cluster: Cluster, ns: str, name: str,
                               rs_finalizers: list[str] | None = None) -> None:
    cluster.kubectl("-n", ns, "create", "deployment", name, "--image=nginx")
    owner = get(cluster, ns, f"deployment/{name}")
    assert owner is not None
    rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{name}-rs", "labels": {"app": name},
                     "finalizers": rs_finalizers or [],
                     "ownerReferences": [{
                         "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                         "uid": owner["metadata"]["uid"], "controller": True,
                         "blockOwnerDeletion": True}]},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }
    cluster.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(rs))


def test_delete_cascade_background_removes_dependents(cluster: Cluster, ns: str) -> None:
    deployment_with_replicaset(cluster, ns, "web")
    out = cluster.kubectl("-n", ns, "delete", "deployment", "web", "--cascade=background")
    assert out.stdout.strip() == 'deployment.apps "web" deleted'
    assert get(cluster, ns, "deployment/web") is None
    wait_for("the garbage collector to delete the ReplicaSet",
             lambda: get(cluster, ns, "replicaset/web-rs") is None)


def test_delete_cascade_orphan_keeps_dependents(cluster: Cluster, ns: str) -> None:
    deployment_with_replicaset(cluster, ns, "web")
    # What the server answers to the DELETE kubectl sends for --cascade=orphan.
    answer = json.loads(cluster.kubectl(
        "delete", "--raw",
        f"/apis/apps/v1/namespaces/{ns}/deployments/web?propagationPolicy=Orphan").stdout)
    assert answer["kind"] == "Deployment"
    assert answer["metadata"]["finalizers"] == ["orphan"]
    assert answer["metadata"]["deletionTimestamp"]
    wait_for("the orphaned deployment to go",
             lambda: get(cluster, ns, "deployment/web") is None)
    rs = get(cluster, ns, "replicaset/web-rs")
    assert rs is not None and not rs["metadata"].get("ownerReferences")

    deployment_with_replicaset(cluster, ns, "api")
    out = cluster.kubectl("-n", ns, "delete", "deployment", "api", "--cascade=orphan")
    assert out.stdout.strip() == 'deployment.apps "api" deleted'
    assert get(cluster, ns, "deployment/api") is None
    rs = get(cluster, ns, "replicaset/api-rs")
    assert rs is not None and not rs["metadata"].get("ownerReferences")


def test_delete_cascade_foreground_waits_for_dependents(cluster: Cluster, ns: str) -> None:
    deployment_with_replicaset(cluster, ns, "web", rs_finalizers=["example.com/hold"])
    out = cluster.kubectl("-n", ns, "delete", "deployment", "web", "--cascade=foreground",
                          "--wait=false")
    assert out.stdout.strip() == 'deployment.apps "web" deleted'
    owner = get(cluster, ns, "deployment/web")
    assert owner is not None
    assert owner["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert owner["metadata"]["deletionTimestamp"]
    wait_for("the dependent to be marked for deletion", lambda: (
        (get(cluster, ns, "replicaset/web-rs") or {}).get("metadata", {})
        .get("deletionTimestamp")))
    assert get(cluster, ns, "deployment/web") is not None

    cluster.kubectl("-n", ns, "patch", "replicaset", "web-rs", "--type=json",
                    "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    wait_for("the owner to go once its dependent is gone",
             lambda: get(cluster, ns, "deployment/web") is None)
    assert get(cluster, ns, "replicaset/web-rs") is None


def bound_pod(cluster: Cluster, ns: str, name: str) -> None:
    cluster.kubectl("-n", ns, "run", name, "--image=busybox", "--restart=Never",
                    "--", "sleep", "3600")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    res = subprocess.run(
        ["kubectl", "create", "--raw", f"/api/v1/namespaces/{ns}/pods/{name}/binding",
         "-f", "-"], input=json.dumps(binding), capture_output=True, text=True,
        env=cluster.env(), timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "Success"


def test_graceful_pod_deletion_then_force(cluster: Cluster, ns: str) -> None:
    bound_pod(cluster, ns, "p")
    pods = cluster.kubectl("-n", ns, "get", "pods", "-o", "wide").stdout.splitlines()
    assert pods[1].split()[6] == "node-a"

    out = cluster.kubectl("-n", ns, "delete", "pod", "p", "--grace-period=60", "--wait=false")
    assert out.stdout.strip() == 'pod "p" deleted'
    pod = get(cluster, ns, "pod/p")
    assert pod is not None, "a pod on a node is deleted gracefully, not at once"
    assert pod["metadata"]["deletionTimestamp"]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 60
    table = cluster.kubectl("-n", ns, "get", "pod", "p").stdout.splitlines()
    assert table[1].split()[2] == "Terminating"

    forced = cluster.kubectl("-n", ns, "delete", "pod", "p", "--grace-period=0", "--force")
    assert forced.stdout.strip() == 'pod "p" force deleted'
    assert "Immediate deletion does not wait for confirmation" in forced.stderr
    assert get(cluster, ns, "pod/p") is None


def test_unbound_pod_is_deleted_at_once(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("-n", ns, "run", "p", "--image=busybox", "--restart=Never")
    cluster.kubectl("-n", ns, "delete", "pod", "p", "--wait=false")
    assert get(cluster, ns, "pod/p") is None


def configmap_watches(cluster: Cluster) -> float:
    """Open watches on configmaps, as the server's metrics count them."""
    for line in cluster.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith("apiserver_longrunning_requests{") and \
                'resource="configmaps"' in line and 'verb="WATCH"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_wait_for_delete(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("-n", ns, "create", "configmap", "gone")
    cluster.kubectl("-n", ns, "create", "configmap", "stays")
    before = configmap_watches(cluster)
    waiter = subprocess.Popen(
        ["kubectl", "-n", ns, "wait", "--for=delete", "configmap/gone", "--timeout=30s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env())
    try:
        wait_for("kubectl wait to watch the configmap",
                 lambda: configmap_watches(cluster) > before)
        cluster.kubectl("-n", ns, "delete", "configmap", "gone")
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    assert out.strip() == "configmap/gone condition met"

    late = cluster.kubectl("-n", ns, "wait", "--for=delete", "configmap/stays",
                           "--timeout=1s", check=False)
    assert late.returncode == 1
    assert "timed out waiting for the condition on configmaps/stays" in late.stderr


def test_delete_by_selector_and_all(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    for name in ("a", "b", "c"):
        k("-n", ns, "create", "configmap", name)
    k("-n", ns, "label", "configmap", "a", "b", "tier=web")
    out = k("-n", ns, "delete", "configmaps", "-l", "tier=web").stdout
    assert sorted(out.splitlines()) == ['configmap "a" deleted', 'configmap "b" deleted']
    assert k("-n", ns, "get", "configmaps", "-o", "name").stdout.split() == ["configmap/c"]
    k("-n", ns, "delete", "configmaps", "--all")
    assert k("-n", ns, "get", "configmaps", "-o", "name").stdout == ""
    missing = k("-n", ns, "delete", "configmap", "nope", check=False)
    assert missing.returncode == 1
    assert 'configmaps "nope" not found' in missing.stderr
    assert k("-n", ns, "delete", "configmap", "nope", "--ignore-not-found").returncode == 0
