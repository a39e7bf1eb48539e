"""Name syntax and object meta validation, worded as kube-apiserver words it."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.api import kinds, names
from kubeling.api.validation import meta

POD = kinds.by_kind("", "Pod")
NAMESPACE = kinds.by_kind("", "Namespace")
SERVICE = kinds.by_kind("", "Service")
assert POD and NAMESPACE and SERVICE

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


@pytest.mark.parametrize(("fn", "value", "expected"), [
    (names.is_dns1123_subdomain, "example.com", []),
    (names.is_dns1123_subdomain, "Example", [SUBDOMAIN_MSG]),
    (names.is_dns1123_subdomain, "a" * 254, ["must be no more than 253 characters"]),
    (names.is_dns1123_label, "my-name", []),
    (names.is_dns1123_label, "my.name", ["must not contain dots"]),
    (names.is_dns1123_label, "-x", [LABEL_MSG]),
    (names.is_dns1035_label, "1abc", [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',"
        "  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]),
    (names.is_qualified_name, "example.com/MyName", []),
    (names.is_qualified_name, "bad name", [QUALIFIED_NAME_PART]),
    (names.is_qualified_name, "/x", ["prefix part must be non-empty"]),
    (names.is_qualified_name, "a/b/c", [
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]),
    (names.is_valid_label_value, "", []),
    (names.is_valid_label_value, "x" * 64, ["must be no more than 63 characters"]),
    (names.is_valid_port_name, "http", []),
    (names.is_valid_port_name, "8080", ["must contain at least one letter (a-z)"]),
    (names.is_valid_port_name, "a--b", ["must not contain consecutive hyphens"]),
    (names.is_valid_port_name, "web-server-port-1", ["must be no more than 15 characters"]),
    (names.is_valid_ip, "10.0.0.1", []),
    (names.is_valid_ip, "2001:db8::1", []),
    (names.is_valid_ip, "10.0.0", ["must be a valid IP address, (e.g. 10.9.8.7 or "
                                   "2001:db8::ffff)"]),
    (names.is_config_map_key, "..x", ["must not start with '..'"]),
    (names.is_relaxed_env_var_name, "1-A.b", []),
    (names.is_relaxed_env_var_name, "A=B", [
        "a valid environment variable name must consist only of printable ASCII characters "
        "other than '='"]),
    (names.is_c_identifier, "9x", [
        "a valid C identifier must start with alphabetic character or '_', followed by a "
        "string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or "
        "'MyName', regex used for validation is '[A-Za-z_][A-Za-z0-9_]*')"]),
])
def test_name_checks(fn: Any, value: str, expected: list[str]) -> None:
    assert fn(value) == expected


def _fields(causes: list[Any]) -> list[tuple[str, str, str]]:
    return [(c.get("field", ""), c["reason"], c["message"]) for c in causes]


@pytest.mark.parametrize(("kind", "metadata", "expected"), [
    (POD, {"name": "web", "namespace": "default"}, []),
    (POD, {"generateName": "web-", "namespace": "default"}, []),
    (POD, {"namespace": "default"},
     [("metadata.name", "FieldValueRequired", "Required value: name or generateName is "
                                              "required")]),
    (POD, {"name": "Web", "namespace": "default"},
     [("metadata.name", "FieldValueInvalid", f'Invalid value: "Web": {SUBDOMAIN_MSG}')]),
    (POD, {"name": "web"}, [("metadata.namespace", "FieldValueRequired", "Required value")]),
    (NAMESPACE, {"name": "a.b"},
     [("metadata.name", "FieldValueInvalid", 'Invalid value: "a.b": must not contain dots')]),
    (NAMESPACE, {"name": "ns", "namespace": "x"},
     [("metadata.namespace", "FieldValueForbidden", "Forbidden: not allowed on this type")]),
    (SERVICE, {"name": "1svc", "namespace": "default"},
     [("metadata.name", "FieldValueInvalid", 'Invalid value: "1svc": ' + names.is_dns1035_label(
         "1svc")[0])]),
    (POD, {"name": "p", "namespace": "default", "labels": {"app": "a b"}},
     [("metadata.labels", "FieldValueInvalid", 'Invalid value: "a b": ' +
       names.is_valid_label_value("a b")[0])]),
    (POD, {"name": "p", "namespace": "default", "annotations": {"a": "x" * (256 * 1024)}},
     [("metadata.annotations", "FieldValueTooLong",
       "Too long: may not be more than 262144 bytes")]),
    (POD, {"name": "p", "namespace": "default", "finalizers": ["orphan", "foregroundDeletion"]},
     [("metadata.finalizers", "FieldValueInvalid",
       'Invalid value: ["orphan","foregroundDeletion"]: finalizer orphan and '
       'foregroundDeletion cannot be both set')]),
    (POD, {"name": "p", "namespace": "default", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1",
         "controller": True},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2",
         "controller": True}]},
     [("metadata.ownerReferences", "FieldValueInvalid", None)]),
    (POD, {"name": "p", "namespace": "default", "ownerReferences": [{"apiVersion": "apps/"}]},
     [("metadata.ownerReferences.apiVersion", "FieldValueInvalid",
       'Invalid value: "apps/": version must not be empty'),
      ("metadata.ownerReferences.kind", "FieldValueInvalid",
       'Invalid value: "": kind must not be empty'),
      ("metadata.ownerReferences.name", "FieldValueInvalid",
       'Invalid value: "": name must not be empty'),
      ("metadata.ownerReferences.uid", "FieldValueInvalid",
       'Invalid value: "": uid must not be empty')]),
])
def test_object_meta(kind: Any, metadata: dict[str, Any], expected: list[Any]) -> None:
    got = _fields(meta.validate_object_meta(metadata, kind))
    assert len(got) == len(expected)
    for (field, reason, message), (want_field, want_reason, want_message) in zip(
            got, expected, strict=True):
        assert (field, reason) == (want_field, want_reason)
        if want_message is not None:
            assert message == want_message
    if expected and expected[0][2] is None:
        assert got[0][2].endswith('Only one reference can have Controller set to true. Found '
                                  '"true" in references for ReplicaSet/a and ReplicaSet/b')


def test_object_meta_update_immutable_fields() -> None:
    old = {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": "5",
           "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 3}
    new = {**old, "name": "q", "uid": "u2", "generation": 2}
    got = _fields(meta.validate_object_meta_update(new, old, POD))
    assert ("metadata.generation", "FieldValueInvalid",
            "Invalid value: 2: must not be decremented") in got
    assert ("metadata.name", "FieldValueInvalid", 'Invalid value: "q": field is immutable') in got
    assert ("metadata.uid", "FieldValueInvalid", 'Invalid value: "u2": field is immutable') in got
    assert meta.validate_object_meta_update(dict(old), old, POD) == []


def test_update_requires_resource_version_and_no_new_finalizers_when_deleting() -> None:
    old = {"name": "p", "namespace": "d", "resourceVersion": "1",
           "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x"]}
    new = {**old, "resourceVersion": "", "finalizers": ["a.io/x", "b.io/y"]}
    got = _fields(meta.validate_object_meta_update(new, old, POD))
    assert ("metadata.finalizers", "FieldValueForbidden",
            'Forbidden: no new finalizers can be added if the object is being deleted, found '
            'new finalizers []string{"b.io/y"}') in got
    assert ("metadata.resourceVersion", "FieldValueInvalid",
            'Invalid value: "": must be specified for an update') in got


@pytest.mark.parametrize(("selector", "expected"), [
    ({"matchLabels": {"app": "web"}}, []),
    ({"matchExpressions": [{"key": "app", "operator": "In"}]},
     [("sel.matchExpressions[0].values", "FieldValueRequired",
       "Required value: must be specified when `operator` is 'In' or 'NotIn'")]),
    ({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]},
     [("sel.matchExpressions[0].values", "FieldValueForbidden",
       "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]),
    ({"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]},
     [("sel.matchExpressions[0].operator", "FieldValueInvalid",
       'Invalid value: "Near": not a valid selector operator')]),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a b"]}]},
     [("sel.matchExpressions[0].values[0]", "FieldValueInvalid",
       'Invalid value: "a b": ' + names.is_valid_label_value("a b")[0])]),
])
def test_label_selector(selector: dict[str, Any], expected: list[Any]) -> None:
    assert _fields(meta.validate_label_selector(selector, "sel")) == expected
