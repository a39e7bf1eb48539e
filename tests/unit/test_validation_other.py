"""Lease, EndpointSlice, StorageClass and events.k8s.io Event: defaults and validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.defaults import apply_defaults
from kubeling.api.kinds import Kind, by_kind
from kubeling.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def kind_of(group: str, name: str) -> Kind:
    kind = by_kind(group, name)
    assert kind is not None
    return kind


LEASE = kind_of("coordination.k8s.io", "Lease")
SLICE = kind_of("discovery.k8s.io", "EndpointSlice")
CLASS = kind_of("storage.k8s.io", "StorageClass")
EVENT = kind_of("events.k8s.io", "Event")


def meta(namespaced: bool = True) -> Obj:
    m: Obj = {"name": "x", "resourceVersion": "1"}
    if namespaced:
        m["namespace"] = "default"
    return m


def causes(kind: Kind, obj: Obj, old: Obj | None = None) -> list[tuple[str, str, str]]:
    found = validate_create(kind, obj) if old is None else validate_update(kind, obj, old)
    return [(c.get("field", ""), c["reason"], c["message"]) for c in found]


def test_lease() -> None:
    lease = {"metadata": meta(), "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    assert causes(LEASE, lease) == []
    lease["spec"].update(leaseDurationSeconds=0, leaseTransitions=-1)
    assert causes(LEASE, lease) == [
        ("spec.leaseDurationSeconds", "FieldValueInvalid",
         "Invalid value: 0: must be greater than 0"),
        ("spec.leaseTransitions", "FieldValueInvalid",
         "Invalid value: -1: must be greater than or equal to 0")]


def endpoint_slice(**fields: Any) -> Obj:
    obj = {"metadata": meta(), "addressType": "IPv4",
           "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}],
           "ports": [{"port": 80}], **fields}
    apply_defaults(SLICE, obj)
    return obj


def test_endpoint_slice_defaults_and_valid() -> None:
    obj = endpoint_slice()
    assert obj["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    assert causes(SLICE, obj) == []


SLICE_CASES = [
    ("address type", {"addressType": "IPv5"}, (
        "addressType", "FieldValueNotSupported",
        'Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"')),
    ("no addresses", {"endpoints": [{"addresses": []}]}, (
        "endpoints[0].addresses", "FieldValueRequired",
        "Required value: must contain at least 1 address")),
    ("not ipv4", {"endpoints": [{"addresses": ["fd00::1"]}]}, (
        "endpoints[0].addresses[0]", "FieldValueInvalid",
        'Invalid value: "fd00::1": must be a valid IPv4 address')),
    ("loopback", {"endpoints": [{"addresses": ["127.0.0.1"]}]}, (
        "endpoints[0].addresses[0]", "FieldValueInvalid",
        'Invalid value: "127.0.0.1": may not be in the loopback range '
        "(127.0.0.0/8, ::1/128)")),
    ("fqdn", {"addressType": "FQDN", "endpoints": [{"addresses": ["localhost"]}]}, (
        "endpoints[0].addresses[0]", "FieldValueInvalid",
        'Invalid value: "localhost": should be a domain with at least two segments '
        "separated by dots")),
    ("protocol", {"ports": [{"port": 80, "protocol": "HTTP"}]}, (
        "ports[0].protocol", "FieldValueNotSupported",
        'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"')),
    ("duplicate port name", {"ports": [{"name": "http"}, {"name": "http"}]}, (
        "ports[1].name", "FieldValueDuplicate", 'Duplicate value: "http"')),
]


@pytest.mark.parametrize(("fields", "expected"), [c[1:] for c in SLICE_CASES],
                         ids=[c[0] for c in SLICE_CASES])
def test_endpoint_slice_rejects(fields: dict[str, Any], expected: tuple[str, str, str]) -> None:
    assert expected in causes(SLICE, endpoint_slice(**fields))


def test_endpoint_slice_address_type_is_immutable() -> None:
    old = endpoint_slice()
    new = copy.deepcopy(old)
    new["addressType"] = "IPv6"
    new["endpoints"][0]["addresses"] = ["fd00::5"]
    assert causes(SLICE, new, old) == [
        ("addressType", "FieldValueInvalid", 'Invalid value: "IPv6": field is immutable')]


def storage_class(**fields: Any) -> Obj:
    obj = {"metadata": meta(False), "provisioner": "kubeling.io/hostpath", **fields}
    apply_defaults(CLASS, obj)
    return obj


def test_storage_class_defaults_and_valid() -> None:
    obj = storage_class()
    assert (obj["reclaimPolicy"], obj["volumeBindingMode"]) == ("Delete", "Immediate")
    assert causes(CLASS, obj) == []


def test_storage_class_rejects() -> None:
    obj = storage_class(reclaimPolicy="Recycle", volumeBindingMode="Later")
    del obj["provisioner"]
    assert causes(CLASS, obj) == [
        ("provisioner", "FieldValueRequired", "Required value"),
        ("reclaimPolicy", "FieldValueNotSupported",
         'Unsupported value: "Recycle": supported values: "Delete", "Retain"'),
        ("volumeBindingMode", "FieldValueNotSupported",
         'Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"')]


def test_storage_class_update_rules() -> None:
    old = storage_class(parameters={"type": "ssd"})
    new = copy.deepcopy(old)
    new.update(provisioner="other.io/x", parameters={"type": "hdd"},
               volumeBindingMode="WaitForFirstConsumer")
    assert causes(CLASS, new, old) == [
        ("parameters", "FieldValueForbidden", "Forbidden: updates to parameters are forbidden."),
        ("provisioner", "FieldValueForbidden",
         "Forbidden: updates to provisioner are forbidden."),
        ("volumeBindingMode", "FieldValueInvalid",
         'Invalid value: "WaitForFirstConsumer": field is immutable')]
    allowed = copy.deepcopy(old)
    allowed["allowVolumeExpansion"] = True
    assert causes(CLASS, allowed, old) == []


def event(**fields: Any) -> Obj:
    return {"metadata": meta(), "eventTime": "2025-01-02T03:04:05.000000Z",
            "reportingController": "kubeling.io/scheduler", "reportingInstance": "node-1",
            "action": "Binding", "reason": "Scheduled", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
            "note": "assigned", **fields}


def test_valid_event() -> None:
    assert causes(EVENT, event()) == []


EVENT_CASES = [
    ("event time", {"eventTime": None}, ("eventTime", "FieldValueRequired", "Required value")),
    ("controller", {"reportingController": ""}, (
        "reportingController", "FieldValueRequired", "Required value")),
    ("action", {"action": ""}, ("action", "FieldValueRequired", "Required value")),
    ("type", {"type": "Bad"}, (
        "type", "FieldValueInvalid", 'Invalid value: "": has invalid value: Bad')),
    ("note", {"note": "n" * 1025}, (
        "message", "FieldValueInvalid", 'Invalid value: "": can have at most 1024 characters')),
    ("series", {"series": {"count": 1}}, (
        "series.count", "FieldValueInvalid", 'Invalid value: "": should be at least 2')),
    ("deprecated count", {"deprecatedCount": 3}, (
        "count", "FieldValueInvalid", 'Invalid value: "": needs to be unset')),
]


@pytest.mark.parametrize(("fields", "expected"), [c[1:] for c in EVENT_CASES],
                         ids=[c[0] for c in EVENT_CASES])
def test_event_rejects(fields: dict[str, Any], expected: tuple[str, str, str]) -> None:
    assert expected in causes(EVENT, event(**fields))


def test_event_update_may_change_series_only() -> None:
    old = event()
    new = copy.deepcopy(old)
    new["series"] = {"count": 2, "lastObservedTime": "2025-01-02T03:05:00.000000Z"}
    assert causes(EVENT, new, old) == []
    new["note"] = "changed"
    assert causes(EVENT, new, old) == [
        ("message", "FieldValueInvalid", 'Invalid value: "changed": field is immutable')]
