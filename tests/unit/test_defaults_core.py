"""Defaults of the core/v1 kinds: what a user reads back after sending a bare object."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubeling.api import kinds
from kubeling.api.defaults import apply_defaults
from kubeling.api.defaults.core import default_pod_template_spec


def _kind(name: str) -> kinds.Kind:
    kind = kinds.by_kind("", name)
    assert kind is not None
    return kind


def _pod(**spec: Any) -> dict[str, Any]:
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}
    apply_defaults(_kind("Pod"), pod)
    return pod


def test_bare_pod_gets_kubernetes_defaults() -> None:
    pod = _pod(containers=[{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}])
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    ctr = spec["containers"][0]
    assert ctr["terminationMessagePath"] == "/dev/termination-log"
    assert ctr["terminationMessagePolicy"] == "File"
    assert ctr["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.27", "IfNotPresent"),
    ("localhost:5000/app", "Always"),
    ("localhost:5000/app:v2", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    pod = _pod(containers=[{"name": "c", "image": image}])
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_explicit_values_are_kept() -> None:
    pod = _pod(restartPolicy="Never", containers=[{"name": "c", "image": "x",
                                                   "imagePullPolicy": "Never"}])
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_probe_volume_env_and_resources_defaults() -> None:
    pod = _pod(
        volumes=[{"name": "a"}, {"name": "b", "secret": {"secretName": "s"}},
                 {"name": "c", "configMap": {"name": "m"}}],
        containers=[{
            "name": "c", "image": "x",
            "livenessProbe": {"httpGet": {"port": 80}},
            "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
        }])
    spec = pod["spec"]
    assert spec["volumes"][0]["emptyDir"] == {}
    assert spec["volumes"][1]["secret"]["defaultMode"] == 420
    assert spec["volumes"][2]["configMap"]["defaultMode"] == 420
    ctr = spec["containers"][0]
    assert ctr["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                                    "timeoutSeconds": 1, "periodSeconds": 10,
                                    "successThreshold": 1, "failureThreshold": 3}
    assert ctr["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert ctr["resources"]["requests"] == {"cpu": "500m", "memory": "64Mi"}
    assert pod["status"]["qosClass"] == "Guaranteed"


def test_pod_template_does_not_copy_limits_into_requests() -> None:
    tmpl = {"spec": {"containers": [{"name": "c", "image": "x",
                                     "resources": {"limits": {"cpu": "1"}}}]}}
    default_pod_template_spec(tmpl)
    assert "requests" not in tmpl["spec"]["containers"][0]["resources"]
    assert tmpl["spec"]["restartPolicy"] == "Always"


def test_service_defaults() -> None:
    svc = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}],
                                               "selector": {"app": "a"}}}
    apply_defaults(_kind("Service"), svc)
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ipFamilies"] == ["IPv4"]
    assert "externalTrafficPolicy" not in spec


def test_node_port_service_and_headless_defaults() -> None:
    svc = {"spec": {"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}}
    apply_defaults(_kind("Service"), svc)
    assert svc["spec"]["externalTrafficPolicy"] == "Cluster"
    assert svc["spec"]["clusterIPs"] == ["None"]


def test_replication_controller_defaults_selector_labels_and_replicas() -> None:
    rc = {"metadata": {"name": "r"}, "spec": {"template": {
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    apply_defaults(_kind("ReplicationController"), rc)
    assert rc["spec"]["selector"] == {"app": "a"}
    assert rc["spec"]["replicas"] == 1
    assert rc["metadata"]["labels"] == {"app": "a"}
    assert rc["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_secret_defaults_type_and_folds_string_data() -> None:
    secret = {"metadata": {"name": "s"}, "stringData": {"user": "admin"}}
    apply_defaults(_kind("Secret"), secret)
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert base64.b64decode(secret["data"]["user"]) == b"admin"


def test_namespace_pv_pvc_limitrange_defaults() -> None:
    ns = {"metadata": {"name": "team"}}
    apply_defaults(_kind("Namespace"), ns)
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert ns["status"] == {"phase": "Active"}
    pv = {"spec": {"hostPath": {"path": "/d"}}}
    apply_defaults(_kind("PersistentVolume"), pv)
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["status"] == {"phase": "Pending"}
    pvc: dict[str, Any] = {"spec": {}}
    apply_defaults(_kind("PersistentVolumeClaim"), pvc)
    assert pvc["spec"]["volumeMode"] == "Filesystem"
    lr = {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"},
                               "min": {"memory": "1Mi"}}]}}
    apply_defaults(_kind("LimitRange"), lr)
    item = lr["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "1Mi"}
