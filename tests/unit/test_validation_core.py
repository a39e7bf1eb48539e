"""Validation of the core/v1 kinds: field paths, reasons and messages as kubectl shows them."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from kubeling.api import kinds
from kubeling.api.defaults import apply_defaults
from kubeling.api.validation import validate_create, validate_status_update, validate_update
from kubeling.api.validation.core import validate_pod_template_spec


def _kind(name: str) -> kinds.Kind:
    kind = kinds.by_kind("", name)
    assert kind is not None
    return kind


def _causes(kind: str, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    apply_defaults(_kind(kind), obj)
    return [(c.get("field", ""), c["reason"], c["message"])
            for c in validate_create(_kind(kind), obj)]


def _pod(**spec: Any) -> dict[str, Any]:
    spec.setdefault("containers", [{"name": "c", "image": "nginx"}])
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def _ctr(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "nginx", **fields}


def test_good_pod_is_valid() -> None:
    pod = _pod(volumes=[{"name": "data", "emptyDir": {}}],
               containers=[_ctr(ports=[{"containerPort": 80, "name": "http"}],
                                volumeMounts=[{"name": "data", "mountPath": "/data"}],
                                readinessProbe={"httpGet": {"port": "http"}},
                                env=[{"name": "A", "value": "1"}],
                                resources={"requests": {"cpu": "100m"},
                                           "limits": {"cpu": "1", "memory": "1Gi"}})])
    assert _causes("Pod", pod) == []


@pytest.mark.parametrize(("spec", "expected"), [
    ({"containers": []}, ("spec.containers", "FieldValueRequired", "Required value")),
    ({"containers": [_ctr(), _ctr()]},
     ("spec.containers[1].name", "FieldValueDuplicate", 'Duplicate value: "c"')),
    ({"containers": [_ctr(image="")]},
     ("spec.containers[0].image", "FieldValueRequired", "Required value")),
    ({"containers": [_ctr(image=" nginx")]},
     ("spec.containers[0].image", "FieldValueInvalid",
      'Invalid value: " nginx": must not have leading or trailing whitespace')),
    ({"restartPolicy": "Sometimes"},
     ("spec.restartPolicy", "FieldValueNotSupported",
      'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')),
    ({"dnsPolicy": "Google"},
     ("spec.dnsPolicy", "FieldValueNotSupported",
      'Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", '
      '"ClusterFirst", "Default", "None"')),
    ({"containers": [_ctr(ports=[{"containerPort": 70000}])]},
     ("spec.containers[0].ports[0].containerPort", "FieldValueInvalid",
      "Invalid value: 70000: must be between 1 and 65535, inclusive")),
    ({"containers": [_ctr(ports=[{"containerPort": 80, "protocol": "HTTP"}])]},
     ("spec.containers[0].ports[0].protocol", "FieldValueNotSupported",
      'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"')),
    ({"containers": [_ctr(volumeMounts=[{"name": "missing", "mountPath": "/x"}])]},
     ("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound",
      'Not found: "missing"')),
    ({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]},
     ("spec.volumes[1].name", "FieldValueDuplicate", 'Duplicate value: "v"')),
    ({"volumes": [{"name": "v", "secret": {}}]},
     ("spec.volumes[0].secret.secretName", "FieldValueRequired", "Required value")),
    ({"containers": [_ctr(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})]},
     ("spec.containers[0].resources.requests", "FieldValueInvalid",
      'Invalid value: "2": must be less than or equal to cpu limit of 1')),
    ({"containers": [_ctr(resources={"requests": {"memory": "lots"}})]},
     ("spec.containers[0].resources.requests[memory]", "FieldValueInvalid",
      'Invalid value: "lots": quantities must match the regular expression '
      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")),
    ({"containers": [_ctr(resources={"requests": {"gpu": "1"}})]},
     ("spec.containers[0].resources.requests[gpu]", "FieldValueInvalid",
      'Invalid value: "gpu": must be a standard resource for containers')),
    ({"containers": [_ctr(env=[{"name": "A=B", "value": "1"}])]},
     ("spec.containers[0].env[0].name", "FieldValueInvalid",
      'Invalid value: "A=B": a valid environment variable name must consist only of printable '
      "ASCII characters other than '='")),
    ({"containers": [_ctr(env=[{"name": "A", "valueFrom": {}}])]},
     ("spec.containers[0].env[0].valueFrom", "FieldValueInvalid",
      'Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
      "`configMapKeyRef` or `secretKeyRef`")),
    ({"containers": [_ctr(livenessProbe={"exec": {"command": ["x"]},
                                         "successThreshold": 2})]},
     ("spec.containers[0].livenessProbe.successThreshold", "FieldValueInvalid",
      "Invalid value: 2: must be 1")),
    ({"containers": [_ctr(readinessProbe={"periodSeconds": 5})]},
     ("spec.containers[0].readinessProbe", "FieldValueRequired",
      "Required value: must specify a handler type")),
    ({"initContainers": [_ctr(name="init", livenessProbe={"exec": {"command": ["x"]}})]},
     ("spec.initContainers[0].livenessProbe", "FieldValueForbidden",
      "Forbidden: may not be set for init containers without restartPolicy=Always")),
    ({"tolerations": [{"operator": "Equal", "value": "x"}]},
     ("spec.tolerations[0].operator", "FieldValueInvalid",
      'Invalid value: "Equal": operator must be Exists when `key` is empty, which means '
      '"match all values and all keys"')),
    ({"activeDeadlineSeconds": 0},
     ("spec.activeDeadlineSeconds", "FieldValueInvalid",
      "Invalid value: 0: must be between 1 and 2147483647, inclusive")),
])
def test_bad_pods(spec: dict[str, Any], expected: tuple[str, str, str]) -> None:
    assert _causes("Pod", _pod(**spec)) == [expected]


def _running_pod() -> dict[str, Any]:
    pod = _pod(containers=[_ctr()], tolerations=[{"key": "k", "operator": "Exists"}])
    pod["metadata"]["resourceVersion"] = "1"
    apply_defaults(_kind("Pod"), pod)
    return pod


def _update(new: dict[str, Any], old: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c.get("field", ""), c["reason"], c["message"])
            for c in validate_update(_kind("Pod"), new, old)]


def test_pod_update_allows_image_deadline_and_added_tolerations() -> None:
    old = _running_pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.27"
    new["spec"]["activeDeadlineSeconds"] = 60
    new["spec"]["tolerations"].append({"key": "other", "operator": "Exists"})
    assert _update(new, old) == []


def test_pod_update_rejects_other_spec_changes() -> None:
    old = _running_pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["ports"] = [{"containerPort": 81, "protocol": "TCP"}]
    [(path, reason, message)] = _update(new, old)
    assert (path, reason) == ("spec", "FieldValueForbidden")
    assert message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to "
        "be set to 1 if it was previously negative)")


def test_pod_update_rejects_removed_toleration_and_longer_deadline() -> None:
    old = _running_pod()
    old["spec"]["activeDeadlineSeconds"] = 30
    new = copy.deepcopy(old)
    new["spec"]["tolerations"] = []
    new["spec"]["activeDeadlineSeconds"] = 60
    got = _update(new, old)
    assert ("spec.activeDeadlineSeconds", "FieldValueInvalid",
            "Invalid value: 60: must be less than or equal to previous value") in got


def test_pod_template_labels_path() -> None:
    tmpl = {"metadata": {"labels": {"app": "-x"}},
            "spec": {"containers": [_ctr()], "restartPolicy": "Always",
                     "dnsPolicy": "ClusterFirst"}}
    apply_defaults(_kind("Pod"), {"spec": tmpl["spec"]})
    got = validate_pod_template_spec(tmpl, "spec.template")
    assert [c["field"] for c in got] == ["spec.template.labels"]


def _svc(**spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}


@pytest.mark.parametrize(("spec", "expected"), [
    ({}, []),
    ({"clusterIP": "None"}, []),
    ({"type": "ExternalName", "externalName": "example.com", "ports": []}, []),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}, []),
    ({"ports": []}, [("spec.ports", "FieldValueRequired", "Required value")]),
    ({"type": "Magic"}, [("spec.type", "FieldValueNotSupported",
                          'Unsupported value: "Magic": supported values: "ClusterIP", '
                          '"ExternalName", "LoadBalancer", "NodePort"')]),
    ({"ports": [{"port": 80, "nodePort": 30080}]},
     [("spec.ports[0].nodePort", "FieldValueForbidden",
       "Forbidden: may not be used when `type` is 'ClusterIP'")]),
    ({"ports": [{"port": 80}, {"port": 81}]},
     [("spec.ports[0].name", "FieldValueRequired", "Required value"),
      ("spec.ports[1].name", "FieldValueRequired", "Required value")]),
    ({"clusterIP": "10.0.0.300"},
     [("spec.clusterIPs[0]", "FieldValueInvalid",
       'Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or '
       '2001:db8::ffff)')]),
    ({"type": "LoadBalancer", "clusterIP": "None"},
     [("spec.clusterIPs[0]", "FieldValueInvalid",
       "Invalid value: \"None\": may not be set to 'None' for LoadBalancer services")]),
])
def test_services(spec: dict[str, Any], expected: list[Any]) -> None:
    assert _causes("Service", _svc(**spec)) == expected


def test_service_cluster_ip_is_immutable() -> None:
    old = _svc(clusterIP="10.96.0.10")
    apply_defaults(_kind("Service"), old)
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.11"
    new["spec"]["clusterIPs"] = ["10.96.0.11"]
    got = validate_update(_kind("Service"), new, old)
    assert {"field": "spec.clusterIPs[0]", "reason": "FieldValueInvalid",
            "message": 'Invalid value: "10.96.0.11": may not change once set'} in got


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_config_map_keys_size_and_immutability() -> None:
    assert _causes("ConfigMap", {"metadata": {"name": "c", "namespace": "d"},
                                 "data": {"a b": "x"}}) == [
        ("data[a b]", "FieldValueInvalid",
         "Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, "
         "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
         "validation is '[-._a-zA-Z0-9]+')")]
    big = {"metadata": {"name": "c", "namespace": "d"}, "data": {"k": "x" * (1024 * 1024 + 1)}}
    assert _causes("ConfigMap", big) == [
        ("", "FieldValueTooLong", "Too long: may not be more than 1048576 bytes")]
    old = {"metadata": {"name": "c", "namespace": "d", "resourceVersion": "1"},
           "data": {"k": "1"}, "immutable": True}
    new = {**old, "data": {"k": "2"}}
    got = validate_update(_kind("ConfigMap"), new, old)
    assert got == [{"reason": "FieldValueForbidden", "field": "data",
                    "message": "Forbidden: field is immutable when `immutable` is set"}]


@pytest.mark.parametrize(("secret", "expected"), [
    ({"data": {"a": _b64("x")}}, []),
    ({"type": "kubernetes.io/tls", "data": {"tls.crt": _b64("c")}},
     [("data[tls.key]", "FieldValueRequired", "Required value")]),
    ({"type": "kubernetes.io/basic-auth"},
     [("data[username]", "FieldValueRequired", "Required value"),
      ("data[password]", "FieldValueRequired", "Required value")]),
    ({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": _b64("{}")}}, []),
    ({"type": "kubernetes.io/service-account-token"},
     [("metadata.annotations[kubernetes.io/service-account.name]", "FieldValueRequired",
       "Required value")]),
    ({"data": {"a": "!!!"}},
     [("data[a]", "FieldValueInvalid",
       'Invalid value: "<secret contents redacted>": illegal base64 data at input byte 0')]),
])
def test_secrets(secret: dict[str, Any], expected: list[Any]) -> None:
    secret["metadata"] = {"name": "s", "namespace": "d"}
    assert _causes("Secret", secret) == expected


def test_secret_type_is_immutable() -> None:
    old = {"metadata": {"name": "s", "namespace": "d", "resourceVersion": "1"},
           "type": "Opaque"}
    new = {**old, "type": "kubernetes.io/basic-auth", "data": {"username": _b64("u")}}
    got = validate_update(_kind("Secret"), new, old)
    assert {"field": "type", "reason": "FieldValueInvalid",
            "message": 'Invalid value: "kubernetes.io/basic-auth": field is immutable'} in got


def test_replication_controller_selector_must_match_template() -> None:
    rc = {"metadata": {"name": "r", "namespace": "d"},
          "spec": {"selector": {"app": "a"}, "replicas": -1, "template": {
              "metadata": {"labels": {"app": "b"}},
              "spec": {"containers": [_ctr()]}}}}
    got = _causes("ReplicationController", rc)
    assert ("spec.replicas", "FieldValueInvalid",
            "Invalid value: -1: must be greater than or equal to 0") in got
    assert ("spec.template.metadata.labels", "FieldValueInvalid",
            'Invalid value: {"app":"b"}: `selector` does not match template `labels`') in got


def test_node_taints_and_update_rules() -> None:
    node = {"metadata": {"name": "n1"}, "spec": {"taints": [
        {"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "Sometimes"}]}}
    got = _causes("Node", node)
    assert got == [("metadata.taints[1].effect", "FieldValueNotSupported",
                    'Unsupported value: "Sometimes": supported values: "NoSchedule", '
                    '"PreferNoSchedule", "NoExecute"')]
    old = {"metadata": {"name": "n1", "resourceVersion": "1"},
           "spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"]}}
    new = copy.deepcopy(old)
    new["spec"]["unschedulable"] = True
    assert validate_update(_kind("Node"), new, old) == []
    new["spec"]["podCIDRs"] = ["10.1.0.0/24"]
    assert [c["field"] for c in validate_update(_kind("Node"), new, old)] == ["spec.podCIDRs"]


def test_endpoints() -> None:
    ep = {"metadata": {"name": "e", "namespace": "d"}, "subsets": [
        {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80}]}, {"ports": []}]}
    assert _causes("Endpoints", ep) == [
        ("subsets[0].addresses[0].ip", "FieldValueInvalid",
         'Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)'),
        ("subsets[1]", "FieldValueRequired",
         "Required value: must specify `addresses` or `notReadyAddresses`")]


def test_persistent_volume_and_claim() -> None:
    pv = {"metadata": {"name": "pv"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                               "capacity": {"storage": "0"},
                                               "hostPath": {"path": "/d"}}}
    assert _causes("PersistentVolume", pv) == [
        ("spec.capacity[storage]", "FieldValueInvalid", 'Invalid value: "0": must be greater '
                                                        "than zero")]
    pvc = {"metadata": {"name": "c", "namespace": "d"}, "spec": {"resources": {}}}
    assert _causes("PersistentVolumeClaim", pvc) == [
        ("spec.accessModes", "FieldValueRequired",
         "Required value: at least 1 access mode is required"),
        ("spec.resources[storage]", "FieldValueRequired", "Required value")]
    good = {"metadata": {"name": "c", "namespace": "d", "resourceVersion": "1"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}
    apply_defaults(_kind("PersistentVolumeClaim"), good)
    bigger = copy.deepcopy(good)
    bigger["spec"]["storageClassName"] = "fast"
    got = validate_update(_kind("PersistentVolumeClaim"), bigger, good)
    assert [c["field"] for c in got] == ["spec"]


def test_resource_quota_and_limit_range() -> None:
    rq = {"metadata": {"name": "q", "namespace": "d"},
          "spec": {"hard": {"pods": "1.5", "widgets": "1"}}}
    assert _causes("ResourceQuota", rq) == [
        ("spec.hard[pods]", "FieldValueInvalid", 'Invalid value: "1.5": must be an integer'),
        ("spec.hard[widgets]", "FieldValueInvalid",
         'Invalid value: "widgets": must be a standard resource for quota')]
    lr = {"metadata": {"name": "l", "namespace": "d"}, "spec": {"limits": [
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}}
    got = _causes("LimitRange", lr)
    assert ("spec.limits[0].min[cpu]", "FieldValueInvalid",
            'Invalid value: "2": min value 2 is greater than max value 1') in got


def test_status_updates() -> None:
    rc = {"metadata": {"name": "r", "namespace": "d", "resourceVersion": "1"},
          "status": {"replicas": 1, "readyReplicas": 2}}
    got = validate_status_update(_kind("ReplicationController"), rc, rc)
    assert {"field": "status.readyReplicas", "reason": "FieldValueInvalid",
            "message": "Invalid value: 2: cannot be greater than status.replicas"} in got


def test_namespace_finalizers_and_events() -> None:
    ns = {"metadata": {"name": "team"}, "spec": {"finalizers": ["custom"]}}
    assert _causes("Namespace", ns) == [
        ("spec.finalizers", "FieldValueInvalid", 'Invalid value: "custom": name is neither a '
                                                 "standard finalizer name nor is it fully "
                                                 "qualified")]
    ev = {"metadata": {"name": "e", "namespace": "a"}, "involvedObject": {"namespace": "b"}}
    assert _causes("Event", ev) == [
        ("involvedObject.namespace", "FieldValueInvalid",
         'Invalid value: "b": does not match event.namespace')]
