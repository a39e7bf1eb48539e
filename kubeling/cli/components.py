"""``kubeling scheduler``, ``kubeling controller-manager`` and ``kubeling hollow-nodes``.

The scheduler and the controller manager run inside ``kubeling server`` by
default; these commands run them alone against any API server (found through
a kubeconfig), as kube-scheduler and kube-controller-manager run. Several
copies may run at once: leader election on a Lease in kube-system lets exactly
one act. Each serves ``/healthz`` and ``/metrics`` on ``--health-port``.

``kubeling hollow-nodes`` registers fake nodes that run the pods bound to them
(see :mod:`kubeling.hollow`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from kubeling.client.informer import Informers
from kubeling.client.interface import Client
from kubeling.controllers.base import ControllerContext, ControllerOptions
from kubeling.utils.clock import REAL
from kubeling.utils.health import Check, HealthServer
from kubeling.utils.tasks import cancel_all

log = logging.getLogger("kubeling.components")

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration(text: str) -> float:
    """Seconds from a number or a Go duration (``40s``, ``1m30s``, ``500ms``)."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 40s, 1m30s)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def boolean(text: str) -> bool:
    low = text.lower()
    if low in ("true", "1", "yes", "t"):
        return True
    if low in ("false", "0", "no", "f"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


# ----- flags ----------------------------------------------------------------------------


def add_controller_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--controllers", default="*",
                   help="controllers to run: '*' for all, 'name' to add, '-name' to leave out")
    p.add_argument("--node-monitor-grace-period", type=duration, default=40.0,
                   help="how long a node may go without renewing its lease before it is "
                        "marked unhealthy (default 40s)")
    p.add_argument("--node-monitor-period", type=duration, default=5.0,
                   help="how often node health is checked (default 5s)")
    p.add_argument("--cluster-cidr", default="10.42.0.0/16",
                   help="the pod network, from which each node gets a podCIDR")
    p.add_argument("--node-cidr-mask-size", type=int, default=24)
    p.add_argument("--terminated-pod-gc-threshold", type=int, default=12500)
    p.add_argument("--concurrent-syncs", type=int, default=5,
                   help="workers per controller")


def add_toleration_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the not-ready toleration added to every pod")
    p.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the unreachable toleration added to every pod")


def add_remote_flags(p: argparse.ArgumentParser, *, lease: str, health_port: int) -> None:
    p.add_argument("--kubeconfig", default=None,
                   help="kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", default="", help="kubeconfig context to use")
    p.add_argument("--health-port", type=int, default=health_port,
                   help="HTTP port of /healthz and /metrics (0: none)")
    p.add_argument("--health-address", default="0.0.0.0")
    p.add_argument("--leader-elect", type=boolean, nargs="?", const=True, default=True,
                   help="elect a leader among several copies before acting (default true)")
    p.add_argument("--leader-elect-lease-duration", type=duration, default=15.0)
    p.add_argument("--leader-elect-renew-deadline", type=duration, default=10.0)
    p.add_argument("--leader-elect-retry-period", type=duration, default=2.0)
    p.add_argument("--leader-elect-resource-name", default=lease)
    p.add_argument("--leader-elect-resource-namespace", default="kube-system")


def add_hollow_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=None,
                   help="kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", default="")
    p.add_argument("--count", type=int, required=True, help="how many nodes")
    p.add_argument("--prefix", default="hollow-node-", help="node names: PREFIX0, PREFIX1...")
    p.add_argument("--cpu", default="4")
    p.add_argument("--memory", default="32Gi")
    p.add_argument("--pods", default="110")
    p.add_argument("--labels", default="", help="extra node labels: k=v,k2=v2")
    p.add_argument("--zones", type=int, default=0,
                   help="spread the nodes over this many topology.kubernetes.io/zone values")
    p.add_argument("--lease-interval", type=duration, default=10.0)
    p.add_argument("--status-interval", type=duration, default=60.0)
    p.add_argument("--concurrency", type=int, default=32,
                   help="API requests in flight at most")


def controller_options(args: argparse.Namespace) -> ControllerOptions:
    opts = ControllerOptions(
        workers=args.concurrent_syncs,
        node_monitor_grace_period=args.node_monitor_grace_period,
        node_monitor_period=args.node_monitor_period,
        cluster_cidr=args.cluster_cidr,
        node_cidr_mask_size=args.node_cidr_mask_size,
        terminated_pod_gc_threshold=args.terminated_pod_gc_threshold)
    if hasattr(args, "default_not_ready_toleration_seconds"):
        opts.default_not_ready_toleration_seconds = args.default_not_ready_toleration_seconds
        opts.default_unreachable_toleration_seconds = \
            args.default_unreachable_toleration_seconds
    return opts


def controller_names(spec: str) -> list[str]:
    """The controllers a ``--controllers`` value selects (kube-controller-manager's syntax)."""
    from kubeling.controllers.manager import CONTROLLERS

    items = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s.lstrip("-") for s in items if s != "*" and s.lstrip("-") not in CONTROLLERS]
    if unknown:
        raise SystemExit(f"unknown controllers: {', '.join(unknown)} "
                         f"(known: {', '.join(CONTROLLERS)})")
    chosen = list(CONTROLLERS) if "*" in items else []
    for s in items:
        if s.startswith("-"):
            chosen = [c for c in chosen if c != s[1:]]
        elif s != "*" and s not in chosen:
            chosen.append(s)
    return chosen


# ----- building the components --------------------------------------------------------


def build_scheduler(client: Client, informers: Informers) -> Any | None:
    """The scheduler over ``client`` and shared ``informers``; None (with a warning) when
    this build has no scheduler."""
    try:
        from kubeling.scheduler import Scheduler, SchedulerOptions
    except ImportError as exc:
        log.warning("the scheduler is not available (%s); pods will stay Pending", exc)
        return None
    return Scheduler(client, informers, clock=REAL, options=SchedulerOptions())


def _identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _http_client(args: argparse.Namespace, agent: str, *, connections: int = 100) -> Client:
    from kubeling.client.http import HttpClient

    return HttpClient.from_kubeconfig(args.kubeconfig, context=args.context,
                                      field_manager=agent, user_agent=agent,
                                      max_connections=connections)


async def _until_signalled(main: Awaitable[Any]) -> int:
    """Run ``main`` until it ends or SIGINT/SIGTERM arrives (then cancel it cleanly)."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        result = await task
    except asyncio.CancelledError:
        log.info("stopping")
        return 0
    return int(result or 0)


async def _run_component(args: argparse.Namespace, *, agent: str,
                         lead: Callable[[Client, Informers, dict[str, Check]], Awaitable[None]],
                         ) -> int:
    """The frame of a remote component: client, health server, leader election. ``lead``
    runs while this copy leads and may add health checks."""
    from kubeling.client.leader import LeaderElector

    client = _http_client(args, agent)
    informers = Informers(client)
    elector: LeaderElector | None = None
    if args.leader_elect:
        elector = LeaderElector(
            client, namespace=args.leader_elect_resource_namespace,
            name=args.leader_elect_resource_name, identity=_identity(),
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period)
    checks: dict[str, Check] = {"ping": lambda: True}
    health: HealthServer | None = None
    if args.health_port:
        health = HealthServer(host=args.health_address, port=args.health_port, checks=checks)
        await health.start()
    try:
        if elector is None:
            await lead(client, informers, checks)
            return 0
        log.info("%s: waiting to lead lease %s/%s as %s", agent,
                 args.leader_elect_resource_namespace, args.leader_elect_resource_name,
                 elector.identity)
        await elector.run(lambda: lead(client, informers, checks))
        log.error("%s: leader election lost", agent)
        return 1
    finally:
        with contextlib.suppress(Exception):
            await informers.stop()
        if health is not None:
            await health.stop()
        await cancel_all()
        await client.close()


def run_controller_manager(args: argparse.Namespace) -> int:
    from kubeling.controllers.manager import run_all

    names = controller_names(args.controllers)
    options = controller_options(args)

    async def lead(client: Client, informers: Informers, _checks: dict[str, Check]) -> None:
        ctx = ControllerContext(client, informers, REAL, options)
        await run_all(ctx, names)

    return asyncio.run(_until_signalled(
        _run_component(args, agent="kube-controller-manager", lead=lead)))


def run_scheduler(args: argparse.Namespace) -> int:
    async def lead(client: Client, informers: Informers, checks: dict[str, Check]) -> None:
        scheduler = build_scheduler(client, informers)
        if scheduler is None:
            raise SystemExit("this build of kubeling has no scheduler")
        checks["scheduler"] = scheduler.healthy
        informers.start()
        await scheduler.run()

    return asyncio.run(_until_signalled(
        _run_component(args, agent="default-scheduler", lead=lead)))


def _labels(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"invalid label {item!r}: want key=value")
        out[key] = value
    return out


def run_hollow_nodes(args: argparse.Namespace) -> int:
    from kubeling.hollow import HollowNodes

    async def main() -> int:
        # As many connections as requests in flight: a bigger pool costs CPU per request.
        client = _http_client(args, "hollow-node", connections=max(2, args.concurrency))
        nodes = HollowNodes(client, count=args.count, prefix=args.prefix, cpu=args.cpu,
                            memory=args.memory, pods=args.pods, labels=_labels(args.labels),
                            lease_interval=args.lease_interval,
                            status_interval=args.status_interval,
                            concurrency=args.concurrency, zones=args.zones)
        try:
            await nodes.start()
            print(f"{args.count} hollow nodes ready", flush=True)
            await asyncio.Event().wait()
        finally:
            await nodes.stop()
            await cancel_all()
            await client.close()
        return 0

    return asyncio.run(_until_signalled(main()))
