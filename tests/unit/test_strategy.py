"""What a status write may change, per kind."""

from __future__ import annotations

from kubeling.api import kinds
from kubeling.registry.strategy import prepare_for_status_update


def test_a_deployment_status_write_carries_annotations_but_not_spec() -> None:
    deployments = kinds.by_resource("apps", "deployments")
    assert deployments is not None
    old = {"metadata": {"name": "web", "annotations": {"a": "1"}, "labels": {"app": "web"}},
           "spec": {"replicas": 1}, "status": {}}
    new = {"metadata": {"name": "web", "resourceVersion": "7", "labels": {"app": "other"},
                        "annotations": {"deployment.kubernetes.io/revision": "2"}},
           "spec": {"replicas": 9}, "status": {"replicas": 1}}
    out = prepare_for_status_update(deployments, new, old)
    assert out["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "2"}
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["spec"] == {"replicas": 1} and out["status"] == {"replicas": 1}
