"""The Service plumbing that runs beside the node agent: the service proxy and the cluster DNS.

Kubernetes runs kube-proxy on every node and CoreDNS as pods behind the
``kube-dns`` Service; k3s runs both inside its one binary. kubeling does the
same: every node agent (the server's own and each ``kubeling agent``) runs a
:class:`~kubeling.proxy.ServiceProxy` in its process, and the server runs the
cluster DNS in its process, listening on the node's address and published as
``kube-system/kube-dns`` at the tenth address of the service CIDR (10.43.0.10
by default), so pods reach it through the proxy like any other Service.
``kubeling proxy`` and ``kubeling dns`` run the same parts alone.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
from typing import Any

from kubeling.client.interface import Client

log = logging.getLogger("kubeling.services")

DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_DNS_PORT = 10053
CLUSTER_DOMAIN = "cluster.local"


def port_range(text: str) -> tuple[int, int]:
    """``30000-32767`` (kube-apiserver's --service-node-port-range) as a pair."""
    lo, sep, hi = text.partition("-")
    try:
        pair = (int(lo), int(hi if sep else lo))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid port range {text!r} (e.g. 30000-32767)") from None
    if not 0 < pair[0] <= pair[1] <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port range {text!r}")
    return pair


def cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid CIDR {text!r}: {exc}") from None


def dns_cluster_ip(service_cidr: str) -> str:
    """The cluster DNS Service's address: the tenth of the service CIDR (as k3s's 10.43.0.10)."""
    return str(ipaddress.ip_network(service_cidr).network_address + 10)


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """The server's Service flags (kube-apiserver's and k3s's names)."""
    g = p.add_argument_group("services")
    g.add_argument("--service-cidr", type=cidr, default=DEFAULT_SERVICE_CIDR,
                   help="the range cluster IPs are allocated from (default 10.43.0.0/16)")
    g.add_argument("--service-node-port-range", type=port_range, default=(30000, 32767),
                   help="the range of NodePorts (default 30000-32767)")
    g.add_argument("--cluster-dns-port", type=int, default=DEFAULT_DNS_PORT,
                   help="port the cluster DNS listens on at the node address, behind its "
                        "cluster IP's port 53 (default 10053; 0 = a free port)")
    g.add_argument("--cluster-dns-upstream", action="append", default=[], metavar="IP[:PORT]",
                   help="where the cluster DNS forwards names outside the cluster "
                        "(repeatable; default: the nameservers of /etc/resolv.conf)")
    g.add_argument("--disable-dns", action="store_true",
                   help="do not run the cluster DNS in the server process")


def add_proxy_flags(p: argparse.ArgumentParser, *, with_cluster_cidr: bool) -> None:
    """The service proxy's flags, for ``kubeling server`` and ``kubeling agent``."""
    g = p.add_argument_group("service proxy")
    g.add_argument("--proxy-mode", default="auto", choices=("auto", "nftables", "userspace"),
                   help="how Services are served: nftables rules (root) or a userspace "
                        "relay of NodePorts (default auto: nftables where it can run)")
    g.add_argument("--disable-kube-proxy", action="store_true",
                   help="do not run the service proxy in this process")
    if with_cluster_cidr:
        g.add_argument("--cluster-cidr", type=cidr, default=DEFAULT_CLUSTER_CIDR,
                       help="the pod network (traffic from elsewhere to a Service is "
                            "masqueraded)")


async def start_proxy(client: Client, args: argparse.Namespace, *, node_name: str,
                      node_ip: str) -> Any | None:
    """The node's service proxy, started (rules in place); None when disabled or broken."""
    if args.disable_kube_proxy:
        log.info("service proxy disabled (--disable-kube-proxy)")
        return None
    try:
        from kubeling.proxy import ServiceProxy

        proxy = ServiceProxy(client, node_name=node_name, node_ips=[node_ip],
                             cluster_cidr=args.cluster_cidr, mode=args.proxy_mode)
        await proxy.start()
    except Exception:
        # The node still runs its pods; only Services do not answer here. Said loudly.
        log.exception("the service proxy failed to start: Services do not answer on node %s",
                      node_name)
        return None
    return proxy


async def start_dns(client: Client, args: argparse.Namespace, *, node_ip: str) -> Any | None:
    """The cluster DNS on ``node_ip``, published as kube-system/kube-dns; None when disabled
    or when it cannot listen (the API keeps serving; the log says why)."""
    if args.disable_dns:
        log.info("cluster DNS disabled (--disable-dns)")
        return None
    from kubeling.dns import ClusterDNS, publish_service

    domain = getattr(args, "cluster_domain", "") or CLUSTER_DOMAIN
    port = args.cluster_dns_port
    upstreams = args.cluster_dns_upstream or None
    reverse = (args.service_cidr, args.cluster_cidr)
    dns = ClusterDNS(client, domain=domain, listen=(node_ip, port), upstreams=upstreams,
                     reverse_cidrs=reverse)
    try:
        await dns.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            log.error("the cluster DNS cannot listen on %s:%d: %s", node_ip, port, exc)
            await dns.stop()
            return None
        log.warning("port %d is taken on %s: the cluster DNS takes a free port", port, node_ip)
        await dns.stop()
        dns = ClusterDNS(client, domain=domain, listen=(node_ip, 0), upstreams=upstreams,
                         reverse_cidrs=reverse)
        await dns.start()
    cluster_ip = dns_cluster_ip(args.service_cidr)
    await publish_service(client, cluster_ip=cluster_ip, address=node_ip, port=dns.port)
    log.info("cluster DNS for %s on %s:%d, published as kube-system/kube-dns at %s:53",
             domain, node_ip, dns.port, cluster_ip)
    return dns
