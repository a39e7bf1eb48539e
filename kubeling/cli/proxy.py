"""``kubeling proxy``: the service proxy alone, as kube-proxy runs on a node.

Node agents run the proxy in their own process; this command runs it apart
(on a node whose agent has ``--disable-kube-proxy``, or to debug it) against
any API server found through a kubeconfig. It serves ``/healthz`` and
``/metrics`` on ``--healthz-port`` (10256, kube-proxy's). ``--cleanup``
removes the rules a proxy left behind and exits, as ``kube-proxy --cleanup``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from kubeling.cli.components import duration

log = logging.getLogger("kubeling.proxy")

DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=None,
                   help="kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", default="", help="kubeconfig context to use")
    p.add_argument("--hostname-override", default="",
                   help="this node's name (default: the host name, lowercased)")
    p.add_argument("--node-ip", default="", help="this node's address (default: detected)")
    p.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR,
                   help="the pod network; traffic to a Service from elsewhere is masqueraded")
    p.add_argument("--proxy-mode", default="auto", choices=("auto", "nftables", "userspace"),
                   help="nftables (root) or a userspace relay of node ports (default auto)")
    p.add_argument("--healthz-port", type=int, default=10256,
                   help="port of /healthz and /metrics (0: none)")
    p.add_argument("--healthz-bind-address", default="0.0.0.0")
    p.add_argument("--min-sync-period", type=duration, default=0.0,
                   help="least time between two syncs (changes meanwhile are coalesced)")
    p.add_argument("--sync-period", type=duration, default=3600.0,
                   help="how often everything is rewritten even without changes")
    p.add_argument("--table", default="kubeling", help="the nftables table (family ip)")
    p.add_argument("--cleanup", action="store_true",
                   help="remove the proxy's rules and exit")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    p = subparsers.add_parser("proxy", help="run the service proxy (kube-proxy) for a node")
    add_arguments(p)
    return p


async def cleanup(table: str) -> int:
    from kubeling.proxy.nftables import NftablesBackend, NftError

    ok, why = NftablesBackend.available()
    if not ok:
        log.info("nothing to clean up: %s", why)
        return 0
    backend = NftablesBackend(table=table)
    if not await backend.table_present():
        log.info("no table ip %s: nothing to clean up", table)
        return 0
    try:
        await backend.cleanup()
    except NftError as exc:
        log.error("cannot remove table ip %s: %s", table, exc)
        return 1
    log.info("removed table ip %s", table)
    return 0


async def _run(args: argparse.Namespace) -> int:
    from kubeling.cli.agent import default_node_name
    from kubeling.client.http import HttpClient
    from kubeling.proxy import ServiceProxy
    from kubeling.utils.health import HealthServer
    from kubeling.utils.tasks import cancel_all

    if args.cleanup:
        return await cleanup(args.table)
    node_ip = args.node_ip
    if not node_ip:
        from kubeling.kubelet.node import detect_node_ip

        node_ip = detect_node_ip()
    client = HttpClient.from_kubeconfig(args.kubeconfig, context=args.context,
                                        field_manager="kube-proxy", user_agent="kube-proxy")
    proxy = ServiceProxy(client, node_name=args.hostname_override or default_node_name(),
                         node_ips=[node_ip], cluster_cidr=args.cluster_cidr,
                         mode=args.proxy_mode, min_sync_period=args.min_sync_period,
                         table=args.table, full_sync_period=args.sync_period)
    health: HealthServer | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.healthz_port:
            health = HealthServer(host=args.healthz_bind_address, port=args.healthz_port,
                                  checks={"proxy": lambda: proxy.healthy})
            await health.start()
        await proxy.start()
        print(f"kubeling proxy: {proxy.mode} mode, node {proxy.node_name} ({node_ip})",
              flush=True)
        await stop.wait()
        log.info("stopping (rules stay in place)")
    finally:
        await proxy.stop()
        if health is not None:
            await health.stop()
        await cancel_all()
        await client.close()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def main(argv: list[str] | None = None) -> int:
    """``python -m kubeling.cli.proxy`` (the same as ``kubeling proxy``)."""
    parser = argparse.ArgumentParser(prog="kubeling proxy")
    add_arguments(parser)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
