"""``kubeling agent``: join a cluster with a token and run the node agent; the agent's flags.

The same flags configure the node agent that ``kubeling server`` runs in its
own process (the server's machine is a node too), so both commands share
``add_agent_flags`` and ``agent_options``. The agent itself is
:class:`kubeling.kubelet.agent.Agent`; this module only joins, builds its
client and options, and stops it on SIGTERM (leaving its containers running,
for the next start to adopt).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from kubeling.api.quantity import parse_quantity
from kubeling.cli.components import duration
from kubeling.client.interface import Client, Obj
from kubeling.kubelet import runtimechoice
from kubeling.kubelet.context import KubeletOptions
from kubeling.runtime import DEFAULT_CNI_BIN_DIRS

log = logging.getLogger("kubeling.agent")

_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def default_node_name() -> str:
    return socket.gethostname().lower()


def size(text: str) -> int:
    """Bytes from a quantity (``10Mi``, ``500k``, ``1048576``)."""
    try:
        value = parse_quantity(text).value()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 10Mi)") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: must be positive")
    return value


def taints(text: str) -> list[Obj]:
    """``key=value:Effect,key:Effect`` as the kubelet's --register-with-taints reads it."""
    out: list[Obj] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        kv, sep, effect = item.rpartition(":")
        if not sep or effect not in _EFFECTS or not kv:
            raise argparse.ArgumentTypeError(
                f"invalid taint {item!r}: want key[=value]:{'|'.join(_EFFECTS)}")
        key, _, value = kv.partition("=")
        taint: Obj = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        out.append(taint)
    return out


def labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2``."""
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"invalid label {item!r}: want key=value")
        out[key] = value
    return out


def ip_list(text: str) -> tuple[str, ...]:
    """``10.43.0.10,fd00::10``: IP addresses, comma-separated."""
    out: list[str] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid IP address {item!r}") from None
    return tuple(out)


def add_agent_flags(p: argparse.ArgumentParser) -> None:
    """The node agent's flags, for ``kubeling server`` and ``kubeling agent``."""
    g = p.add_argument_group("node agent")
    g.add_argument("--node-name", default="",
                   help="the Node's name (default: the host name, lowercased)")
    g.add_argument("--node-ip", default="",
                   help="the node's InternalIP (default: the source address of the "
                        "default route)")
    g.add_argument("--kubelet-port", type=int, default=10250,
                   help="port of the agent's HTTPS API (logs, exec); 0 = a free port")
    g.add_argument("--kubelet-health-port", type=int, default=10248,
                   help="port of the agent's /healthz and /metrics; 0 = a free port")
    g.add_argument("--runtime", default="auto", choices=("auto", "oci", "process"),
                   help="container runtime: oci (runc/crun containers; needs root), process "
                        "(host processes, no isolation) or auto (oci where it can run)")
    g.add_argument("--oci-runtime", default="",
                   help="the OCI runtime binary (default: runc, else crun)")
    g.add_argument("--cgroup-parent", default="kubeling",
                   help="cgroup that pods and containers go under (default kubeling)")
    g.add_argument("--cni-conf-dir", type=Path, default=None,
                   help="CNI network configurations (default <data dir>/agent/runtime/cni/"
                        "net.d; a configuration placed there is used instead of the bridge)")
    g.add_argument("--cni-bin-dir", type=Path, action="append", default=None,
                   help="where CNI plugins are (repeatable; default /usr/lib/cni, "
                        "/opt/cni/bin)")
    g.add_argument("--insecure-registry", action="append", default=[],
                   help="a registry (host[:port]) pulled from over plain HTTP (repeatable)")
    g.add_argument("--pod-manifest-path", type=Path, default=None,
                   help="directory of static pod manifests run on this node")
    g.add_argument("--node-labels", type=labels, default={},
                   help="labels of the Node when it registers: k=v,k2=v2")
    g.add_argument("--register-with-taints", type=taints, default=[],
                   help="taints of the Node when it registers: key=value:Effect,...")
    g.add_argument("--max-pods", type=int, default=110)
    g.add_argument("--container-backoff-initial", type=duration, default=10.0,
                   help="first delay before restarting a crashed container (default 10s)")
    g.add_argument("--container-backoff-max", type=duration, default=300.0,
                   help="the restart delay doubles up to this (default 5m)")
    g.add_argument("--container-log-max-size", type=size, default=10 * 1024 * 1024,
                   help="rotate a container's log at this size (default 10Mi)")
    g.add_argument("--container-log-max-files", type=int, default=5,
                   help="log files kept per container (default 5)")
    g.add_argument("--node-status-update-frequency", type=duration, default=10.0,
                   help="how often the node status is computed (default 10s)")
    g.add_argument("--node-status-report-frequency", type=duration, default=60.0,
                   help="the status is written at least this often (default 1m)")
    g.add_argument("--node-lease-interval", type=duration, default=10.0,
                   help="how often the node's Lease is renewed (default 10s)")
    g.add_argument("--node-lease-duration-seconds", type=int, default=40,
                   help="leaseDurationSeconds of the node's Lease (default 40)")
    g.add_argument("--cluster-dns", type=ip_list, default=(),
                   help="the DNS server(s) ClusterFirst pods resolve with, comma-separated "
                        "(default: the cluster IP of the kube-system/kube-dns Service)")
    g.add_argument("--cluster-domain", default="cluster.local",
                   help="the cluster's DNS domain (default cluster.local)")
    g.add_argument("--resolv-conf", type=Path, default=Path("/etc/resolv.conf"),
                   help="the host resolver file dnsPolicy Default pods get (default "
                        "/etc/resolv.conf)")


def agent_options(args: argparse.Namespace, root_dir: Path, *,
                  control_plane: bool) -> KubeletOptions:
    if args.container_backoff_max < args.container_backoff_initial:
        raise SystemExit("--container-backoff-max must not be below "
                         "--container-backoff-initial")
    if args.container_log_max_files < 1:
        raise SystemExit("--container-log-max-files must be at least 1")
    try:
        choice = runtimechoice.choose(args.runtime, oci_binary=args.oci_runtime)
    except runtimechoice.RuntimeUnavailable as exc:
        raise SystemExit(str(exc)) from exc
    log.info("container runtime: %s (%s)", choice.runtime, choice.why)
    return KubeletOptions(
        node_name=(args.node_name or default_node_name()).lower(),
        root_dir=root_dir,
        pod_manifest_path=args.pod_manifest_path.resolve() if args.pod_manifest_path else None,
        runtime=choice.runtime,
        oci_binary=args.oci_runtime,
        cgroup_parent=args.cgroup_parent,
        cni_conf_dir=args.cni_conf_dir,
        cni_bin_dirs=tuple(args.cni_bin_dir) if args.cni_bin_dir else DEFAULT_CNI_BIN_DIRS,
        insecure_registries=tuple(args.insecure_registry),
        node_ip=args.node_ip,
        port=args.kubelet_port,
        health_port=args.kubelet_health_port,
        control_plane=control_plane,
        node_labels=dict(args.node_labels),
        register_with_taints=list(args.register_with_taints),
        max_pods=args.max_pods,
        backoff_initial=args.container_backoff_initial,
        backoff_max=args.container_backoff_max,
        lease_duration=args.node_lease_duration_seconds,
        lease_interval=args.node_lease_interval,
        status_update_interval=args.node_status_update_frequency,
        status_report_interval=max(args.node_status_report_frequency,
                                   args.node_status_update_frequency),
        container_log_max_bytes=args.container_log_max_size,
        container_log_max_files=args.container_log_max_files,
        cluster_dns=tuple(args.cluster_dns),
        cluster_domain=args.cluster_domain.strip(".") or "cluster.local",
        resolv_conf=args.resolv_conf,
    )


def add_join_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="",
                   help="the API server to join: https://HOST:6443 (needed on first start)")
    p.add_argument("--token", default=os.environ.get("KUBELING_TOKEN", ""),
                   help="the node token the server printed (K10...); also $KUBELING_TOKEN")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the agent's state: kubeconfig, pods, logs (default: "
                        "<kubeling data dir>/agent)")


def agent_class() -> Any | None:
    """The Agent class, or None while this build has none."""
    try:
        from kubeling.kubelet.agent import Agent
    except ImportError as exc:
        log.warning("the node agent is not available in this build (%s)", exc)
        return None
    return Agent


class RunningAgent:
    """An Agent started over ``client`` (it serves its own /healthz and /metrics on
    ``options.health_port``): what both commands run."""

    def __init__(self, client: Client, options: KubeletOptions, *,
                 proxy_client: Client | None = None) -> None:
        self.client = client
        self.options = options
        self.proxy_client = proxy_client or client
        self.agent: Any = None
        self.proxy: Any = None

    async def start(self, args: argparse.Namespace | None = None) -> bool:
        """Start the agent, then (given the command's ``args``) the node's service proxy."""
        cls = agent_class()
        if cls is None:
            return False
        self.agent = cls(self.client, self.options)
        await self.agent.start()
        log.info("node %s is running (kubelet API on port %s, health on port %s)",
                 self.options.node_name, getattr(self.agent, "port", "?"),
                 getattr(self.agent, "health_port", "?"))
        if args is not None:
            from kubeling.cli.services import start_proxy

            ctx = getattr(self.agent, "ctx", None)
            node_ip = ctx.node_ip if ctx is not None else self.options.node_ip
            self.proxy = await start_proxy(self.proxy_client, args,
                                           node_name=self.options.node_name, node_ip=node_ip)
            if self.proxy is not None:
                proxy = self.proxy
                self.agent.add_health_check("kube-proxy", lambda: proxy.healthy)
        return True

    async def stop(self, *, timeout: float = 15.0) -> None:
        """Stop the proxy (its rules stay, so Services keep answering) and the agent (its
        containers keep running); give up after ``timeout`` seconds rather than hang."""
        if self.proxy is not None:
            proxy, self.proxy = self.proxy, None
            await proxy.stop()
        if self.agent is not None:
            agent, self.agent = self.agent, None
            try:
                await asyncio.wait_for(agent.stop(), timeout)
            except TimeoutError:
                log.error("the node agent did not stop within %.0fs; leaving it", timeout)


def _agent_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir).resolve()
    from kubeling.cli.main import default_data_dir

    return default_data_dir() / "agent"


async def _run(args: argparse.Namespace) -> int:
    from kubeling.client.http import HttpClient
    from kubeling.kubelet.join import KUBECONFIG_NAME, JoinError, join
    from kubeling.utils.tasks import cancel_all

    data_dir = _agent_dir(args)
    data_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = data_dir / KUBECONFIG_NAME
    if args.token or args.server:
        if not (args.token and args.server):
            raise SystemExit("joining needs both --server and --token")
        try:
            await join(args.server, args.token, data_dir)
        except JoinError as exc:
            log.error("%s", exc)
            return 1
        except ConnectionError as exc:
            log.error("cannot join: %s", exc)
            return 1
    elif not kubeconfig.exists():
        raise SystemExit(f"no {kubeconfig}: join first with --server and --token")
    options = agent_options(args, data_dir, control_plane=False)
    options.ca_file = data_dir / "pki" / "ca.crt"
    client = HttpClient.from_kubeconfig(str(kubeconfig), field_manager="kubelet",
                                        user_agent=f"kubelet/{options.node_name}")
    proxy_client = HttpClient.from_kubeconfig(str(kubeconfig), field_manager="kube-proxy",
                                              user_agent=f"kube-proxy/{options.node_name}")
    running = RunningAgent(client, options, proxy_client=proxy_client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if not await running.start(args):
            return 1
        print(f"kubeling agent: node {options.node_name} joined {client.server}", flush=True)
        await stop.wait()
        log.info("stopping (containers keep running)")
    finally:
        await running.stop()
        await cancel_all()
        await client.close()
        await proxy_client.close()
    return 0


def run_agent(args: argparse.Namespace) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_run(args))
