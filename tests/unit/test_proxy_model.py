"""The proxy's model: which service ports exist and which endpoints each kind of traffic uses."""

from __future__ import annotations

from typing import Any

from kubeling.proxy.model import Endpoint, service_ports, usable


def svc(name: str = "web", *, ns: str = "default", ports: list[dict[str, Any]] | None = None,
        **spec: Any) -> dict[str, Any]:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("clusterIP", "10.43.0.20")
    spec["ports"] = ports if ports is not None else [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def eslice(name: str, endpoints: list[dict[str, Any]], *, port_name: str = "http",
           port: int = 8080, protocol: str = "TCP", svc_name: str = "web",
           address_type: str = "IPv4") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": address_type,
            "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": endpoints}


def ep(ip: str, *, ready: bool | None = True, serving: bool | None = None,
       terminating: bool | None = None, node: str = "n1") -> dict[str, Any]:
    cond: dict[str, Any] = {}
    if ready is not None:
        cond["ready"] = ready
    if serving is not None:
        cond["serving"] = serving
    if terminating is not None:
        cond["terminating"] = terminating
    return {"addresses": [ip], "conditions": cond, "nodeName": node}


def test_cluster_ip_port_with_ready_endpoints() -> None:
    info = service_ports(svc(), [eslice("a", [ep("10.42.0.5"), ep("10.42.0.6", ready=False)])],
                         "n1")
    [sp] = info.ports
    assert (sp.key, sp.cluster_ip, sp.port, sp.protocol) == \
        ("default/web/tcp/http", "10.43.0.20", 80, "TCP")
    assert [e.addr for e in sp.cluster_endpoints] == ["10.42.0.5:8080"]
    assert len(sp.all_endpoints) == 2
    assert sp.node_port == 0 and not sp.has_external


def test_terminating_serving_endpoints_are_the_fallback() -> None:
    eps = [Endpoint("10.42.0.5", 80, ready=False, serving=True, terminating=True),
           Endpoint("10.42.0.6", 80, ready=False, serving=False, terminating=True)]
    assert [e.ip for e in usable(eps)] == ["10.42.0.5"]
    assert [e.ip for e in usable([*eps, Endpoint("10.42.0.7", 80)])] == ["10.42.0.7"]


def test_slice_port_is_matched_by_name_and_protocol() -> None:
    s = svc(ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                   {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    slices = [{"metadata": {"name": "x", "namespace": "default"}, "addressType": "IPv4",
               "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"},
                         {"name": "dns-tcp", "port": 5354, "protocol": "TCP"}],
               "endpoints": [ep("10.42.0.9")]}]
    udp, tcp = service_ports(s, slices, "n1").ports
    assert (udp.protocol, udp.cluster_endpoints[0].port) == ("UDP", 5353)
    assert (tcp.protocol, tcp.cluster_endpoints[0].port) == ("TCP", 5354)


def test_duplicates_across_slices_and_ipv6_slices() -> None:
    slices = [eslice("a", [ep("10.42.0.5", ready=False)]), eslice("b", [ep("10.42.0.5")]),
              eslice("c", [ep("fd00::1")], address_type="IPv6")]
    [sp] = service_ports(svc(), slices, "n1").ports
    assert [(e.ip, e.ready) for e in sp.all_endpoints] == [("10.42.0.5", True)]


def test_headless_and_external_name_are_not_proxied() -> None:
    assert service_ports(svc(clusterIP="None"), [], "n1").ports == []
    assert service_ports(svc(type="ExternalName", externalName="x.example"), [], "n1").ports \
        == []


def test_node_port_external_ips_and_load_balancer_ingress() -> None:
    s = svc(type="LoadBalancer", externalIPs=["192.0.2.9"],
            ports=[{"name": "", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"hostname": "lb"}]}}
    [sp] = service_ports(s, [eslice("a", [ep("10.42.0.5")], port_name="")], "n1").ports
    assert sp.node_port == 30080
    assert sp.external_ips == ("192.0.2.9", "192.0.2.10")
    assert sp.key == "default/web/tcp/"
    # a ClusterIP Service's stray nodePort is not served
    [plain] = service_ports(svc(ports=[{"name": "", "port": 80, "nodePort": 30081}]), [],
                            "n1").ports
    assert plain.node_port == 0


def test_session_affinity_default_timeout() -> None:
    [sp] = service_ports(svc(sessionAffinity="ClientIP"), [], "n1").ports
    assert sp.affinity_timeout == 10800
    [sp] = service_ports(svc(sessionAffinity="ClientIP", sessionAffinityConfig={
        "clientIP": {"timeoutSeconds": 60}}), [], "n1").ports
    assert sp.affinity_timeout == 60


def test_traffic_policies_local_use_this_nodes_endpoints() -> None:
    s = svc(type="NodePort", externalTrafficPolicy="Local", internalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}])
    slices = [eslice("a", [ep("10.42.0.5", node="n1"), ep("10.42.1.5", node="n2")])]
    [sp] = service_ports(s, slices, "n1").ports
    assert [e.ip for e in sp.cluster_endpoints] == ["10.42.0.5", "10.42.1.5"]
    assert [e.ip for e in sp.internal_endpoints] == ["10.42.0.5"]
    assert [e.ip for e in sp.external_endpoints] == ["10.42.0.5"]
    [other] = service_ports(s, slices, "n3").ports
    assert other.external_endpoints == () and len(other.cluster_endpoints) == 2


def test_trigger_times_are_collected() -> None:
    sl = eslice("a", [ep("10.42.0.5")])
    sl["metadata"]["annotations"] = {
        "endpoints.kubernetes.io/last-change-trigger-time": "2024-01-01T00:00:00Z"}
    assert service_ports(svc(), [sl], "n1").trigger_times == ["2024-01-01T00:00:00Z"]
