"""What a pod's network setup gives back, and how CNI results and errors are read.

A CNI plugin answers ADD with a result document on stdout (its interfaces,
the addresses on them, routes, DNS) and answers any failure with an error
document (``code``, ``msg``, ``details``) and a non-zero exit. The runtime only
needs the pod's addresses out of a result; it keeps the whole document too,
because the next plugin of a list gets it as ``prevResult`` and DEL gets it
again from the cache.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NetworkStatus:
    """The pod's addresses: ``ip`` is the primary one (IPv4 first), ``ips`` all of them,
    ``gateway`` the primary one's gateway, ``interface`` the pod-side interface."""

    ip: str
    ips: tuple[str, ...]
    gateway: str = ""
    interface: str = "eth0"


class NetworkError(Exception):
    """Setting up or tearing down a pod's network failed; the message says which plugin
    and what it said."""


def _bare(address: str) -> str:
    """``10.42.0.5/24`` → ``10.42.0.5``."""
    return str(ipaddress.ip_interface(address).ip)


def status_from_result(result: dict[str, Any], ifname: str = "eth0") -> NetworkStatus:
    """The pod's addresses in a CNI result (versions 0.1.0 to 1.0.0). Addresses on the
    sandbox interface ``ifname`` come first; a result naming no interfaces gives all."""
    entries: list[tuple[str, str]] = []  # (address, gateway)
    if "ips" in result:
        interfaces = result.get("interfaces") or []
        mine = {i for i, itf in enumerate(interfaces)
                if isinstance(itf, dict) and itf.get("name") == ifname and itf.get("sandbox")}
        ips = [ip for ip in result.get("ips") or [] if isinstance(ip, dict) and ip.get("address")]
        chosen = [ip for ip in ips if ip.get("interface") in mine] or ips
        entries = [(_bare(ip["address"]), str(ip.get("gateway") or "")) for ip in chosen]
    else:  # 0.1.0 / 0.2.0: {"ip4": {"ip": ..., "gateway": ...}, "ip6": {...}}
        for key in ("ip4", "ip6"):
            block = result.get(key)
            if isinstance(block, dict) and block.get("ip"):
                entries.append((_bare(block["ip"]), str(block.get("gateway") or "")))
    if not entries:
        raise NetworkError(f"the CNI result gives the pod no IP address: {json.dumps(result)}")
    entries.sort(key=lambda e: ipaddress.ip_address(e[0]).version)
    ip, gateway = entries[0]
    return NetworkStatus(ip=ip, ips=tuple(a for a, _ in entries), gateway=gateway,
                         interface=ifname)


def plugin_error(plugin: str, command: str, code: int, stdout: bytes, stderr: bytes
                 ) -> NetworkError:
    """The error of a plugin that exited with ``code``: its CNI error document when it wrote
    one (``msg``: ``details``), else whatever it printed."""
    where = f'plugin type="{plugin}" failed ({command.lower()})'
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and (doc.get("msg") or doc.get("code")):
        msg = str(doc.get("msg") or f"error code {doc.get('code')}")
        details = str(doc.get("details") or "")
        text = f"{msg}: {details}" if details and details not in msg else msg
        return NetworkError(f"{where}: {text}")
    said = (stderr or stdout).decode(errors="replace").strip()
    return NetworkError(f"{where}: {said or f'exit status {code}'}")
