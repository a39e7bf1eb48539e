"""The ``kubeling`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from kubeling.cli import agent as agent_flags
from kubeling.cli import components, services
from kubeling.cli import dns as dns_cli
from kubeling.cli import images as images_cli
from kubeling.cli import proxy as proxy_cli


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/kubeling")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kubeling"


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeling", description="Kubernetes, in Python.")
    parser.add_argument("--log-level", default=os.environ.get("KUBELING_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("server", help="run the API server (all-in-one)")
    srv.add_argument("--data-dir", type=Path, default=None,
                     help="where state, certificates and the kubeconfig live")
    srv.add_argument("--listen", default="0.0.0.0:6443", help="ADDR:PORT to serve on")
    srv.add_argument("--storage", default="",
                     help="storage URL (default sqlite:///<data-dir>/state.db)")
    srv.add_argument("--advertise-address", default="",
                     help="address written into the kubeconfig (default: 127.0.0.1)")
    srv.add_argument("--insecure-http", action="store_true",
                     help=argparse.SUPPRESS)
    srv.add_argument("--disable-scheduler", action="store_true",
                     help="do not run the scheduler in the server process")
    srv.add_argument("--disable-controllers", action="store_true",
                     help="do not run the controller manager in the server process")
    srv.add_argument("--disable-agent", action="store_true",
                     help="do not run a node agent in the server process")
    components.add_controller_flags(srv)
    components.add_toleration_flags(srv)
    agent_flags.add_agent_flags(srv)
    services.add_server_flags(srv)
    services.add_proxy_flags(srv, with_cluster_cidr=False)

    agent = sub.add_parser("agent", help="join a cluster as a node and run its pods")
    agent_flags.add_join_flags(agent)
    agent_flags.add_agent_flags(agent)
    services.add_proxy_flags(agent, with_cluster_cidr=True)

    sched = sub.add_parser("scheduler", help="run the scheduler against an API server")
    components.add_remote_flags(sched, lease="kube-scheduler", health_port=10251)
    cm = sub.add_parser("controller-manager",
                        help="run the controller manager against an API server")
    components.add_remote_flags(cm, lease="kube-controller-manager", health_port=10252)
    components.add_controller_flags(cm)
    hollow = sub.add_parser("hollow-nodes",
                            help="register fake nodes that run the pods bound to them")
    components.add_hollow_flags(hollow)
    images_cli.add_parser(sub)
    dns_cli.add_parser(sub)
    proxy_cli.add_parser(sub)

    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.command == "server":
        from kubeling.cli.server import run_server

        return run_server(args)
    if args.command == "agent":
        return agent_flags.run_agent(args)
    if args.command == "scheduler":
        return components.run_scheduler(args)
    if args.command == "controller-manager":
        return components.run_controller_manager(args)
    if args.command == "hollow-nodes":
        return components.run_hollow_nodes(args)
    if args.command == "proxy":
        return proxy_cli.run(args)
    if args.command == "dns":
        return dns_cli.run(args)
    if args.command == "images":
        return images_cli.run(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
