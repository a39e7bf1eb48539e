"""JSON merge patch (RFC 7386) as kube-apiserver applies it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeling.api.errors import StatusError
from kubeling.api.patch import apply_merge_patch, create_merge_patch


def deployment() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [{"name": "web", "image": "nginx:1"}],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                }
            },
        },
    }


def test_objects_merge_and_null_deletes() -> None:
    doc = deployment()
    before = copy.deepcopy(doc)
    out = apply_merge_patch(doc, {"metadata": {"labels": {"tier": None, "env": "prod"}}})
    assert out["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert doc == before


def test_lists_are_replaced_whole() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "x"}]}}}}
    out = apply_merge_patch(deployment(), patch)
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "sidecar", "image": "x"}]
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"key": "a", "operator": "Exists"}]


def test_scaling_with_kubectl_patch_type_merge() -> None:
    out = apply_merge_patch(deployment(), b'{"spec":{"replicas":5}}')
    assert out["spec"]["replicas"] == 5


def test_nulls_inside_new_values_are_dropped() -> None:
    patch = {"spec": {"selector": {"matchLabels": {"app": "web", "gone": None}}}}
    out = apply_merge_patch(deployment(), patch)
    assert out["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def test_nulls_inside_objects_of_a_new_list_are_dropped_as_kubernetes_does() -> None:
    patch = {"spec": {"ports": [{"port": 80, "name": None}]}}
    assert apply_merge_patch({"spec": {}}, patch)["spec"]["ports"] == [{"port": 80}]


def test_an_object_replaces_a_scalar_and_a_scalar_replaces_an_object() -> None:
    out = apply_merge_patch({"a": "x", "b": {"c": 1}}, {"a": {"d": 1, "e": None}, "b": 7})
    assert out == {"a": {"d": 1}, "b": 7}


def test_deleting_a_missing_key_is_harmless() -> None:
    assert apply_merge_patch({"a": 1}, {"b": None}) == {"a": 1}


def test_a_null_patch_is_a_bad_request() -> None:
    with pytest.raises(StatusError) as err:
        apply_merge_patch(deployment(), None)
    assert err.value.code == 400
    assert err.value.message == "Invalid JSON Patch"


def test_unparseable_bytes_are_a_bad_request() -> None:
    with pytest.raises(StatusError) as err:
        apply_merge_patch(deployment(), b"{nope")
    assert err.value.code == 400


def test_a_patch_that_is_not_an_object_replaces_the_document() -> None:
    assert apply_merge_patch({"a": 1}, [1, 2]) == [1, 2]
    assert apply_merge_patch("x", {"a": 1, "b": None}) == {"a": 1}


def test_create_merge_patch_is_what_kubectl_edit_sends_for_a_custom_resource() -> None:
    before = {"spec": {"size": 1, "mode": "a", "tags": ["x"]}, "status": {"ok": True}}
    after = {"spec": {"size": 3, "tags": ["x", "y"]}, "status": {"ok": True}}
    patch = create_merge_patch(before, after)
    assert patch == {"spec": {"size": 3, "mode": None, "tags": ["x", "y"]}}
    assert apply_merge_patch(before, patch) == after


# JSON without nulls (a merge patch cannot set a member to null).
json_values = st.recursive(
    st.booleans() | st.integers(-3, 3) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(alphabet="abcd", max_size=2), inner, max_size=3),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(alphabet="abcd", max_size=2), json_values, max_size=4)


@given(json_objects, json_objects)
def test_applying_the_difference_reproduces_the_target(original: dict, target: dict) -> None:
    assert apply_merge_patch(original, create_merge_patch(original, target)) == target


@given(json_objects)
def test_the_difference_of_a_document_with_itself_is_empty(doc: dict) -> None:
    assert create_merge_patch(doc, doc) == {}
    assert apply_merge_patch(doc, {}) == doc


@given(json_objects, json_objects)
def test_applying_a_patch_twice_is_the_same_as_once(doc: dict, patch: dict) -> None:
    once = apply_merge_patch(doc, patch)
    assert apply_merge_patch(once, patch) == once
