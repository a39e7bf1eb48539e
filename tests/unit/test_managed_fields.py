"""managedFields: FieldsV1 sets, ownership on create and update, resets, manager names."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubeling.api.apply import (
    FieldSet,
    Path,
    default_manager,
    field_pe,
    fieldset_from_object,
    from_fields_v1,
    key_pe,
    path_string,
    reconcile_sent_managed_fields,
    to_fields_v1,
    track_update,
    value_pe,
)
from kubeling.api.schema import kind_schema

DEPLOY = kind_schema("apps", "v1", "Deployment")
CM = kind_schema("", "v1", "ConfigMap")
NOW = "2025-01-01T00:00:00Z"


def created_deployment() -> dict[str, Any]:
    """A Deployment as it reaches storage after defaulting."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                     "creationTimestamp": NOW, "generation": 1, "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {},
                    }],
                    "restartPolicy": "Always",
                    "securityContext": {},
                },
            },
        },
    }


def entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["metadata"].get("managedFields", []))


def test_fields_v1_round_trip_and_path_strings() -> None:
    doc = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:containers": {'k:{"name":"nginx"}': {".": {}, "f:image": {}}}},
    }
    s = from_fields_v1(doc)
    assert to_fields_v1(s) == doc
    assert [path_string(p) for p in s.paths()] == [
        ".metadata.labels",
        ".metadata.labels.app",
        '.spec.containers[name="nginx"]',
        '.spec.containers[name="nginx"].image',
    ]
    assert path_string((field_pe("finalizers"), value_pe("a/b"))) == '.finalizers[="a/b"]'
    port = key_pe({"protocol": "TCP", "containerPort": 80})
    assert port == 'k:{"containerPort":80,"protocol":"TCP"}'
    assert path_string((port,)) == '[containerPort=80,protocol="TCP"]'


def test_set_algebra() -> None:
    a = FieldSet.of([("f:spec", "f:replicas"), ("f:metadata", "f:labels", "f:app")])
    b = FieldSet.of([("f:spec", "f:replicas"), ("f:spec", "f:paused")])
    assert a.intersection(b) == FieldSet.of([("f:spec", "f:replicas")])
    assert a.difference(b) == FieldSet.of([("f:metadata", "f:labels", "f:app")])
    assert a.union(b).has(("f:spec", "f:paused"))
    assert a.difference(a).empty()
    assert to_fields_v1(a.difference(a)) == {}


def test_object_field_set_owns_leaves_and_items() -> None:
    obj = {"metadata": {"labels": {"a": "1"}, "annotations": {}},
           "data": {"k": "v"}}
    s = fieldset_from_object(CM, obj)
    assert to_fields_v1(s) == {
        "f:data": {"f:k": {}},
        "f:metadata": {"f:annotations": {}, "f:labels": {"f:a": {}}},
    }


def test_create_gives_the_creator_what_kubernetes_gives_it() -> None:
    obj = created_deployment()
    track_update(None, obj, manager="kubectl-create", schema=DEPLOY,
                 api_version="apps/v1", now=NOW)
    assert entries(obj) == [{
        "manager": "kubectl-create",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": NOW,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:strategy": {
                    "f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                    "f:type": {},
                },
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"nginx"}': {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {
                                    ".": {},
                                    'k:{"containerPort":80,"protocol":"TCP"}': {
                                        ".": {}, "f:containerPort": {}, "f:protocol": {},
                                    },
                                },
                                "f:resources": {},
                            }
                        },
                        "f:restartPolicy": {},
                        "f:securityContext": {},
                    },
                },
            },
        },
    }]


def test_update_moves_changed_fields_to_the_writer() -> None:
    obj = created_deployment()
    track_update(None, obj, manager="kubectl-create", schema=DEPLOY,
                 api_version="apps/v1", now=NOW)
    new = copy.deepcopy(obj)
    new["spec"]["replicas"] = 3
    del new["metadata"]["labels"]
    new["metadata"]["resourceVersion"] = "9"
    track_update(obj, new, manager="kubectl-edit", schema=DEPLOY,
                 api_version="apps/v1", now="2025-01-02T00:00:00Z")
    by_name = {e["manager"]: e for e in entries(new)}
    assert by_name["kubectl-edit"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    creator = by_name["kubectl-create"]["fieldsV1"]
    assert "f:labels" not in creator.get("f:metadata", {})
    assert "f:replicas" not in creator["f:spec"]
    assert [e["manager"] for e in entries(new)] == ["kubectl-create", "kubectl-edit"]


def test_an_update_that_changes_nothing_adds_no_entry() -> None:
    obj = created_deployment()
    track_update(None, obj, manager="a", schema=DEPLOY, api_version="apps/v1", now=NOW)
    new = copy.deepcopy(obj)
    new["metadata"]["resourceVersion"] = "5"
    track_update(obj, new, manager="b", schema=DEPLOY, api_version="apps/v1", now=NOW)
    assert [e["manager"] for e in entries(new)] == ["a"]


def test_an_entry_that_loses_everything_is_dropped() -> None:
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
           "data": {"x": "0"}}
    track_update(None, old, manager="creator", schema=CM, api_version="v1", now=NOW)
    mid = copy.deepcopy(old)
    mid["data"]["k"] = "1"
    track_update(old, mid, manager="a", schema=CM, api_version="v1", now=NOW)
    assert [e["manager"] for e in entries(mid)] == ["a", "creator"]
    new = copy.deepcopy(mid)
    new["data"]["k"] = "2"
    track_update(mid, new, manager="b", schema=CM, api_version="v1", now=NOW)
    assert [e["manager"] for e in entries(new)] == ["b", "creator"]
    assert entries(new)[0]["fieldsV1"] == {"f:data": {"f:k": {}}}


def test_sent_managed_fields_are_honoured_and_reset() -> None:
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
           "data": {"k": "1"}}
    track_update(None, old, manager="a", schema=CM, api_version="v1", now=NOW)
    sent = [{"manager": "z", "operation": "Apply", "apiVersion": "v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}}}]
    new = copy.deepcopy(old)
    new["metadata"]["managedFields"] = sent
    assert list(reconcile_sent_managed_fields(old, new)) == [("z", "Apply", "", "")]
    # A subresource cannot rewrite ownership.
    assert list(reconcile_sent_managed_fields(old, new, subresource="status")) == [
        ("a", "Update", "v1", "")
    ]
    # Nothing sent: the live entries stay.
    del new["metadata"]["managedFields"]
    assert list(reconcile_sent_managed_fields(old, new)) == [("a", "Update", "v1", "")]
    for reset in ([{}], []):
        new["metadata"]["managedFields"] = reset
        assert reconcile_sent_managed_fields(old, new) == {}


def test_cleared_managed_fields_stay_cleared_on_later_updates() -> None:
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
           "data": {"k": "1"}}
    track_update(None, old, manager="a", schema=CM, api_version="v1", now=NOW)
    cleared = copy.deepcopy(old)
    cleared["metadata"]["managedFields"] = [{}]
    cleared["data"]["k"] = "2"
    track_update(old, cleared, manager="b", schema=CM, api_version="v1", now=NOW)
    assert "managedFields" not in cleared["metadata"]
    later = copy.deepcopy(cleared)
    later["data"]["k"] = "3"
    track_update(cleared, later, manager="c", schema=CM, api_version="v1", now=NOW)
    assert "managedFields" not in later["metadata"]


def test_update_entries_are_capped_into_ancient_changes() -> None:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c"}, "data": {"k0": "v"}}
    track_update(None, obj, manager="m00", schema=CM, api_version="v1",
                 now="2025-01-01T00:00:00Z")
    for i in range(1, 13):
        new = copy.deepcopy(obj)
        new["data"][f"k{i}"] = "v"
        track_update(obj, new, manager=f"m{i:02}", schema=CM, api_version="v1",
                     now=f"2025-01-01T00:00:{i:02}Z")
        obj = new
    names = [e["manager"] for e in entries(obj)]
    assert len(names) == 10
    assert "ancient-changes" in names
    ancient = next(e for e in entries(obj) if e["manager"] == "ancient-changes")
    # The four oldest writers folded together; the nine newest keep their own entries.
    assert ancient["fieldsV1"] == {
        "f:data": {".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}, "f:k3": {}}
    }
    assert ancient["time"] == "2025-01-01T00:00:03Z"
    assert [n for n in names if n != "ancient-changes"] == [f"m{i:02}" for i in range(4, 13)]


def test_status_writes_under_a_subresource_get_their_own_entry() -> None:
    obj = created_deployment()
    track_update(None, obj, manager="kubectl-create", schema=DEPLOY,
                 api_version="apps/v1", now=NOW)
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
    track_update(obj, new, manager="kube-controller-manager", schema=DEPLOY,
                 api_version="apps/v1", subresource="status", now=NOW)
    entry = next(e for e in entries(new) if e["manager"] == "kube-controller-manager")
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {
        "f:conditions": {".": {}, 'k:{"type":"Available"}': {
            ".": {}, "f:status": {}, "f:type": {}}},
        "f:replicas": {},
    }}


def test_default_manager_from_user_agent() -> None:
    assert default_manager("kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9") == "kubectl"
    assert default_manager("OpenAPI-Generator/32.0.1/python") == "OpenAPI-Generator"
    assert default_manager("bad\x00name/1") == "badname"
    assert default_manager("x" * 300) == "x" * 128
    assert default_manager("") == ""


_pe = st.sampled_from(["f:a", "f:b", 'k:{"name":"x"}', 'v:"y"', "f:c"])
_paths = st.lists(st.lists(_pe, min_size=1, max_size=4).map(tuple), max_size=12)


@given(_paths, _paths)
def test_set_algebra_matches_sets_of_paths(a: list[Path], b: list[Path]) -> None:
    sa, sb = FieldSet.of(a), FieldSet.of(b)
    pa, pb = set(a), set(b)
    assert set(sa.union(sb).paths()) == pa | pb
    assert set(sa.intersection(sb).paths()) == pa & pb
    assert set(sa.difference(sb).paths()) == pa - pb
    assert from_fields_v1(to_fields_v1(sa)) == sa
