"""nftables rule text of service ports, and the incremental diff between two states."""

from __future__ import annotations

import dataclasses

from kubeling.proxy.model import Endpoint, ServicePort
from kubeling.proxy.nftables import NftablesBackend
from kubeling.proxy.nftrules import (
    NO_EP_NODEPORTS,
    NO_EP_SERVICES,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    chain_name,
    port_rules,
    skeleton,
)

CIDR = "10.42.0.0/16"
A = Endpoint("10.42.0.5", 8080)
B = Endpoint("10.42.0.6", 8080)


def sp(*eps: Endpoint, name: str = "web", **kw: object) -> ServicePort:
    base = ServicePort("default", name, "http", "TCP", 80, cluster_ip="10.43.0.20",
                       all_endpoints=eps, cluster_endpoints=eps,
                       local_endpoints=tuple(e for e in eps if e.node == "n1"))
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_chain_names_are_stable_and_readable() -> None:
    name = chain_name("service", "default/web/tcp/http")
    assert name == chain_name("service", "default/web/tcp/http")
    assert name.startswith("service-") and name.endswith("-default/web/tcp/http")
    assert name != chain_name("service", "default/web/tcp/https")
    assert len(chain_name("endpoint", "x" * 400)) <= 200


def test_cluster_ip_with_two_endpoints() -> None:
    pr = port_rules(sp(A, B), cluster_cidr=CIDR)
    svc_chain = chain_name("service", "default/web/tcp/http")
    assert pr.elements == {(SERVICE_IPS, "10.43.0.20 . tcp . 80"): f"goto {svc_chain}"}
    rules = pr.chains[svc_chain]
    assert rules[0] == ("ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 "
                        "jump mark-for-masquerade")
    assert rules[1].startswith("numgen random mod 2 vmap @service-eps-")
    [(vmap, elems)] = pr.vmaps.items()
    assert rules[1].endswith(vmap) and len(elems) == 2 and elems[0].startswith("0 : goto endpoint-")
    ep_chain = chain_name("endpoint", "default/web/tcp/http__10.42.0.5/8080")
    assert pr.chains[ep_chain] == ("ip saddr 10.42.0.5 jump mark-for-masquerade",
                                   "meta l4proto tcp dnat to 10.42.0.5:8080")
    assert not pr.sets


def test_single_endpoint_needs_no_map_and_masquerade_all() -> None:
    pr = port_rules(sp(A), cluster_cidr=CIDR, masquerade_all=True)
    svc_chain = chain_name("service", "default/web/tcp/http")
    assert pr.chains[svc_chain][0] == "jump mark-for-masquerade"
    assert pr.chains[svc_chain][1].startswith("goto endpoint-")
    assert not pr.vmaps


def test_no_endpoints_rejects_cluster_ip_and_node_port() -> None:
    pr = port_rules(sp(node_port=30080), cluster_cidr=CIDR)
    assert pr.chains == {}
    assert pr.elements == {(NO_EP_SERVICES, "10.43.0.20 . tcp . 80"): "goto reject-chain",
                           (NO_EP_NODEPORTS, "tcp . 30080"): "goto reject-chain"}


def test_local_policy_without_local_endpoints_drops() -> None:
    pr = port_rules(sp(A, node_port=30080, external_local=True, internal_local=True),
                    cluster_cidr=CIDR)
    assert pr.elements[(NO_EP_SERVICES, "10.43.0.20 . tcp . 80")] == "drop"
    assert pr.elements[(NO_EP_NODEPORTS, "tcp . 30080")] == "drop"


def test_node_port_and_external_ip_go_through_the_external_chain() -> None:
    pr = port_rules(sp(A, B, node_port=30080, external_ips=("192.0.2.9",)), cluster_cidr=CIDR)
    ext = chain_name("external", "default/web/tcp/http")
    assert pr.elements[(SERVICE_NODEPORTS, "tcp . 30080")] == f"goto {ext}"
    assert pr.elements[(SERVICE_IPS, "192.0.2.9 . tcp . 80")] == f"goto {ext}"
    assert pr.chains[ext][0] == "jump mark-for-masquerade"
    assert pr.chains[ext][1].startswith("numgen random mod 2 vmap @external-eps-")


def test_external_local_short_circuits_cluster_sources() -> None:
    a = dataclasses.replace(A, node="n1")
    pr = port_rules(sp(a, B, node_port=30080, external_local=True), cluster_cidr=CIDR)
    ext = pr.chains[chain_name("external", "default/web/tcp/http")]
    svc_chain = chain_name("service", "default/web/tcp/http")
    assert ext[0] == f"ip saddr 10.42.0.0/16 goto {svc_chain}"
    assert "mark-for-masquerade" not in ext[-1]
    assert ext[-1].startswith("goto endpoint-")  # only the local endpoint


def test_affinity_sets_are_filled_by_endpoint_chains_and_checked_first() -> None:
    pr = port_rules(sp(A, B, affinity_timeout=60), cluster_cidr=CIDR)
    rules = pr.chains[chain_name("service", "default/web/tcp/http")]
    assert rules[1].startswith("ip saddr @affinity-") and " goto endpoint-" in rules[1]
    assert len(pr.sets) == 2 and set(pr.sets.values()) == {60}
    ep_rules = pr.chains[chain_name("endpoint", "default/web/tcp/http__10.42.0.5/8080")]
    assert ep_rules[1].startswith("update @affinity-") and ep_rules[1].endswith("{ ip saddr }")


def test_skeleton_hooks() -> None:
    text = skeleton("kubeling", cluster_cidr=CIDR)
    for hook in ("hook prerouting priority dstnat", "hook output priority -100",
                 "hook postrouting priority srcnat", "hook forward priority -110"):
        assert hook in text
    assert "masquerade fully-random" in text


def test_full_render_declares_before_use() -> None:
    b = NftablesBackend()
    text = b.render_full({"default/web": b.rules_for([sp(A, B)])})
    lines = text.splitlines()
    assert lines[:2] == ["add table ip kubeling", "delete table ip kubeling"]
    first_rule = next(i for i, x in enumerate(lines) if x.startswith("add rule"))
    last_chain = max(i for i, x in enumerate(lines) if x.startswith("add chain"))
    assert last_chain < first_rule
    assert lines[-1].startswith("add element ip kubeling service-ips {")


def test_diff_touches_only_the_changed_service() -> None:
    b = NftablesBackend()
    c = Endpoint("10.42.0.7", 8080)
    b.programmed = {"default/web": b.rules_for([sp(A, B)]),
                    "default/other": b.rules_for([sp(A, name="other", cluster_ip="10.43.0.21")])}
    assert b.render_diff({"default/web": b.rules_for([sp(A, B)])}) == ""
    text = b.render_diff({"default/web": b.rules_for([sp(A, c)])})
    assert "other" not in text
    lines = text.splitlines()
    new_ep = chain_name("endpoint", "default/web/tcp/http__10.42.0.7/8080")
    gone_ep = chain_name("endpoint", "default/web/tcp/http__10.42.0.6/8080")
    kept_ep = chain_name("endpoint", "default/web/tcp/http__10.42.0.5/8080")
    assert f"add chain ip kubeling {new_ep}" in lines
    assert any(x.startswith("flush map ip kubeling service-eps-") for x in lines)
    assert f"delete chain ip kubeling {gone_ep}" in lines
    assert not any(kept_ep in x and x.startswith(("add chain", "flush chain", "delete"))
                   for x in lines)
    # the service chain itself is unchanged (same count of endpoints): not rewritten
    assert not any(x.startswith("flush chain ip kubeling service-") for x in lines)
    # what refers to the gone chain is flushed before the chain is deleted
    assert lines.index(f"flush chain ip kubeling {gone_ep}") < \
        lines.index(f"delete chain ip kubeling {gone_ep}")
    assert max(i for i, x in enumerate(lines) if x.startswith("flush map")) < \
        lines.index(f"delete chain ip kubeling {gone_ep}")


def test_diff_of_a_deleted_service_removes_everything_it_owned() -> None:
    b = NftablesBackend()
    b.programmed = {"default/web": b.rules_for([sp(A, B, node_port=30080,
                                                   affinity_timeout=30)])}
    lines = b.render_diff({"default/web": None}).splitlines()
    assert "delete element ip kubeling service-ips { 10.43.0.20 . tcp . 80 }" in lines
    assert "delete element ip kubeling service-nodeports { tcp . 30080 }" in lines
    kinds = [x.split()[1] for x in lines if x.startswith("delete ") and "element" not in x]
    assert kinds == sorted(kinds, key=["map", "chain", "set"].index)
    assert kinds.count("set") == 2 and kinds.count("map") == 2


def test_diff_moves_a_service_to_no_endpoints() -> None:
    b = NftablesBackend()
    b.programmed = {"default/web": b.rules_for([sp(A)])}
    lines = b.render_diff({"default/web": b.rules_for([sp()])}).splitlines()
    assert "delete element ip kubeling service-ips { 10.43.0.20 . tcp . 80 }" in lines
    assert ("add element ip kubeling no-endpoint-services "
            "{ 10.43.0.20 . tcp . 80 : goto reject-chain }") in lines
