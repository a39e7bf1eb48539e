"""A pod's resolver settings (its /etc/resolv.conf), computed as the kubelet computes them.

The kubelet, not the runtime, decides what a pod resolves with (the kubelet's
pkg/kubelet/network/dns). ``dnsPolicy`` picks the base:

- ``ClusterFirst`` (the default): the cluster DNS, searching the pod's own
  namespace, ``svc.<domain>`` and ``<domain>`` before the host's searches, with
  ``ndots:5``; a host-network pod gets ``Default`` instead;
- ``ClusterFirstWithHostNet``: the cluster DNS even on the host network;
- ``Default``: the host's resolv.conf (nameservers, search, options);
- ``None``: nothing but the pod's ``dnsConfig``.

``dnsConfig`` is merged on top (nameservers and searches appended without
duplicates, options merged by name, the pod's winning), then the result is cut
to what resolvers accept: 3 nameservers, 32 search domains of at most 253
characters and a search line of at most 2048 characters. Without a cluster DNS
address, ClusterFirst falls back to Default and says so (``MissingClusterDNS``).

Everything here is pure: the host's file is parsed by :func:`parse_resolv_conf`
and the warnings come back to the caller, which records them as events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubeling.client.interface import Obj

CLUSTER_FIRST = "ClusterFirst"
CLUSTER_FIRST_WITH_HOST_NET = "ClusterFirstWithHostNet"
DEFAULT = "Default"
NONE = "None"

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
MAX_DOMAIN_CHARS = 253
DEFAULT_OPTIONS = ("ndots:5",)

MISSING_CLUSTER_DNS = "MissingClusterDNS"
DNS_CONFIG_FORMING = "DNSConfigForming"


@dataclass(frozen=True)
class DnsConfig:
    """Resolver settings: the three lines of a resolv.conf."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass
class PodDns:
    """The pod's settings and the Warning events (reason, message) computing them raised."""

    config: DnsConfig
    warnings: list[tuple[str, str]] = field(default_factory=list)


def parse_resolv_conf(text: str, *, drop_loopback: bool = True) -> DnsConfig:
    """A resolv.conf's nameservers, search domains (trailing dots removed) and options.

    Loopback nameservers (systemd-resolved's 127.0.0.53) are dropped by default: a pod in
    its own network namespace cannot reach the host's loopback."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            server = words[1]
            if drop_loopback and (server.startswith("127.") or server == "::1"):
                continue
            servers.append(server)
        elif words[0] == "search":
            searches = [w.removesuffix(".") for w in words[1:] if w != "."]
        elif words[0] == "options":
            options.extend(words[1:])
    return DnsConfig(tuple(servers), tuple(searches), tuple(options))


def read_resolv_conf(path: Path | str) -> DnsConfig:
    """The host's resolver settings from ``path``; empty when the file cannot be read."""
    try:
        return parse_resolv_conf(Path(path).read_text())
    except OSError:
        return DnsConfig()


def pod_ref(pod: Obj) -> str:
    """A pod as the kubelet names it in messages: ``name_namespace(uid)``."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def _dedup(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.add(item)
            out.append(item)
    return out


def merge_options(existing: Iterable[str], extra: Iterable[Obj]) -> list[str]:
    """Options by name (``ndots:5`` is name ``ndots``, value ``5``): the pod's
    ``dnsConfig.options`` replace same-named ones; first-seen order is kept."""
    merged: dict[str, str | None] = {}
    for option in existing:
        name, sep, value = option.partition(":")
        merged[name] = value if sep else None
    for item in extra:
        key = str(item.get("name") or "")
        if not key:
            continue
        raw = item.get("value")
        merged[key] = str(raw) if raw not in (None, "") else None
    return [name if value is None else f"{name}:{value}" for name, value in merged.items()]


def _fit_searches(searches: list[str], warnings: list[tuple[str, str]]) -> list[str]:
    fitted = searches[:MAX_SEARCHES]
    exceeded = len(fitted) < len(searches)
    kept = [s for s in fitted if len(s) <= MAX_DOMAIN_CHARS]
    exceeded = exceeded or len(kept) < len(fitted)
    while kept and len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()
        exceeded = True
    if exceeded:
        warnings.append((DNS_CONFIG_FORMING,
                         "Search Line limits were exceeded, some search paths have been "
                         f"omitted, the applied search line is: {' '.join(kept)}"))
    return kept


def _fit_servers(servers: list[str], warnings: list[tuple[str, str]]) -> list[str]:
    if len(servers) <= MAX_NAMESERVERS:
        return servers
    kept = servers[:MAX_NAMESERVERS]
    warnings.append((DNS_CONFIG_FORMING,
                     "Nameserver limits were exceeded, some nameservers have been omitted, "
                     f"the applied nameserver line is: {' '.join(kept)}"))
    return kept


def wants_cluster_dns(pod: Obj) -> bool:
    """Whether the pod's policy asks for the cluster DNS (before any fallback)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or CLUSTER_FIRST
    return policy == CLUSTER_FIRST_WITH_HOST_NET or (
        policy == CLUSTER_FIRST and not spec.get("hostNetwork"))


def effective_policy(pod: Obj, *, has_cluster_dns: bool) -> str:
    """Which base the pod gets: ClusterFirst (cluster DNS), Default (host) or None."""
    if ((pod.get("spec") or {}).get("dnsPolicy") or CLUSTER_FIRST) == NONE:
        return NONE
    return CLUSTER_FIRST if wants_cluster_dns(pod) and has_cluster_dns else DEFAULT


def pod_dns(pod: Obj, *, cluster_dns: Sequence[str], cluster_domain: str,
            host: DnsConfig) -> PodDns:
    """The pod's resolver settings per its ``dnsPolicy`` and ``dnsConfig``."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    warnings: list[tuple[str, str]] = []
    policy = effective_policy(pod, has_cluster_dns=bool(cluster_dns))
    if wants_cluster_dns(pod) and not cluster_dns:
        warnings.append((MISSING_CLUSTER_DNS, f'pod: "{pod_ref(pod)}". kubelet does not have '
                         'ClusterDNS IP configured and cannot create Pod using "ClusterFirst" '
                         'policy. Falling back to "Default" policy.'))
    servers: list[str]
    searches: list[str]
    options: list[str]
    if policy == CLUSTER_FIRST:
        namespace = meta.get("namespace") or "default"
        domain = cluster_domain.strip(".")
        servers = list(cluster_dns)
        searches = _dedup([f"{namespace}.svc.{domain}", f"svc.{domain}", domain,
                           *host.searches])
        options = list(DEFAULT_OPTIONS)
    elif policy == DEFAULT:
        servers, searches, options = list(host.servers), list(host.searches), list(host.options)
    else:
        servers, searches, options = [], [], []
    extra = spec.get("dnsConfig")
    if extra is not None:
        servers = _dedup([*servers, *(extra.get("nameservers") or ())])
        searches = _dedup([*searches, *(extra.get("searches") or ())])
        options = merge_options(options, extra.get("options") or ())
    servers = _fit_servers(servers, warnings)
    searches = _fit_searches(searches, warnings)
    return PodDns(DnsConfig(tuple(servers), tuple(searches), tuple(options)), warnings)


def render(config: DnsConfig) -> str:
    """The resolv.conf text for ``config``."""
    lines = [f"nameserver {s}" for s in config.servers]
    if config.searches:
        lines.append("search " + " ".join(config.searches))
    if config.options:
        lines.append("options " + " ".join(config.options))
    return "\n".join(lines) + ("\n" if lines else "")
