"""The pure decisions behind Endpoints and EndpointSlices: which pods, which ports, which
subsets and conditions, and which slice writes (as kube-controller-manager decides)."""

from __future__ import annotations

from typing import Any

from kubeling.controllers import servicepods as sp
from kubeling.controllers.endpoints import compute_subsets, truncate
from kubeling.controllers.endpointslice import desired_groups, slice_meta
from kubeling.controllers.endpointslice_reconcile import plan
from kubeling.controllers.endpointslicemirroring import mirrored_groups, should_mirror

Obj = dict[str, Any]


def service(name: str = "web", ports: list[Obj] | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.1.1",
                     "ports": ports if ports is not None else [
                         {"name": "http", "port": 80, "protocol": "TCP",
                          "targetPort": "http"}], **spec}}


def pod(name: str, ip: str, *, ready: bool = True, port: int | None = 8080,
        deleting: bool = False, phase: str = "Running", **spec: Any) -> Obj:
    ports = [{"name": "http", "containerPort": port}] if port else []
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                 "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}], **spec},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_ports_by_name_number_and_protocol() -> None:
    p = pod("a", "10.42.0.5")
    assert sp.find_port(p, {"port": 80, "targetPort": "http", "protocol": "TCP"}) == 8080
    assert sp.find_port(p, {"port": 80, "targetPort": "http", "protocol": "UDP"}) is None
    assert sp.find_port(p, {"port": 80, "targetPort": 9090}) == 9090
    assert sp.find_port(p, {"port": 80}) == 80
    assert sp.find_port(p, {"port": 80, "targetPort": "metrics"}) is None
    sidecar = pod("b", "10.42.0.6", port=None, initContainers=[
        {"name": "s", "restartPolicy": "Always", "ports": [{"name": "http",
                                                            "containerPort": 7070}]}])
    assert sp.find_port(sidecar, {"port": 80, "targetPort": "http"}) == 7070


def test_which_pods_belong() -> None:
    assert sp.should_be_in_endpoints(pod("a", "10.42.0.5"), False)
    assert not sp.should_be_in_endpoints(pod("a", ""), True)
    assert not sp.should_be_in_endpoints(pod("a", "10.42.0.5", phase="Succeeded"), True)
    assert not sp.should_be_in_endpoints(pod("a", "10.42.0.5", deleting=True), False)
    assert sp.should_be_in_endpoints(pod("a", "10.42.0.5", deleting=True), True)


def test_subsets_group_addresses_by_the_ports_they_offer() -> None:
    pods = [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", ready=False),
            pod("c", "10.42.0.7", port=9090), pod("d", "10.42.0.8", port=None),
            pod("e", "10.42.0.9", deleting=True), pod("f", "")]
    subsets = compute_subsets(service(), pods)
    assert len(subsets) == 2
    by_port = {s["ports"][0]["port"]: s for s in subsets}
    assert [a["ip"] for a in by_port[8080]["addresses"]] == ["10.42.0.5"]
    assert [a["ip"] for a in by_port[8080]["notReadyAddresses"]] == ["10.42.0.6"]
    assert by_port[8080]["ports"] == [{"port": 8080, "protocol": "TCP", "name": "http"}]
    assert [a["ip"] for a in by_port[9090]["addresses"]] == ["10.42.0.7"]
    addr = by_port[8080]["addresses"][0]
    assert addr == {"ip": "10.42.0.5", "nodeName": "n1", "targetRef": {
        "kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}


def test_two_ports_of_one_pod_share_a_subset() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                         {"name": "admin", "port": 81, "targetPort": 9000, "protocol": "TCP"}])
    subsets = compute_subsets(svc, [pod("a", "10.42.0.5"), pod("b", "10.42.0.6")])
    assert len(subsets) == 1
    assert sorted(p["name"] for p in subsets[0]["ports"]) == ["admin", "http"]
    assert len(subsets[0]["addresses"]) == 2


def test_publish_not_ready_hostname_and_headless_without_ports() -> None:
    svc = service(publishNotReadyAddresses=True)
    subsets = compute_subsets(svc, [pod("a", "10.42.0.5", ready=False),
                                    pod("b", "10.42.0.6", deleting=True)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.42.0.5", "10.42.0.6"]
    assert "notReadyAddresses" not in subsets[0]
    headless = service(ports=[], clusterIP="None")
    named = pod("a", "10.42.0.5", hostname="a-0", subdomain="web")
    other = pod("b", "10.42.0.6", hostname="b-0", subdomain="elsewhere")
    subsets = compute_subsets(headless, [named, other])
    assert subsets == [{"addresses": [
        {"ip": "10.42.0.5", "nodeName": "n1", "hostname": "a-0", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}},
        {"ip": "10.42.0.6", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}]}]
    assert subsets[0]["addresses"][0]["hostname"] == "a-0"
    assert compute_subsets(service(ports=[]), [named]) == []


def test_truncation_keeps_ready_addresses_first() -> None:
    subsets: list[Obj] = [{"addresses": [{"ip": f"10.0.{i // 250}.{i % 250}"} for i in range(900)],
                "notReadyAddresses": [{"ip": f"10.1.{i // 250}.{i % 250}"} for i in range(300)],
                "ports": [{"port": 1}]}]
    assert truncate(subsets)
    assert len(subsets[0]["addresses"]) == 900 and len(subsets[0]["notReadyAddresses"]) == 100
    assert not truncate([{"addresses": [{"ip": "10.0.0.1"}]}])


def test_slice_conditions_keep_terminating_pods() -> None:
    groups = desired_groups(service(), [pod("a", "10.42.0.5"), pod("b", "10.42.0.6",
                                                                    deleting=True),
                                        pod("c", "10.42.0.7", ready=False)])
    (group,) = groups.values()
    conds = {k[0]: e["conditions"] for k, e in group.endpoints.items()}
    assert conds["10.42.0.5"] == {"ready": True, "serving": True, "terminating": False}
    assert conds["10.42.0.6"] == {"ready": False, "serving": True, "terminating": True}
    assert conds["10.42.0.7"] == {"ready": False, "serving": False, "terminating": False}
    assert group.ports == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    publish = desired_groups(service(publishNotReadyAddresses=True),
                             [pod("b", "10.42.0.6", deleting=True, ready=False)])
    (g,) = publish.values()
    assert next(iter(g.endpoints.values()))["conditions"]["ready"] is True


def test_slice_zone_and_placeholder() -> None:
    groups = desired_groups(service(), [pod("a", "10.42.0.5")], {"n1": "zone-a"})
    (g,) = groups.values()
    assert next(iter(g.endpoints.values()))["zone"] == "zone-a"
    empty = desired_groups(service(), [])
    (g,) = empty.values()
    assert g.ports == [] and g.endpoints == {}


def _slice(name: str, groups: Any, meta: Obj) -> Obj:
    (todo,) = plan(groups, [], meta).create
    todo["metadata"]["name"] = name
    todo["metadata"]["resourceVersion"] = "1"
    return todo


def test_plan_changes_only_the_slice_that_changed() -> None:
    svc = service()
    meta = slice_meta(svc)
    assert meta["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                              "endpointslice.kubernetes.io/managed-by":
                                  "endpointslice-controller.k8s.io"}
    assert meta["ownerReferences"][0]["controller"] is True
    pods = [pod(f"p{i}", f"10.42.0.{i + 1}") for i in range(150)]
    todo = plan(desired_groups(svc, pods), [], meta)
    assert len(todo.create) == 2 and not todo.update and not todo.delete
    assert sorted(len(s["endpoints"]) for s in todo.create) == [50, 100]
    existing = []
    for i, s in enumerate(todo.create):
        s["metadata"]["name"] = f"web-{i}"
        existing.append(s)
    assert not plan(desired_groups(svc, pods), existing, meta)
    pods[3] = pod("p3", "10.42.0.4", ready=False)
    todo = plan(desired_groups(svc, pods), existing, meta)
    assert not todo.create and not todo.delete and len(todo.update) == 1
    assert todo.update[0]["metadata"]["name"] == "web-0"
    pods[3] = pod("p3", "10.42.0.4")
    # a new pod goes to the slice being rewritten anyway: one write in all
    todo = plan(desired_groups(svc, pods[:100] + [pod("new", "10.42.1.1")]), existing, meta)
    assert not todo.create and not todo.delete
    assert [(s["metadata"]["name"], len(s["endpoints"])) for s in todo.update] == [("web-1", 1)]
    # the pods going away empty a slice: deleted
    todo = plan(desired_groups(svc, pods[:100]), existing, meta)
    assert not todo.create and not todo.update
    assert [s["metadata"]["name"] for s in todo.delete] == ["web-1"]


def test_plan_placeholder_and_reuse() -> None:
    svc = service()
    meta = slice_meta(svc)
    placeholder = _slice("web-p", desired_groups(svc, []), meta)
    assert "endpoints" in placeholder and placeholder["endpoints"] == []
    assert not plan(desired_groups(svc, []), [placeholder], meta)
    todo = plan(desired_groups(svc, [pod("a", "10.42.0.5")]), [placeholder], meta)
    assert not todo.create and not todo.delete
    assert todo.update[0]["metadata"]["name"] == "web-p"
    assert len(todo.update[0]["endpoints"]) == 1
    full = _slice("web-x", desired_groups(svc, [pod("a", "10.42.0.5")]), meta)
    todo = plan(desired_groups(svc, []), [full], meta)
    assert not todo.create and not todo.delete and todo.update[0]["endpoints"] == []


def test_mirroring_decisions() -> None:
    ep: Obj = {"metadata": {"name": "ext", "namespace": "default", "uid": "u1",
                       "labels": {"x": "y"}},
          "subsets": [{"addresses": [{"ip": "192.0.2.1"}],
                       "notReadyAddresses": [{"ip": "192.0.2.2"}],
                       "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}
    selectorless = {"metadata": {"name": "ext", "namespace": "default"}, "spec": {}}
    assert should_mirror(ep, selectorless)
    assert not should_mirror(ep, service("ext"))
    assert not should_mirror(ep, None)
    skip: Obj = {**ep, "metadata": {"name": "ext", "namespace": "default",
                                    "labels": {sp.SKIP_MIRROR_LABEL: "true"}}}
    assert not should_mirror(skip, selectorless)
    (g,) = mirrored_groups(ep).values()
    assert g.ports == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert {k[0]: e["conditions"]["ready"] for k, e in g.endpoints.items()} == {
        "192.0.2.1": True, "192.0.2.2": False}
