"""Service cluster IPs and node ports, over a real registry and SQLite store: what
kube-apiserver allocates, refuses (with its wording) and frees."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kubeling.api import errors
from kubeling.registry.allocator import ServiceAllocator
from kubeling.registry.registry import Registry
from kubeling.storage import open_store
from kubeling.utils.tasks import cancel_all
from tests.apiharness import client, kind, running_registry

SVC = kind("", "services")
EP = kind("", "endpoints")
SLICE = kind("discovery.k8s.io", "endpointslices")


def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], **spec}}


def cause(exc: errors.StatusError) -> tuple[str, str]:
    assert exc.causes
    c = exc.causes[0]
    return str(c.get("field")), str(c.get("message"))


async def test_cluster_ips_come_from_the_range_above_the_static_band(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        k8s = await c.get(SVC, "default", "kubernetes")
        assert k8s["spec"]["clusterIP"] == "10.43.0.1"
        ips = [(await c.create(SVC, "default", svc(f"s{i}")))["spec"]["clusterIP"]
               for i in range(3)]
        assert len(set(ips)) == 3
        for ip in ips:
            assert ip.startswith("10.43.") and ip not in ("10.43.0.1", "10.43.0.10")
            assert int(ip.split(".")[2]) >= 1  # above the 256-address static band
        made = await c.create(SVC, "default", svc("pinned", clusterIP="10.43.0.20"))
        assert made["spec"]["clusterIPs"] == ["10.43.0.20"]


async def test_explicit_ips_outside_the_range_or_taken_are_refused(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        with pytest.raises(errors.StatusError) as err:
            await c.create(SVC, "default", svc("far", clusterIP="10.0.0.5"))
        assert err.value.code == 422
        assert cause(err.value) == (
            "spec.clusterIPs",
            'Invalid value: []string{"10.0.0.5"}: failed to allocate IP 10.0.0.5: the provided '
            "IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16")
        with pytest.raises(errors.StatusError) as err:
            await c.create(SVC, "default", svc("dup", clusterIP="10.43.0.1"))
        assert err.value.code == 422
        assert "failed to allocate IP 10.43.0.1: provided IP is already allocated" in \
            cause(err.value)[1]


async def test_the_dns_address_stays_free_for_the_dns_service(tmp_path: Path) -> None:
    alloc = ServiceAllocator("10.43.0.0/28")  # 14 usable, a static band of 16: all of it
    taken: list[str] = []
    for _ in range(12):
        taken.append(alloc._next_ip(set(taken)))
    assert "10.43.0.1" not in taken and "10.43.0.10" not in taken
    with pytest.raises(errors.StatusError) as err:
        alloc._next_ip(set(taken))
    assert err.value.code == 500 and "range is full" in err.value.message
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        for i in range(20):
            await c.create(SVC, "default", svc(f"s{i}"))
        dns = svc("kube-dns", clusterIP="10.43.0.10")
        made = await c.create(SVC, "kube-system", dns)
        assert made["spec"]["clusterIP"] == "10.43.0.10"


async def test_node_ports_auto_explicit_out_of_range_and_taken(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        a = await c.create(SVC, "default", svc("a", type="NodePort"))
        port = a["spec"]["ports"][0]["nodePort"]
        assert 30000 <= port <= 32767
        b = await c.create(SVC, "default", svc("b", type="NodePort",
                                               ports=[{"port": 80, "nodePort": 30080}]))
        assert b["spec"]["ports"][0]["nodePort"] == 30080
        with pytest.raises(errors.StatusError) as err:
            await c.create(SVC, "default", svc("c", type="NodePort",
                                               ports=[{"port": 80, "nodePort": 30080}]))
        assert err.value.code == 422
        assert cause(err.value) == ("spec.ports[0].nodePort",
                                    "Invalid value: 30080: provided port is already allocated")
        with pytest.raises(errors.StatusError) as err:
            await c.create(SVC, "default", svc("d", type="NodePort",
                                               ports=[{"port": 80, "nodePort": 8080}]))
        assert cause(err.value) == (
            "spec.ports[0].nodePort", "Invalid value: 8080: provided port is not in the valid "
            "range. The range of valid ports is 30000-32767")
        # the same port number over TCP and UDP shares one node port
        dns = await c.create(SVC, "default", svc("e", type="NodePort", ports=[
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]))
        np = [p["nodePort"] for p in dns["spec"]["ports"]]
        assert np[0] == np[1] and np[0] not in (port, 30080)


async def test_concurrent_creates_never_collide(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        made = await asyncio.gather(*(c.create(SVC, "default", svc(f"n{i}", type="NodePort"))
                                      for i in range(40)))
        ips = {m["spec"]["clusterIP"] for m in made}
        ports = {m["spec"]["ports"][0]["nodePort"] for m in made}
        assert len(ips) == 40 and len(ports) == 40


async def test_a_deleted_services_ip_and_port_can_be_taken_again(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        first = await c.create(SVC, "default", svc("x", type="NodePort"))
        ip, port = first["spec"]["clusterIP"], first["spec"]["ports"][0]["nodePort"]
        await c.delete(SVC, "default", "x")
        again = await c.create(SVC, "default", svc(
            "y", type="NodePort", clusterIP=ip, ports=[{"port": 80, "nodePort": port}]))
        assert again["spec"]["clusterIP"] == ip
        assert again["spec"]["ports"][0]["nodePort"] == port


async def test_type_changes_allocate_and_release(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        s = await c.create(SVC, "default", svc("t"))
        assert "nodePort" not in s["spec"]["ports"][0]
        s = await c.patch(SVC, "default", "t", {"spec": {"type": "NodePort"}})
        port = s["spec"]["ports"][0]["nodePort"]
        assert 30000 <= port <= 32767
        s = await c.patch(SVC, "default", "t", {"spec": {"type": "ClusterIP"}})
        assert "nodePort" not in s["spec"]["ports"][0]
        # the released port is free for someone else
        other = await c.create(SVC, "default", svc("u", type="NodePort",
                                                   ports=[{"port": 80, "nodePort": port}]))
        assert other["spec"]["ports"][0]["nodePort"] == port
        ip = s["spec"]["clusterIP"]
        s = await c.patch(SVC, "default", "t", {"spec": {"type": "ExternalName",
                                                         "externalName": "example.com"}})
        assert "clusterIP" not in s["spec"] and "clusterIPs" not in s["spec"]
        again = await c.create(SVC, "default", svc("v", clusterIP=ip))
        assert again["spec"]["clusterIP"] == ip


async def test_headless_external_name_and_load_balancer(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        h = await c.create(SVC, "default", svc("h", clusterIP="None"))
        assert h["spec"]["clusterIP"] == "None" and h["spec"]["clusterIPs"] == ["None"]
        e = await c.create(SVC, "default", {"apiVersion": "v1", "kind": "Service",
                                            "metadata": {"name": "e"},
                                            "spec": {"type": "ExternalName",
                                                     "externalName": "example.com"}})
        assert "clusterIP" not in e["spec"]
        lb = await c.create(SVC, "default", svc("lb", type="LoadBalancer"))
        assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
        assert 30000 <= lb["spec"]["ports"][0]["nodePort"] <= 32767
        bare = await c.create(SVC, "default", svc("lb2", type="LoadBalancer",
                                                  allocateLoadBalancerNodePorts=False))
        assert "nodePort" not in bare["spec"]["ports"][0]
        local = await c.create(SVC, "default", svc("lb3", type="LoadBalancer",
                                                   externalTrafficPolicy="Local"))
        assert 30000 <= local["spec"]["healthCheckNodePort"] <= 32767


async def test_configured_range_and_cidr(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'state.db'}")
    reg = Registry(store, service_cidr="10.96.0.0/12", node_port_range=(30000, 30100))
    await reg.start()
    try:
        c = client(reg)
        assert (await c.get(SVC, "default", "kubernetes"))["spec"]["clusterIP"] == "10.96.0.1"
        s = await c.create(SVC, "default", svc("a", type="NodePort"))
        assert 30000 <= s["spec"]["ports"][0]["nodePort"] <= 30100
        assert s["spec"]["clusterIP"].startswith("10.96.")
        with pytest.raises(errors.StatusError) as err:
            await c.create(SVC, "default", svc("b", clusterIP="10.43.0.7"))
        assert "The range of valid IPs is 10.96.0.0/12" in cause(err.value)[1]
    finally:
        await cancel_all()
        await reg.stop()
        await store.close()


async def test_master_endpoints_follow_the_api_server(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        await reg.reconcile_master_endpoints("192.0.2.9", 6555)
        s = await c.get(SVC, "default", "kubernetes")
        assert s["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                       "targetPort": 6555}]
        ep = await c.get(EP, "default", "kubernetes")
        assert ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
        assert ep["subsets"] == [{"addresses": [{"ip": "192.0.2.9"}], "ports": [
            {"name": "https", "port": 6555, "protocol": "TCP"}]}]
        sl = await c.get(SLICE, "default", "kubernetes")
        assert sl["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
        assert sl["addressType"] == "IPv4"
        assert sl["endpoints"][0]["addresses"] == ["192.0.2.9"]
        assert sl["endpoints"][0]["conditions"]["ready"] is True
        assert sl["ports"] == [{"name": "https", "port": 6555, "protocol": "TCP"}]
        rvs = [o["metadata"]["resourceVersion"] for o in (s, ep, sl)]
        await reg.reconcile_master_endpoints("192.0.2.9", 6555)  # idempotent
        again = [(await c.get(k, "default", "kubernetes"))["metadata"]["resourceVersion"]
                 for k in (SVC, EP, SLICE)]
        assert again == rvs
        await reg.reconcile_master_endpoints("192.0.2.10", 7000)  # a new address and port
        ep = await c.get(EP, "default", "kubernetes")
        assert ep["subsets"][0]["addresses"] == [{"ip": "192.0.2.10"}]
        sl = await c.get(SLICE, "default", "kubernetes")
        assert sl["endpoints"][0]["addresses"] == ["192.0.2.10"]
        s = await c.get(SVC, "default", "kubernetes")
        assert s["spec"]["ports"][0]["targetPort"] == 7000
