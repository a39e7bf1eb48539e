"""Cascading deletion through two levels of ownerReferences, driven by the real kubectl.

The owner is a ReplicaSet scaled to zero; its dependents are ConfigMaps that
carry ownerReferences made by hand (child -> ReplicaSet, grandchild -> child),
so only the garbage collector acts on them, whatever other controllers run.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.cluster import Cluster, require, wait_for


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    require("kubectl")


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"cascade-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def get(cluster: Cluster, ns: str, what: str) -> dict[str, Any] | None:
    res = cluster.kubectl("-n", ns, "get", what, "-o", "json", check=False)
    if res.returncode != 0:
        assert "NotFound" in res.stderr, res.stderr
        return None
    obj: dict[str, Any] = json.loads(res.stdout)
    return obj


def create(cluster: Cluster, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = cluster.kubectl("-n", ns, "create", "-o", "json", "-f", "-", input=json.dumps(obj))
    created: dict[str, Any] = json.loads(out.stdout)
    return created


def owned_by(owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "blockOwnerDeletion": True}


def family(cluster: Cluster, ns: str, hold_grandchild: bool = False) -> None:
    """ReplicaSet ``rs`` <- ConfigMap ``child`` <- ConfigMap ``grandchild``."""
    rs = create(cluster, ns, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "rs"}},
                 "template": {"metadata": {"labels": {"app": "rs"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    child = create(cluster, ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "child", "ownerReferences": [{**owned_by(rs), "controller": True}]}})
    meta: dict[str, Any] = {"name": "grandchild", "ownerReferences": [owned_by(child)]}
    if hold_grandchild:
        meta["finalizers"] = ["example.com/hold"]
    create(cluster, ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})


def test_background_removes_the_owner_then_every_level(cluster: Cluster, ns: str) -> None:
    family(cluster, ns)
    out = cluster.kubectl("-n", ns, "delete", "replicaset", "rs", "--cascade=background")
    assert out.stdout.strip() == 'replicaset.apps "rs" deleted'
    assert get(cluster, ns, "replicaset/rs") is None
    wait_for("child and grandchild to be collected", lambda: (
        get(cluster, ns, "configmap/child") is None
        and get(cluster, ns, "configmap/grandchild") is None))


def test_foreground_keeps_the_owner_until_the_last_level_goes(cluster: Cluster,
                                                              ns: str) -> None:
    family(cluster, ns, hold_grandchild=True)
    out = cluster.kubectl("-n", ns, "delete", "replicaset", "rs", "--cascade=foreground",
                          "--wait=false")
    assert out.stdout.strip() == 'replicaset.apps "rs" deleted'
    wait_for("the grandchild to be marked for deletion", lambda: (
        (get(cluster, ns, "configmap/grandchild") or {}).get("metadata", {})
        .get("deletionTimestamp")))
    rs = get(cluster, ns, "replicaset/rs")
    assert rs is not None and rs["metadata"]["finalizers"] == ["foregroundDeletion"]
    child = get(cluster, ns, "configmap/child")
    assert child is not None and child["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert child["metadata"]["deletionTimestamp"]

    cluster.kubectl("-n", ns, "patch", "configmap", "grandchild", "--type=json",
                    "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    wait_for("the whole family to go, owner last", lambda: get(cluster, ns, "replicaset/rs")
             is None)
    assert get(cluster, ns, "configmap/child") is None
    assert get(cluster, ns, "configmap/grandchild") is None


def test_orphan_keeps_dependents_and_their_own_references(cluster: Cluster, ns: str) -> None:
    family(cluster, ns)
    out = cluster.kubectl("-n", ns, "delete", "replicaset", "rs", "--cascade=orphan")
    assert out.stdout.strip() == 'replicaset.apps "rs" deleted'
    assert get(cluster, ns, "replicaset/rs") is None
    child = get(cluster, ns, "configmap/child")
    assert child is not None and not child["metadata"].get("ownerReferences")
    grandchild = get(cluster, ns, "configmap/grandchild")
    assert grandchild is not None
    assert [r["name"] for r in grandchild["metadata"]["ownerReferences"]] == ["child"]
