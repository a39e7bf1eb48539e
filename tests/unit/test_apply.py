"""Server-side apply: merge, pruning, conflicts and forced takeover."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubeling.api.apply import apply_config, track_update
from kubeling.api.errors import StatusError
from kubeling.api.schema import kind_schema

DEPLOY = kind_schema("apps", "v1", "Deployment")
CM = kind_schema("", "v1", "ConfigMap")
T0, T1, T2, T3 = (f"2025-01-01T00:00:0{i}Z" for i in range(4))


def deployment(replicas: int = 2, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
            },
        },
    }


def apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str = "kubectl",
          *, force: bool = False, now: str = T1, schema: Any = DEPLOY) -> dict[str, Any]:
    version = config.get("apiVersion", "v1")
    return apply_config(live, config, manager=manager, force=force, schema=schema,
                        api_version=version, now=now)


def update(old: dict[str, Any], change: Any, manager: str, *, now: str = T2,
           subresource: str = "") -> dict[str, Any]:
    new = copy.deepcopy(old)
    change(new)
    track_update(old, new, manager=manager, schema=DEPLOY, api_version="apps/v1",
                 subresource=subresource, now=now)
    return new


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def set_replicas(n: int) -> Any:
    def change(o: dict[str, Any]) -> None:
        o["spec"]["replicas"] = n
    return change


def test_first_apply_creates_the_object_and_records_the_applier() -> None:
    obj = apply(None, deployment(), now=T0)
    assert obj["spec"] == deployment()["spec"]
    assert obj["metadata"]["labels"] == {"app": "web"}
    (entry,) = obj["metadata"]["managedFields"]
    assert entry == {
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}
                        }
                    },
                },
            },
        },
    }


def test_apply_conflicts_with_a_scale_by_another_manager() -> None:
    live = apply(None, deployment(replicas=2), now=T0)
    scaled = update(live, set_replicas(5), "kubectl-edit")
    edit = managers(scaled)[("kubectl-edit", "Update")]
    assert edit["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    # The applier lost .spec.replicas to the editor.
    assert "f:replicas" not in managers(scaled)[("kubectl", "Apply")]["fieldsV1"]["f:spec"]

    with pytest.raises(StatusError) as err:
        apply(scaled, deployment(replicas=3))
    status = err.value.to_status()
    assert status["code"] == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-edit" using apps/v1',
            "field": ".spec.replicas",
        }
    ]


def test_applying_the_live_value_is_not_a_conflict_and_shares_ownership() -> None:
    live = apply(None, deployment(replicas=2), now=T0)
    scaled = update(live, set_replicas(5), "kubectl-edit")
    shared = apply(scaled, deployment(replicas=5))
    assert shared["spec"]["replicas"] == 5
    m = managers(shared)
    assert "f:replicas" in m[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    assert m[("kubectl-edit", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}


def test_force_takes_the_fields_over() -> None:
    live = apply(None, deployment(replicas=2), now=T0)
    scaled = update(live, set_replicas(5), "kubectl-edit")
    forced = apply(scaled, deployment(replicas=3), force=True, now=T3)
    assert forced["spec"]["replicas"] == 3
    m = managers(forced)
    assert ("kubectl-edit", "Update") not in m  # its only field moved away
    assert "f:replicas" in m[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    assert m[("kubectl", "Apply")]["time"] == T3


def test_conflict_names_the_subresource_of_the_other_manager() -> None:
    live = apply(None, deployment(replicas=2), now=T0)
    scaled = update(live, set_replicas(4), "kubectl", subresource="scale")
    with pytest.raises(StatusError) as err:
        apply(scaled, deployment(replicas=3))
    assert err.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" '
        "using apps/v1: .spec.replicas"
    )


def test_several_conflicts_are_listed_per_manager() -> None:
    live = apply(None, deployment(replicas=2), now=T0)

    def edit(o: dict[str, Any]) -> None:
        o["spec"]["replicas"] = 5
        o["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"

    edited = update(live, edit, "kubectl-edit")
    config = deployment(replicas=3)
    config["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    with pytest.raises(StatusError) as err:
        apply(edited, config)
    assert err.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image'
    )
    assert [c.get("field") for c in err.value.causes] == [
        ".spec.replicas",
        '.spec.template.spec.containers[name="nginx"].image',
    ]


def test_a_label_no_longer_applied_is_removed() -> None:
    live = apply(None, deployment(tier="frontend"), now=T0)
    assert live["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
    again = apply(live, deployment())
    assert again["metadata"]["labels"] == {"app": "web"}
    labels = managers(again)[("kubectl", "Apply")]["fieldsV1"]["f:metadata"]["f:labels"]
    assert labels == {"f:app": {}}


def test_a_label_another_manager_also_owns_stays() -> None:
    live = apply(None, deployment(tier="frontend"), now=T0)
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "labels": {"tier": "frontend"}}}
    both = apply(live, other, "team-b")
    kept = apply(both, deployment())
    assert kept["metadata"]["labels"] == {"app": "web", "tier": "frontend"}


def test_a_label_added_by_update_survives_the_next_apply() -> None:
    live = apply(None, deployment(), now=T0)

    def label(o: dict[str, Any]) -> None:
        o["metadata"]["labels"]["owner"] = "ops"

    labelled = update(live, label, "kubectl-label")
    again = apply(labelled, deployment(replicas=2))
    assert again["metadata"]["labels"] == {"app": "web", "owner": "ops"}


def test_containers_merge_by_name_across_two_appliers() -> None:
    live = apply(None, deployment(), now=T0)
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "log", "image": "busybox"}]}}},
    }
    both = apply(live, sidecar, "sidecar-injector")
    assert [c["name"] for c in both["spec"]["template"]["spec"]["containers"]] == ["nginx", "log"]

    bumped = deployment()
    bumped["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    again = apply(both, bumped)
    assert again["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1.26"},
        {"name": "log", "image": "busybox"},
    ]

    sidecar["spec"]["template"]["spec"]["containers"] = []
    dropped = apply(again, sidecar, "sidecar-injector")
    assert dropped["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1.26"}
    ]
    assert ("sidecar-injector", "Apply") not in managers(dropped)


def test_ports_keyed_by_port_and_defaulted_protocol() -> None:
    config = deployment()
    container = config["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"containerPort": 80}]
    obj = apply(None, config, now=T0)
    fields = managers(obj)[("kubectl", "Apply")]["fieldsV1"]
    item = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert item["f:ports"] == {
        'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}
    }


def test_an_item_without_its_key_is_refused() -> None:
    config = deployment()
    del config["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(StatusError) as err:
        apply(None, config)
    assert err.value.code == 500
    assert 'omits key field "name"' in err.value.message
    assert ".spec.template.spec.containers: element 0" in err.value.message


def test_finalizers_are_a_set_unioned_across_appliers() -> None:
    def cm(*finalizers: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "finalizers": list(finalizers)}}

    one = apply(None, cm("a.example/x"), "one", schema=CM, now=T0)
    two = apply(one, cm("b.example/y"), "two", schema=CM)
    assert two["metadata"]["finalizers"] == ["a.example/x", "b.example/y"]
    assert managers(two)[("two", "Apply")]["fieldsV1"] == {
        "f:metadata": {"f:finalizers": {'v:"b.example/y"': {}}}
    }
    three = apply(two, cm(), "one", schema=CM, now=T2)
    assert three["metadata"]["finalizers"] == ["b.example/y"]


def test_atomic_selector_is_replaced_whole() -> None:
    live = apply(None, deployment(), now=T0)
    config = deployment()
    config["spec"]["selector"] = {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web"]}]}
    again = apply(live, config)
    assert again["spec"]["selector"] == config["spec"]["selector"]


def test_null_in_the_config_removes_the_field() -> None:
    live = apply(None, deployment(), now=T0)
    config = deployment()
    config["spec"]["replicas"] = None
    again = apply(live, config)
    assert "replicas" not in again["spec"]


def test_unchanged_apply_keeps_the_time() -> None:
    live = apply(None, deployment(), now=T0)
    again = apply(live, deployment(), now=T3)
    assert again == live
    assert managers(again)[("kubectl", "Apply")]["time"] == T0


def test_an_untracked_object_belongs_to_before_first_apply() -> None:
    live = deployment(replicas=2)
    live["metadata"]["resourceVersion"] = "7"
    with pytest.raises(StatusError) as err:
        apply(live, deployment(replicas=3))
    assert 'conflict with "before-first-apply" using apps/v1' in err.value.message
    same = apply(live, deployment(replicas=2))
    assert set(managers(same)) == {("kubectl", "Apply"), ("before-first-apply", "Update")}


def test_managed_fields_in_the_config_are_refused() -> None:
    config = deployment()
    config["metadata"]["managedFields"] = []
    with pytest.raises(StatusError) as err:
        apply(None, config)
    assert (err.value.code, err.value.message) == (400, "metadata.managedFields must be nil")


def test_identity_fields_are_never_owned() -> None:
    obj = apply(None, deployment(), now=T0)
    meta = managers(obj)[("kubectl", "Apply")]["fieldsV1"]["f:metadata"]
    assert set(meta) == {"f:labels"}


def test_ignored_paths_are_merged_but_not_owned() -> None:
    config = deployment()
    config["status"] = {"replicas": 9}
    obj = apply_config(None, config, manager="kubectl", force=False, schema=DEPLOY,
                       api_version="apps/v1", now=T0, ignored=[("f:status",)])
    assert "f:status" not in managers(obj)[("kubectl", "Apply")]["fieldsV1"]


def test_kubectl_apply_keeps_the_client_side_annotation_in_step() -> None:
    key = "kubectl.kubernetes.io/last-applied-configuration"
    live = apply(None, deployment(), now=T0)
    live["metadata"]["annotations"] = {key: "{}"}
    again = apply(live, deployment(replicas=4))
    text = again["metadata"]["annotations"][key]
    assert text.endswith("\n")
    assert json.loads(text) == deployment(replicas=4)
    other = apply(live, deployment(replicas=2), "my-tool")
    assert other["metadata"]["annotations"][key] == "{}"


def test_service_selector_is_atomic_and_ports_merge_on_port_and_protocol() -> None:
    svc_schema = kind_schema("", "v1", "Service")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "a", "tier": "x"},
                    "ports": [{"port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP"}]}}
    live = apply(None, svc, schema=svc_schema, now=T0)
    fields = managers(live)[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    assert fields["f:selector"] == {}
    assert set(fields["f:ports"]) == {
        'k:{"port":80,"protocol":"TCP"}', 'k:{"port":53,"protocol":"UDP"}'
    }
    svc["spec"]["selector"] = {"app": "b"}
    svc["spec"]["ports"] = [{"port": 53, "protocol": "UDP", "name": "dns"}]
    again = apply(live, svc, schema=svc_schema)
    assert again["spec"] == {"selector": {"app": "b"},
                             "ports": [{"port": 53, "protocol": "UDP", "name": "dns"}]}
