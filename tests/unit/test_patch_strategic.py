"""Strategic merge patch with the real merge keys, and the patches kubectl really sends."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeling.api.errors import StatusError
from kubeling.api.patch import apply_merge_patch, apply_strategic_merge_patch
from kubeling.api.schema import Struct, kind_schema

POD = kind_schema("", "v1", "Pod")
DEPLOYMENT = kind_schema("apps", "v1", "Deployment")
SERVICE = kind_schema("", "v1", "Service")
CONFIGMAP = kind_schema("", "v1", "ConfigMap")


def smp(doc: dict[str, Any], patch: dict[str, Any], schema: Struct | None = POD) -> Any:
    return apply_strategic_merge_patch(doc, patch, schema)


def container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "labels": {"app": "web", "tier": "front"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "spec": {
            "containers": [
                container(
                    "web",
                    "nginx:1.25",
                    env=[{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "1"}],
                    ports=[{"containerPort": 80, "protocol": "TCP"}],
                    terminationMessagePath="/dev/termination-log",
                ),
                container("log", "busybox"),
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "nodeSelector": {"disk": "ssd", "zone": "a"},
        },
        "status": {
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            ]
        },
    }


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


def test_inputs_are_not_mutated() -> None:
    doc = pod()
    patch = {"spec": {"containers": [{"name": "web", "image": "nginx:2", "env": None}]}}
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    smp(doc, patch)
    assert doc == before_doc and patch == before_patch


def test_change_one_image_keeps_everything_else_of_the_container() -> None:
    out = smp(pod(), {"spec": {"containers": [{"name": "log", "image": "busybox:1.36"}]}})
    web, log = out["spec"]["containers"]
    assert log == container("log", "busybox:1.36")
    assert web == pod()["spec"]["containers"][0]


def test_a_new_container_without_set_element_order_goes_before_the_server_only_ones() -> None:
    out = smp(pod(), {"spec": {"containers": [container("sidecar", "envoy")]}})
    assert names(out["spec"]["containers"]) == ["sidecar", "web", "log"]


def test_patch_order_is_kept_for_items_the_patch_names() -> None:
    patch = {"spec": {"containers": [{"name": "log", "image": "b"}, container("z", "z")]}}
    assert names(smp(pod(), patch)["spec"]["containers"]) == ["web", "log", "z"]


def test_delete_a_container_with_patch_delete() -> None:
    out = smp(pod(), {"spec": {"containers": [{"$patch": "delete", "name": "log"}]}})
    assert names(out["spec"]["containers"]) == ["web"]


def test_kubectl_apply_changes_an_image_adds_one_container_and_deletes_another() -> None:
    live = pod()
    # kubectl apply: last-applied had web+log, the new file has web (new image) + cache.
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "cache"}],
            "containers": [
                {"image": "nginx:1.26", "name": "web"},
                {"image": "redis:7", "name": "cache"},
                {"$patch": "delete", "name": "log"},
            ],
        },
    }
    out = smp(live, patch)
    web, cache = out["spec"]["containers"]
    assert web["image"] == "nginx:1.26"
    assert web["terminationMessagePath"] == "/dev/termination-log"
    assert cache == container("cache", "redis:7")
    assert "kubectl.kubernetes.io/last-applied-configuration" in out["metadata"]["annotations"]


def test_set_element_order_reorders_the_merged_list() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "log"}, {"name": "web"}]}}
    assert names(smp(pod(), patch)["spec"]["containers"]) == ["log", "web"]


def test_set_element_order_keeps_server_only_items_in_their_place() -> None:
    live = pod()
    live["spec"]["containers"].insert(0, container("injected", "proxy"))
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}, {"name": "new"}],
            "containers": [container("new", "n")],
        }
    }
    assert names(smp(live, patch)["spec"]["containers"]) == ["injected", "web", "log", "new"]


def test_kubectl_edit_of_one_env_var_merges_env_by_name() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [
                {
                    "$setElementOrder/env": [{"name": "MODE"}, {"name": "LEVEL"}, {"name": "NEW"}],
                    "env": [{"name": "LEVEL", "value": "2"}, {"name": "NEW", "value": "x"}],
                    "name": "web",
                }
            ],
        }
    }
    env = smp(pod(), patch)["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "MODE", "value": "prod"},
        {"name": "LEVEL", "value": "2"},
        {"name": "NEW", "value": "x"},
    ]


def test_env_var_deleted_by_name_and_value_from_switched_to_value() -> None:
    live = pod()
    live["spec"]["containers"][0]["env"][0] = {
        "name": "MODE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "env": [
                        {"name": "MODE", "value": "dev", "valueFrom": None},
                        {"$patch": "delete", "name": "LEVEL"},
                    ],
                }
            ]
        }
    }
    env = smp(live, patch)["spec"]["containers"][0]["env"]
    assert env == [{"name": "MODE", "value": "dev"}]


def test_container_ports_merge_by_container_port() -> None:
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "ports": [
                        {"containerPort": 80, "name": "http"},
                        {"containerPort": 443, "protocol": "TCP"},
                    ],
                }
            ]
        }
    }
    ports = smp(pod(), patch)["spec"]["containers"][0]["ports"]
    assert ports == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
        {"containerPort": 443, "protocol": "TCP"},
    ]


def test_volume_switched_from_empty_dir_to_config_map_with_retain_keys() -> None:
    patch = {
        "spec": {
            "$setElementOrder/volumes": [{"name": "data"}],
            "volumes": [
                {
                    "$retainKeys": ["configMap", "name"],
                    "configMap": {"name": "settings"},
                    "emptyDir": None,
                    "name": "data",
                }
            ],
        }
    }
    assert smp(pod(), patch)["spec"]["volumes"] == [
        {"name": "data", "configMap": {"name": "settings"}}
    ]


def test_retain_keys_clears_keys_the_patch_does_not_mention() -> None:
    patch = {
        "spec": {
            "volumes": [
                {"$retainKeys": ["hostPath", "name"], "name": "data", "hostPath": {"path": "/srv"}}
            ]
        }
    }
    assert smp(pod(), patch)["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/srv"}}]


def test_a_patch_key_outside_retain_keys_is_a_bad_request() -> None:
    patch = {"spec": {"volumes": [{"$retainKeys": ["name"], "name": "data", "emptyDir": {}}]}}
    with pytest.raises(StatusError) as err:
        smp(pod(), patch)
    assert (err.value.code, err.value.message) == (400, "invalid patch format of retainKeys")


def test_finalizers_are_a_union() -> None:
    out = smp(pod(), {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}})
    assert out["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]


def test_delete_from_primitive_list_removes_a_finalizer() -> None:
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}
    assert smp(pod(), patch)["metadata"]["finalizers"] == ["example.com/b"]


def test_kubectl_apply_removing_one_finalizer_and_adding_another() -> None:
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["example.com/b", "example.com/c"],
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "finalizers": ["example.com/c"],
        }
    }
    out = smp(pod(), patch)
    assert out["metadata"]["finalizers"] == ["example.com/b", "example.com/c"]


def test_pod_conditions_merge_by_type() -> None:
    patch = {
        "status": {
            "$setElementOrder/conditions": [
                {"type": "Initialized"},
                {"type": "Ready"},
                {"type": "PodScheduled"},
            ],
            "conditions": [
                {"type": "Ready", "status": "True", "reason": None},
                {"type": "PodScheduled", "status": "True"},
            ],
        }
    }
    assert smp(pod(), patch)["status"]["conditions"] == [
        {"type": "Initialized", "status": "True"},
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]


def test_service_ports_merge_by_port() -> None:
    svc = {
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
            ],
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
            "ports": [{"port": 443, "targetPort": 9443}],
        }
    }
    ports = smp(svc, patch, SERVICE)["spec"]["ports"]
    assert ports[0]["targetPort"] == 8080
    assert ports[1] == {"name": "https", "port": 443, "targetPort": 9443, "protocol": "TCP"}


def test_null_deletes_a_label() -> None:
    out = smp(pod(), {"metadata": {"labels": {"tier": None, "env": "prod"}}})
    assert out["metadata"]["labels"] == {"app": "web", "env": "prod"}


def test_patch_replace_on_a_map() -> None:
    out = smp(pod(), {"spec": {"nodeSelector": {"$patch": "replace", "disk": "hdd"}}})
    assert out["spec"]["nodeSelector"] == {"disk": "hdd"}


def test_patch_delete_on_a_map_empties_it() -> None:
    out = smp(pod(), {"metadata": {"labels": {"$patch": "delete"}}})
    assert out["metadata"]["labels"] == {}


def test_patch_replace_on_a_list() -> None:
    patch = {"spec": {"containers": [{"$patch": "replace"}, container("only", "x")]}}
    assert smp(pod(), patch)["spec"]["containers"] == [container("only", "x")]


def test_tolerations_are_atomic_and_replaced() -> None:
    patch = {"spec": {"tolerations": [{"key": "b", "operator": "Equal", "value": "1"}]}}
    out = smp(pod(), patch)
    assert out["spec"]["tolerations"] == [{"key": "b", "operator": "Equal", "value": "1"}]


def test_deployment_template_containers_merge_through_the_nested_schema() -> None:
    dep = {
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [container("a", "a:1"), container("b", "b:1")]}},
        }
    }
    patch = {
        "spec": {
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}},
        }
    }
    out = smp(dep, patch, DEPLOYMENT)
    assert out["spec"]["replicas"] == 3
    assert out["spec"]["template"]["spec"]["containers"] == [
        container("a", "a:1"),
        container("b", "b:2"),
    ]


def test_new_fields_lose_their_nulls_and_directives() -> None:
    live: dict[str, Any] = {"metadata": {"name": "x"}}
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "image": "i", "args": None}],
            "securityContext": {"runAsUser": None},
        }
    }
    assert smp(live, patch)["spec"] == {
        "containers": [{"name": "a", "image": "i"}],
        "securityContext": {},
    }


def test_without_a_schema_maps_merge_and_lists_are_replaced() -> None:
    cr = {"spec": {"size": 1, "items": [{"name": "a"}], "conf": {"x": 1, "y": 2}}}
    patch = {"spec": {"items": [{"name": "b"}], "conf": {"y": None, "z": 3}}}
    out = smp(cr, patch, None)
    assert out == {"spec": {"size": 1, "items": [{"name": "b"}], "conf": {"x": 1, "z": 3}}}


def test_an_unknown_field_merges_as_json() -> None:
    out = smp(pod(), {"spec": {"extra": {"list": [1]}}})
    assert out["spec"]["extra"] == {"list": [1]}


@pytest.mark.parametrize(
    ("patch", "code", "message"),
    [
        (
            {"metadata": {"labels": {"$patch": "merge"}}},
            500,
            "unknown patch type: merge in map: map[$patch:merge]",
        ),
        (
            {"spec": {"containers": [{"$patch": "merge", "name": "web"}]}},
            500,
            "merging lists cannot yet be specified in the patch",
        ),
        (
            {"spec": {"containers": [{"$patch": "remove", "name": "web"}]}},
            500,
            "unknown patch type: remove in map: map[$patch:remove name:web]",
        ),
        (
            {"spec": {"containers": [{"image": "x"}]}},
            500,
            "map: map[image:x] does not contain declared merge key: name",
        ),
        (
            {"spec": {"containers": [{"$patch": "delete", "image": "x"}]}},
            500,
            "map: map[$patch:delete image:x] does not contain declared merge key: name",
        ),
        (
            {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}},
            400,
            "invalid patch format of primitive list",
        ),
        (
            {"spec": {"$setElementOrder": [{"name": "web"}]}},
            400,
            "invalid patch format of setElementOrder list",
        ),
        (
            {"spec": {"volumes": [{"name": "data", "$retainKeys": "name"}]}},
            400,
            "invalid patch format of retainKeys",
        ),
        (
            {"metadata": {"finalizers": [["nested"]]}},
            500,
            "list element types are not identical: [[example.com/a example.com/b] [[nested]]]",
        ),
    ],
)
def test_bad_patches_get_the_answers_kube_apiserver_gives(
    patch: dict[str, Any], code: int, message: str
) -> None:
    with pytest.raises(StatusError) as err:
        smp(pod(), patch)
    assert (err.value.code, err.value.message) == (code, message)


def test_a_list_of_lists_is_the_generic_422() -> None:
    doc: dict[str, Any] = {"metadata": {"finalizers": []}}
    with pytest.raises(StatusError) as err:
        smp(doc, {"metadata": {"finalizers": [["nested"]]}})
    assert (err.value.code, err.value.reason) == (422, "Invalid")
    assert err.value.message == "the server rejected our request due to an error in our request"


def test_a_patch_list_out_of_set_element_order_is_refused() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [{"name": "log", "image": "l"}, {"name": "web", "image": "w"}],
        }
    }
    with pytest.raises(StatusError) as err:
        smp(pod(), patch)
    assert err.value.code == 500
    assert err.value.message.startswith("the order in patch list:")


def test_a_patch_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(StatusError) as err:
        apply_strategic_merge_patch(pod(), [1], POD)  # type: ignore[arg-type]
    assert err.value.code == 400


label_keys = st.text(alphabet="abcde", min_size=1, max_size=3)
label_maps = st.dictionaries(label_keys, st.text(alphabet="xyz", max_size=3), max_size=5)
label_patches = st.dictionaries(label_keys, st.none() | st.text(alphabet="xyz", max_size=3))


@given(label_maps, label_maps, label_patches, label_patches)
def test_with_only_map_changes_smp_equals_merge_patch(
    labels: dict, data: dict, labels_patch: dict, data_patch: dict
) -> None:
    doc = {"metadata": {"name": "c", "labels": labels}, "data": data}
    patch = {"metadata": {"labels": labels_patch}, "data": data_patch}
    assert smp(doc, patch, CONFIGMAP) == apply_merge_patch(doc, patch)


finalizer_lists = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True, max_size=5)


@given(finalizer_lists, finalizer_lists, finalizer_lists)
def test_finalizer_patches_are_set_union_and_set_difference(
    live: list, added: list, removed: list
) -> None:
    doc = {"metadata": {"finalizers": live}}
    out = smp(doc, {"metadata": {"finalizers": added}})["metadata"]["finalizers"]
    assert sorted(out) == sorted(set(live) | set(added))
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": removed}}
    out = smp(doc, patch)["metadata"]["finalizers"]
    assert out == [f for f in live if f not in removed]


container_names = st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4)


@given(container_names, container_names)
def test_apply_with_set_element_order_yields_exactly_the_configured_list(
    live_names: list, wanted: list
) -> None:
    live = {"spec": {"containers": [container(n, "old") for n in live_names]}}
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": n} for n in wanted],
            "containers": [container(n, "new") for n in wanted]
            + [{"$patch": "delete", "name": n} for n in live_names if n not in wanted],
        }
    }
    out = smp(live, patch)
    assert out["spec"]["containers"] == [container(n, "new") for n in wanted]
    assert smp(out, patch) == out
