"""apps/v1 defaults and validation, as a user of kubectl would meet them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from kubeling.api.defaults import apply_defaults
from kubeling.api.kinds import by_kind
from kubeling.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def _template(labels: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def workload(kind: str, **spec: Any) -> Obj:
    body: Obj = {"selector": {"matchLabels": {"app": "web"}}, "template": _template()}
    if kind == "StatefulSet":
        body["serviceName"] = "web"
    body.update(spec)
    obj = {"apiVersion": "apps/v1", "kind": kind,
           "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
           "spec": body}
    apply_defaults(by_kind("apps", kind), obj)  # type: ignore[arg-type]
    return obj


def create_causes(obj: Obj) -> list[tuple[str, str, str]]:
    kind = by_kind("apps", obj["kind"])
    assert kind is not None
    return [(c.get("field", ""), c["reason"], c["message"]) for c in validate_create(kind, obj)]


def update_causes(new: Obj, old: Obj) -> list[tuple[str, str, str]]:
    kind = by_kind("apps", new["kind"])
    assert kind is not None
    return [(c.get("field", ""), c["reason"], c["message"])
            for c in validate_update(kind, new, old)]


def test_deployment_defaults() -> None:
    spec = workload("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_recreate_gets_no_rolling_update() -> None:
    spec = workload("Deployment", strategy={"type": "Recreate"})["spec"]
    assert spec["strategy"] == {"type": "Recreate"}


def test_other_defaults() -> None:
    assert workload("ReplicaSet")["spec"]["replicas"] == 1
    sts = workload("StatefulSet")["spec"]
    assert sts["podManagementPolicy"] == "OrderedReady"
    assert sts["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                           "whenScaled": "Retain"}
    assert (sts["replicas"], sts["revisionHistoryLimit"]) == (1, 10)
    ds = workload("DaemonSet")["spec"]
    assert ds["updateStrategy"] == {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["revisionHistoryLimit"] == 10


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"])
def test_valid_workloads_pass(kind: str) -> None:
    assert create_causes(workload(kind)) == []


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        *parents, last = path.split(".")
        node = obj
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return apply


DEPLOYMENT_CASES = [
    ("no selector", _set("spec.selector", None),
     ("spec.selector", "FieldValueRequired", "Required value")),
    ("selector mismatch", _set("spec.selector", {"matchLabels": {"app": "other"}}),
     ("spec.template.metadata.labels", "FieldValueInvalid",
      'Invalid value: {"app":"web"}: `selector` does not match template `labels`')),
    ("selector expression mismatch",
     _set("spec.selector", {"matchExpressions": [
         {"key": "app", "operator": "NotIn", "values": ["web"]}]}),
     ("spec.template.metadata.labels", "FieldValueInvalid",
      'Invalid value: {"app":"web"}: `selector` does not match template `labels`')),
    ("empty selector", _set("spec.selector", {}),
     ("spec.selector", "FieldValueInvalid",
      "Invalid value: {}: empty selector is invalid for deployment")),
    ("negative replicas", _set("spec.replicas", -1),
     ("spec.replicas", "FieldValueInvalid",
      "Invalid value: -1: must be greater than or equal to 0")),
    ("bad strategy", _set("spec.strategy", {"type": "Blue"}),
     ("spec.strategy", "FieldValueNotSupported",
      'Unsupported value: {"type":"Blue"}: supported values: "Recreate", "RollingUpdate"')),
    ("recreate with rolling", _set("spec.strategy.type", "Recreate"),
     ("spec.strategy.rollingUpdate", "FieldValueForbidden",
      "Forbidden: may not be specified when strategy `type` is 'Recreate'")),
    ("both zero", _set("spec.strategy.rollingUpdate", {"maxSurge": 0, "maxUnavailable": "0%"}),
     ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid",
      'Invalid value: "0%": may not be 0 when `maxSurge` is 0')),
    ("bad percent", _set("spec.strategy.rollingUpdate.maxSurge", "half"),
     ("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid",
      'Invalid value: "half": a valid percent string must be a numeric string followed by '
      "an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")),
    ("over 100%", _set("spec.strategy.rollingUpdate.maxUnavailable", "150%"),
     ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid",
      'Invalid value: "150%": must not be greater than 100%')),
    ("negative surge", _set("spec.strategy.rollingUpdate.maxSurge", -2),
     ("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid",
      "Invalid value: -2: must be greater than or equal to 0")),
    ("negative minReadySeconds", _set("spec.minReadySeconds", -5),
     ("spec.minReadySeconds", "FieldValueInvalid",
      "Invalid value: -5: must be greater than or equal to 0")),
    ("deadline below minReady", _set("spec.minReadySeconds", 600),
     ("spec.progressDeadlineSeconds", "FieldValueInvalid",
      "Invalid value: 600: must be greater than minReadySeconds")),
    ("restart policy", _set("spec.template.spec.restartPolicy", "Never"),
     ("spec.template.spec.restartPolicy", "FieldValueNotSupported",
      'Unsupported value: "Never": supported values: "Always"')),
    ("active deadline", _set("spec.template.spec.activeDeadlineSeconds", 5),
     ("spec.template.spec.activeDeadlineSeconds", "FieldValueForbidden",
      "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported")),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in DEPLOYMENT_CASES],
                         ids=[c[0] for c in DEPLOYMENT_CASES])
def test_deployment_rejects(mutate: Callable[[Obj], None], expected: tuple[str, str, str]
                            ) -> None:
    obj = workload("Deployment")
    mutate(obj)
    assert expected in create_causes(obj)


def test_bad_percent_message_shape() -> None:
    obj = workload("Deployment")
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = "half"
    causes = create_causes(obj)
    assert [c[0] for c in causes] == ["spec.strategy.rollingUpdate.maxSurge"]
    assert causes[0][2].startswith('Invalid value: "half": a valid percent string must be')


def test_deployment_selector_is_immutable() -> None:
    old = workload("Deployment")
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "a"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "a"
    assert update_causes(new, old) == [
        ("spec.selector", "FieldValueInvalid",
         'Invalid value: {"matchLabels":{"app":"web","tier":"a"}}: field is immutable')]


def test_deployment_template_may_change() -> None:
    old = workload("Deployment")
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    new["spec"]["replicas"] = 5
    assert update_causes(new, old) == []


def test_replica_set_selector_is_immutable() -> None:
    old = workload("ReplicaSet")
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchExpressions": [
        {"key": "app", "operator": "Exists"}]}
    assert [c[0] for c in update_causes(new, old)] == ["spec.selector"]


def test_stateful_set_rules() -> None:
    obj = workload("StatefulSet", podManagementPolicy="Sometimes")
    obj["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = "Keep"
    obj["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = -1
    obj["metadata"]["name"] = "web.v1"
    causes = create_causes(obj)
    assert ("spec.podManagementPolicy", "FieldValueInvalid",
            "Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'") in causes
    assert ("spec.persistentVolumeClaimRetentionPolicy.whenScaled", "FieldValueNotSupported",
            'Unsupported value: "Keep": supported values: "Retain", "Delete"') in causes
    assert ("spec.updateStrategy.rollingUpdate.partition", "FieldValueInvalid",
            "Invalid value: -1: must be greater than or equal to 0") in causes
    assert ("metadata.name", "FieldValueInvalid",
            'Invalid value: "web.v1": must not contain dots') in causes


def test_stateful_set_update_allows_only_some_fields() -> None:
    old = workload("StatefulSet")
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 3
    new["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert update_causes(new, old) == []
    new["spec"]["serviceName"] = "other"
    assert update_causes(new, old) == [(
        "spec", "FieldValueForbidden",
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
        "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden")]


def test_daemon_set_rolling_update_rules() -> None:
    obj = workload("DaemonSet")
    obj["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 1, "maxSurge": 1}
    assert create_causes(obj) == [(
        "spec.updateStrategy.rollingUpdate.maxSurge", "FieldValueInvalid",
        "Invalid value: 1: may not be set when maxUnavailable is non-zero")]
    obj["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": 0}
    assert create_causes(obj) == [(
        "spec.updateStrategy.rollingUpdate.maxUnavailable", "FieldValueRequired",
        "Required value: cannot be 0 when maxSurge is 0")]


def test_daemon_set_selector_mismatch() -> None:
    obj = workload("DaemonSet", selector={"matchLabels": {"app": "x"}})
    assert create_causes(obj) == [(
        "spec.template.metadata.labels", "FieldValueInvalid",
        'Invalid value: {"app":"web"}: `selector` does not match template `labels`')]


def test_controller_revision() -> None:
    kind = by_kind("apps", "ControllerRevision")
    assert kind is not None
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
           "metadata": {"name": "web-1", "namespace": "default", "resourceVersion": "1"},
           "revision": 1}
    assert create_causes(rev) == [("data", "FieldValueRequired",
                                   "Required value: data is mandatory")]
    rev["data"] = {"spec": {}}
    changed = copy.deepcopy(rev)
    changed["data"] = {"spec": {"x": 1}}
    changed["revision"] = 2
    assert [c[0] for c in update_causes(changed, rev)] == ["data", "revision"]
