"""JSON patch: RFC 6902 operations and the answers kube-apiserver gives when they fail."""

from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeling.api.errors import StatusError
from kubeling.api.patch import apply_json_patch

REJECTED = "the server rejected our request due to an error in our request"


def cm() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "web"}},
        "data": {"a": "1"},
    }


def test_operations_change_a_copy_and_leave_the_inputs_alone() -> None:
    doc = cm()
    ops = [
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/owner", "value": "ops"},
        {"op": "replace", "path": "/data/a", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/app"},
        {"op": "copy", "from": "/data/a", "path": "/data/b"},
        {"op": "move", "from": "/data/a", "path": "/data/c"},
    ]
    before_doc, before_ops = copy.deepcopy(doc), copy.deepcopy(ops)
    out = apply_json_patch(doc, ops)
    assert out["metadata"]["annotations"] == {"owner": "ops"}
    assert out["metadata"]["labels"] == {}
    assert out["data"] == {"b": "2", "c": "2"}
    assert doc == before_doc and ops == before_ops


def test_raw_bytes_are_accepted() -> None:
    body = orjson.dumps([{"op": "add", "path": "/data/x", "value": "y"}])
    assert apply_json_patch(cm(), body)["data"]["x"] == "y"


def test_escaped_keys_address_annotations_with_slashes() -> None:
    doc = cm()
    doc["metadata"]["annotations"] = {}
    ops = [{"op": "add", "path": "/metadata/annotations/example.com~1team", "value": "a"}]
    assert apply_json_patch(doc, ops)["metadata"]["annotations"] == {"example.com/team": "a"}


def test_append_to_a_list_with_dash() -> None:
    doc = {"spec": {"finalizers": ["kubernetes"]}}
    out = apply_json_patch(doc, [{"op": "add", "path": "/spec/finalizers/-", "value": "x"}])
    assert out["spec"]["finalizers"] == ["kubernetes", "x"]


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "add", "path": "/metadata/annotations/x", "value": "1"}],  # parent missing
        [{"op": "remove", "path": "/data/missing"}],
        [{"op": "replace", "path": "/spec", "value": {}}],
        [{"op": "test", "path": "/data/a", "value": "2"}],
        [{"op": "frobnicate", "path": "/data"}],
        [{"path": "/data"}],
        [None],
    ],
)
def test_an_operation_that_does_not_apply_is_the_generic_422(ops: list) -> None:
    with pytest.raises(StatusError) as err:
        apply_json_patch(cm(), ops)
    assert err.value.code == 422
    assert err.value.reason == "Invalid"
    assert err.value.message == REJECTED


def test_a_failed_test_changes_nothing() -> None:
    doc = cm()
    ops = [
        {"op": "replace", "path": "/data/a", "value": "changed"},
        {"op": "test", "path": "/metadata/name", "value": "other"},
    ]
    with pytest.raises(StatusError):
        apply_json_patch(doc, ops)
    assert doc["data"]["a"] == "1"


def test_test_compares_json_types_strictly() -> None:
    doc = {"spec": {"replicas": 1, "paused": True}}
    assert apply_json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 1.0}])
    with pytest.raises(StatusError):
        apply_json_patch(doc, [{"op": "test", "path": "/spec/paused", "value": 1}])
    with pytest.raises(StatusError):
        apply_json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": True}])


def test_testing_a_missing_member_for_null_succeeds() -> None:
    out = apply_json_patch(cm(), [{"op": "test", "path": "/data/absent", "value": None}])
    assert out == cm()


@pytest.mark.parametrize(
    ("body", "kind", "go_type"),
    [
        ({"op": "add"}, "object", "jsonpatch.Patch"),
        ("add", "string", "jsonpatch.Patch"),
        ([1], "number", "jsonpatch.Operation"),
        ([[]], "array", "jsonpatch.Operation"),
    ],
)
def test_a_body_that_is_not_a_json_patch_is_400(body: object, kind: str, go_type: str) -> None:
    with pytest.raises(StatusError) as err:
        apply_json_patch(cm(), body)
    assert err.value.code == 400
    assert err.value.reason == "BadRequest"
    assert err.value.message == f"json: cannot unmarshal {kind} into Go value of type {go_type}"


def test_unparseable_bytes_are_400() -> None:
    with pytest.raises(StatusError) as err:
        apply_json_patch(cm(), b"[{")
    assert err.value.code == 400


def test_null_and_empty_patches_change_nothing() -> None:
    assert apply_json_patch(cm(), None) == cm()
    assert apply_json_patch(cm(), []) == cm()


def test_more_than_ten_thousand_operations_is_413() -> None:
    ops = [{"op": "test", "path": "/kind", "value": "ConfigMap"}] * 10001
    with pytest.raises(StatusError) as err:
        apply_json_patch(cm(), ops)
    assert err.value.code == 413
    assert err.value.message.endswith("is 10000, got 10001")


keys = st.text(alphabet="abc/~", min_size=1, max_size=4)
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)


@given(st.dictionaries(keys, scalars, min_size=1), st.data())
def test_test_of_any_present_member_succeeds_and_add_then_remove_round_trips(
    doc: dict, data: st.DataObject
) -> None:
    key = data.draw(st.sampled_from(sorted(doc)))
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    assert apply_json_patch(doc, [{"op": "test", "path": pointer, "value": doc[key]}]) == doc
    out = apply_json_patch(
        doc,
        [{"op": "add", "path": "/zz", "value": [1]}, {"op": "remove", "path": "/zz"}],
    )
    assert out == doc
