"""The nftables rules of one service port, and the fixed skeleton of the table.

Shape (after kube-proxy's nftables mode): one table ``ip <name>`` whose
``services`` chain looks the destination up in two verdict maps —
``service-ips`` (cluster IP, external IP and load-balancer IP . protocol . port)
and ``service-nodeports`` (protocol . port, for any local address) — and jumps
to the service port's own chain. That chain marks traffic for masquerade when
it needs it and picks an endpoint chain with ``numgen random mod N``; the
endpoint chain DNATs. ClientIP affinity is a dynamic set per endpoint, filled
by the endpoint chain and checked first by the service chain. Service ports
without endpoints are entered in ``no-endpoint-*`` maps that filter chains
consult to reject new connections at once.

Everything a service port owns (chains, affinity sets, map elements) is
returned as a :class:`PortRules`, so the backend can diff one port's rules
against what it programmed before and touch only what changed. Chain names
are a stable hash of the service port (and endpoint) plus a readable tail, as
kube-proxy names them; they survive restarts, so a new proxy can take over.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass, field

from kubeling.proxy.model import Endpoint, ServicePort

MASQ_MARK = "0x4000"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_EP_SERVICES = "no-endpoint-services"
NO_EP_NODEPORTS = "no-endpoint-nodeports"
MAPS = {
    SERVICE_IPS: "ipv4_addr . inet_proto . inet_service : verdict",
    SERVICE_NODEPORTS: "inet_proto . inet_service : verdict",
    NO_EP_SERVICES: "ipv4_addr . inet_proto . inet_service : verdict",
    NO_EP_NODEPORTS: "inet_proto . inet_service : verdict",
}
REJECT = "goto reject-chain"
DROP = "drop"
_MAX_NAME = 200  # nftables allows 256


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest())[:8].decode()


@functools.lru_cache(maxsize=1 << 16)
def chain_name(prefix: str, key: str) -> str:
    """``prefix-HASH-key``: unique by the hash, readable by the key."""
    return f"{prefix}-{_hash(key)}-{key}"[:_MAX_NAME]


def endpoint_key(sp: ServicePort, ep: Endpoint) -> str:
    return f"{sp.key}__{ep.ip}/{ep.port}"


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    """The endpoint's affinity set; its timeout is part of the name, since a set's timeout
    cannot change in place."""
    return chain_name("affinity", f"{endpoint_key(sp, ep)}/{sp.affinity_timeout}")


@dataclass
class PortRules:
    """What one service port owns in the table."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    vmaps: dict[str, tuple[str, ...]] = field(default_factory=dict)  # numgen index -> goto
    sets: dict[str, int] = field(default_factory=dict)  # affinity set -> timeout seconds
    elements: dict[tuple[str, str], str] = field(default_factory=dict)  # (map, key) -> verdict

    def merge(self, other: PortRules) -> None:
        self.chains.update(other.chains)
        self.vmaps.update(other.vmaps)
        self.sets.update(other.sets)
        self.elements.update(other.elements)


def skeleton(table: str, *, cluster_cidr: str) -> str:
    """The fixed part of the table: base chains, helper chains and the maps (no elements).
    Written as one block so it can follow a ``delete table`` in a full sync."""
    del cluster_cidr  # masquerade decisions live in the service chains
    maps = "".join(f"\tmap {name} {{ type {t}; }}\n" for name, t in MAPS.items())
    check = "ct state new jump service-endpoints-check"
    lookup = ("\t\tip daddr . meta l4proto . th dport vmap @{ips}\n"
              "\t\tfib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport "
              "vmap @{ports}\n")
    return (
        f"table ip {table} {{\n"
        '\tcomment "kubeling service proxy";\n'
        f"{maps}"
        "\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; "
        "policy accept;\n\t\tjump services\n\t}\n"
        "\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n"
        "\t\tjump services\n\t}\n"
        "\tchain nat-postrouting {\n\t\ttype nat hook postrouting priority srcnat; "
        "policy accept;\n\t\tjump masquerading\n\t}\n"
        f"\tchain filter-input {{\n\t\ttype filter hook input priority -110; policy accept;\n"
        f"\t\t{check}\n\t}}\n"
        f"\tchain filter-forward {{\n\t\ttype filter hook forward priority -110; "
        f"policy accept;\n\t\t{check}\n\t}}\n"
        f"\tchain filter-output {{\n\t\ttype filter hook output priority -110; "
        f"policy accept;\n\t\t{check}\n\t}}\n"
        "\tchain service-endpoints-check {\n"
        + lookup.format(ips=NO_EP_SERVICES, ports=NO_EP_NODEPORTS) +
        "\t}\n"
        # TCP gets a reset: ICMP errors are rate-limited per peer, a reset is not
        "\tchain reject-chain {\n\t\tmeta l4proto tcp reject with tcp reset\n"
        "\t\treject\n\t}\n"
        "\tchain services {\n"
        + lookup.format(ips=SERVICE_IPS, ports=SERVICE_NODEPORTS) +
        "\t}\n"
        f"\tchain mark-for-masquerade {{\n\t\tmeta mark set meta mark | {MASQ_MARK}\n\t}}\n"
        f"\tchain masquerading {{\n\t\tmeta mark & {MASQ_MARK} == 0 return\n"
        f"\t\tmeta mark set meta mark ^ {MASQ_MARK}\n\t\tmasquerade fully-random\n\t}}\n"
        "}\n")


def _proto(sp: ServicePort) -> str:
    return sp.protocol.lower()


def _dispatch(sp: ServicePort, eps: tuple[Endpoint, ...], vmap: str, out: PortRules
              ) -> list[str]:
    """Rules choosing an endpoint chain: affinity first, then a random pick through the
    named verdict map ``vmap`` (named, not anonymous: nft handles thousands of named maps
    in one transaction several times faster than as many anonymous ones)."""
    rules = []
    names = [chain_name("endpoint", endpoint_key(sp, ep)) for ep in eps]
    if sp.affinity_timeout:
        for ep, name in zip(eps, names, strict=True):
            rules.append(f"ip saddr @{affinity_set(sp, ep)} goto {name}")
    if len(names) == 1:
        rules.append(f"goto {names[0]}")
    else:
        out.vmaps[vmap] = tuple(f"{i} : goto {n}" for i, n in enumerate(names))
        rules.append(f"numgen random mod {len(names)} vmap @{vmap}")
    return rules


def port_rules(sp: ServicePort, *, cluster_cidr: str, masquerade_all: bool = False
               ) -> PortRules:
    """Chains, affinity sets and map elements of one service port."""
    out = PortRules()
    proto = _proto(sp)
    svc_chain = chain_name("service", sp.key)
    ext_chain = chain_name("external", sp.key)
    no_eps = REJECT if not sp.cluster_endpoints else DROP
    internal = sp.internal_endpoints
    if sp.cluster_ip:
        key = f"{sp.cluster_ip} . {proto} . {sp.port}"
        if internal:
            masq = "jump mark-for-masquerade" if masquerade_all else (
                f"ip daddr {sp.cluster_ip} {proto} dport {sp.port} "
                f"ip saddr != {cluster_cidr} jump mark-for-masquerade")
            out.chains[svc_chain] = (
                masq, *_dispatch(sp, internal, chain_name("service-eps", sp.key), out))
            out.elements[(SERVICE_IPS, key)] = f"goto {svc_chain}"
        else:
            out.elements[(NO_EP_SERVICES, key)] = no_eps
    external = sp.external_endpoints
    if sp.has_external:
        if external:
            rules: list[str] = []
            if not sp.external_local:
                rules.append("jump mark-for-masquerade")
            elif svc_chain in out.chains and not sp.internal_local:
                # pods and the node itself reach an external address through any endpoint
                rules += [f"ip saddr {cluster_cidr} goto {svc_chain}",
                          "fib saddr type local jump mark-for-masquerade",
                          f"fib saddr type local goto {svc_chain}"]
            rules += _dispatch(sp, external, chain_name("external-eps", sp.key), out)
            out.chains[ext_chain] = tuple(rules)
            target, ips_map, ports_map = f"goto {ext_chain}", SERVICE_IPS, SERVICE_NODEPORTS
        else:
            target, ips_map, ports_map = no_eps, NO_EP_SERVICES, NO_EP_NODEPORTS
        for ip in sp.external_ips:
            out.elements[(ips_map, f"{ip} . {proto} . {sp.port}")] = target
        if sp.node_port:
            out.elements[(ports_map, f"{proto} . {sp.node_port}")] = target
    for ep in sorted({*internal, *(external if sp.has_external else ())}):
        ekey = endpoint_key(sp, ep)
        rules = [f"ip saddr {ep.ip} jump mark-for-masquerade"]
        if sp.affinity_timeout:
            aff = affinity_set(sp, ep)
            out.sets[aff] = sp.affinity_timeout
            rules.append(f"update @{aff} {{ ip saddr }}")
        rules.append(f"meta l4proto {proto} dnat to {ep.ip}:{ep.port}")
        out.chains[chain_name("endpoint", ekey)] = tuple(rules)
    return out


VMAP_DECL = "{ typeof numgen random mod 1 : verdict; }"


def set_decl(timeout: int) -> str:
    return f"{{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
