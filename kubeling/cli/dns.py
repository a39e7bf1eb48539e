"""``kubeling dns``: the cluster DNS alone, against any API server.

``kubeling server`` runs the cluster DNS in process; this command runs it as
its own process (as CoreDNS runs beside the API server), reading the cluster
through a kubeconfig. Health is served as CoreDNS serves it (``/health`` on
port 8080), with ``/healthz``, ``/readyz`` and ``/metrics`` beside it. With
``--publish-cluster-ip`` it also publishes itself as ``kube-system/kube-dns``
so pods reach it through the Service's cluster IP.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from kubeling.utils.health import HealthServer

log = logging.getLogger("kubeling.cli.dns")


def host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"want HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=None,
                   help="kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", default="", help="kubeconfig context to use")
    p.add_argument("--listen", type=host_port, default=("0.0.0.0", 53),
                   help="HOST:PORT to serve DNS on, UDP and TCP (default 0.0.0.0:53; port 0: "
                        "a free one)")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--upstream", action="append", default=None,
                   help="resolver for names outside the cluster, HOST[:PORT] (repeatable; "
                        "default: the nameservers of --resolv-conf)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf")
    p.add_argument("--ttl", type=int, default=5, help="TTL of the cluster's records")
    p.add_argument("--health-port", type=int, default=8080,
                   help="HTTP port of /health, /healthz and /metrics (0: none)")
    p.add_argument("--health-address", default="0.0.0.0")
    p.add_argument("--publish-cluster-ip", default="",
                   help="publish this server as Service kube-system/kube-dns on this cluster "
                        "IP (e.g. 10.43.0.10)")
    p.add_argument("--publish-address", default="",
                   help="the address written into the kube-dns Endpoints (default: the "
                        "listen address, or the address that routes to the API server)")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_arguments(sub.add_parser("dns", help="run the cluster DNS against an API server"))


class DnsHealthServer(HealthServer):
    """CoreDNS's ``/health`` (200 "OK") beside the usual paths."""

    def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if path.split("?", 1)[0] == "/health" and method in ("GET", "HEAD"):
            code, _ = self.health()
            return code, "text/plain; charset=utf-8", b"OK" if code == 200 else b"failed"
        return super().answer(method, path)


def route_address(server_url: str) -> str:
    """The local address the kernel would use to reach the API server."""
    parts = urlsplit(server_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


async def serve(args: argparse.Namespace) -> int:
    from kubeling.api.errors import StatusError
    from kubeling.client.http import HttpClient
    from kubeling.client.kubeconfig import load
    from kubeling.dns import ClusterDNS, publish_service
    from kubeling.utils.tasks import cancel_all

    client = HttpClient.from_kubeconfig(args.kubeconfig, context=args.context,
                                        field_manager="kube-dns", user_agent="kube-dns")
    server = ClusterDNS(client, domain=args.cluster_domain, listen=args.listen,
                        upstreams=args.upstream, resolv_conf=args.resolv_conf, ttl=args.ttl)
    health: DnsHealthServer | None = None
    if args.health_port:
        health = DnsHealthServer(host=args.health_address, port=args.health_port,
                                 checks={"dns": lambda: server.ready})
        await health.start()
    try:
        await server.start()
        if args.publish_cluster_ip:
            address = args.publish_address or args.listen[0]
            if address in ("0.0.0.0", "::", ""):
                address = route_address(load(args.kubeconfig, context=args.context).server)
            if ipaddress.ip_address(address).is_loopback:
                log.error("cannot publish kube-dns at %s: an Endpoints address may not be "
                          "loopback (give --publish-address)", address)
                return 1
            try:
                await publish_service(client, cluster_ip=args.publish_cluster_ip,
                                      address=address, port=server.port)
            except StatusError as exc:
                log.error("cannot publish kube-dns: %s", exc.message)
                return 1
        print(f"cluster DNS serving on {args.listen[0]}:{server.port}", flush=True)
        await asyncio.Event().wait()
    finally:
        await server.stop()
        if health is not None:
            await health.stop()
        await cancel_all()
        await client.close()
    return 0


def run(args: argparse.Namespace) -> int:
    from kubeling.cli.components import _until_signalled

    return asyncio.run(_until_signalled(serve(args)))


def main(argv: list[str] | None = None) -> int:
    """Run ``kubeling dns`` directly (``python -m kubeling.cli.dns``)."""
    parser = argparse.ArgumentParser(prog="kubeling dns")
    parser.add_argument("--log-level", default="info")
    add_arguments(parser)
    args: Any = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
