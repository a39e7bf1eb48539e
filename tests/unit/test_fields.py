"""Field selectors parse as fields.ParseSelector and each kind offers Kubernetes' labels."""

import pytest

from kubeling.api.errors import StatusError
from kubeling.api.fields import check_field_selector, parse_field_selector, selectable_fields
from kubeling.api.kinds import by_resource

PODS = by_resource("", "pods")
assert PODS is not None


@pytest.mark.parametrize(("text", "terms", "shown"), [
    ("a=b", [("a", "b", False)], "a=b"),
    ("a==b,c!=d", [("a", "b", False), ("c", "d", True)], "a=b,c!=d"),
    (r"a=x\,y", [("a", "x,y", False)], r"a=x\,y"),
    (r"a=\\", [("a", "\\", False)], r"a=\\"),
    ("a=", [("a", "", False)], "a="),
    ("", [], ""),
    ("a=b,", [("a", "b", False)], "a=b"),
])
def test_parse(text: str, terms: list[tuple[str, str, bool]], shown: str) -> None:
    sel = parse_field_selector(text)
    assert [(t.field, t.value, t.negate) for t in sel.terms] == terms
    assert str(sel) == shown


@pytest.mark.parametrize(("text", "message"), [
    ("a", "invalid selector: 'a'; can't understand 'a'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    (r"a=b\q", r"invalid field selector: invalid escape sequence: \q"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(StatusError) as e:
        parse_field_selector(text)
    assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)


def test_pod_fields_and_matching() -> None:
    pod = {"metadata": {"name": "web", "namespace": "prod"},
           "spec": {"nodeName": "n1", "restartPolicy": "Always", "hostNetwork": True},
           "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}}
    fields = selectable_fields(PODS, pod)
    assert fields["spec.nodeName"] == "n1"
    assert fields["status.podIP"] == "10.0.0.5"
    assert fields["spec.hostNetwork"] == "true"
    assert fields["metadata.namespace"] == "prod"
    assert parse_field_selector("spec.nodeName=n1,status.phase!=Failed").matches(fields)
    assert not parse_field_selector("spec.nodeName=n2").matches(fields)
    assert parse_field_selector("status.nominatedNodeName=").matches(fields)


@pytest.mark.parametrize(("resource", "group", "obj", "expected"), [
    ("nodes", "", {"metadata": {"name": "n"}, "spec": {"unschedulable": True}},
     {"metadata.name": "n", "spec.unschedulable": "true"}),
    ("namespaces", "", {"metadata": {"name": "ns"}, "status": {"phase": "Active"}},
     {"metadata.name": "ns", "status.phase": "Active"}),
    ("secrets", "", {"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"},
     {"metadata.name": "s", "metadata.namespace": "d", "type": "Opaque"}),
    ("jobs", "batch", {"metadata": {"name": "j", "namespace": "d"}, "status": {"succeeded": 2}},
     {"metadata.name": "j", "metadata.namespace": "d", "status.successful": "2"}),
    ("replicationcontrollers", "", {"metadata": {"name": "r", "namespace": "d"}},
     {"metadata.name": "r", "metadata.namespace": "d", "status.replicas": "0"}),
    ("configmaps", "", {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "b"}},
     {"metadata.name": "c", "metadata.namespace": "d"}),
])
def test_selectable_fields_per_kind(resource: str, group: str, obj: dict,
                                    expected: dict[str, str]) -> None:
    kind = by_resource(group, resource)
    assert kind is not None
    assert selectable_fields(kind, obj) == expected


def test_core_event_fields() -> None:
    kind = by_resource("", "events")
    assert kind is not None
    ev = {"metadata": {"name": "e", "namespace": "d"}, "reason": "Pulled", "type": "Normal",
          "involvedObject": {"kind": "Pod", "name": "web", "uid": "u1"},
          "reportingComponent": "kubelet"}
    fields = selectable_fields(kind, ev)
    assert fields["involvedObject.name"] == "web"
    assert fields["source"] == "kubelet"
    assert parse_field_selector("involvedObject.kind=Pod,reason=Pulled").matches(fields)


@pytest.mark.parametrize(("resource", "group", "selector", "message"), [
    ("pods", "", "foo=1", "field label not supported: foo"),
    ("nodes", "", "metadata.namespace=x", "field label not supported: metadata.namespace"),
    ("configmaps", "", "data=1",
     '"data" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    ("replicasets", "apps", "status.replicas=1",
     '"status.replicas" is not a known field selector: only "metadata.name", '
     '"metadata.namespace"'),
    ("jobs", "batch", "spec.x=1", 'field label "spec.x" not supported for Job'),
    ("events", "events.k8s.io", "involvedObject.name=x",
     "field label not supported: involvedObject.name"),
])
def test_unsupported_labels(resource: str, group: str, selector: str, message: str) -> None:
    kind = by_resource(group, resource)
    assert kind is not None
    with pytest.raises(StatusError) as e:
        check_field_selector(kind, parse_field_selector(selector))
    assert (e.value.code, e.value.message) == (400, message)


def test_supported_labels_pass_and_spec_host_is_renamed() -> None:
    sel = check_field_selector(PODS, parse_field_selector("spec.host=n1,status.podIPs=x"))
    assert str(sel) == "spec.nodeName=n1,status.podIPs=x"
    events_v1 = by_resource("events.k8s.io", "events")
    assert events_v1 is not None
    check_field_selector(events_v1, parse_field_selector("regarding.name=web,type=Warning"))
