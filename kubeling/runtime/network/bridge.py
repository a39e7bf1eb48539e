"""The node's pod bridge, seen from the outside: its addresses and its ports.

The bridge plugin gives the bridge one IPv4 address, the gateway of the pod
CIDR, and refuses to add a second one. When a node's pod CIDR changes (or a
test reuses a bridge name with another CIDR) a bridge left with the old
gateway would make every new pod fail; a bridge with no pod attached is
simply deleted so the plugin makes it again. One with pods attached is left
alone: those pods still use it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from typing import Any

log = logging.getLogger("kubeling.runtime.network")


def _ip_json(*args: str) -> list[dict[str, Any]]:
    proc = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return []
    try:
        doc = json.loads(proc.stdout or "[]")
    except ValueError:
        return []
    return [d for d in doc if isinstance(d, dict)] if isinstance(doc, list) else []


def ipv4_addresses(bridge: str) -> list[str]:
    """The bridge's IPv4 addresses as ``a.b.c.d/len`` ([] when there is no such link)."""
    out = []
    for link in _ip_json("-4", "addr", "show", "dev", bridge):
        for a in link.get("addr_info") or []:
            if a.get("family") == "inet":
                out.append(f"{a['local']}/{a['prefixlen']}")
    return out


def ports(bridge: str) -> list[str]:
    """The links enslaved to the bridge (the pods' host-side veths)."""
    return [str(link.get("ifname")) for link in _ip_json("link", "show", "master", bridge)]


def exists(bridge: str) -> bool:
    return bool(_ip_json("link", "show", "dev", bridge))


def delete(bridge: str) -> bool:
    """Delete the bridge (True if it was there)."""
    if not exists(bridge):
        return False
    subprocess.run(["ip", "link", "del", "dev", bridge], capture_output=True, check=False)
    return True


def reset_if_stale(bridge: str, pod_cidr: str) -> bool:
    """Delete ``bridge`` when it holds an IPv4 address outside ``pod_cidr`` and no pod uses
    it; True if deleted."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    stale = [a for a in ipv4_addresses(bridge) if ipaddress.ip_interface(a).ip not in net]
    if not stale:
        return False
    if ports(bridge):
        log.warning("bridge %s has %s outside the pod CIDR %s but pods still use it; new pods "
                    "will fail until they are gone", bridge, ", ".join(stale), pod_cidr)
        return False
    log.info("bridge %s had %s, outside the pod CIDR %s: deleted, to be made again",
             bridge, ", ".join(stale), pod_cidr)
    return delete(bridge)
