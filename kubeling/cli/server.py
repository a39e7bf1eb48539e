"""``kubeling server``: start-up in logged steps, serving, and a clean shutdown.

The server's machine is a node too: unless ``--disable-agent``, the node agent
runs in this process over an in-process client (root dir ``<data dir>/agent``,
the control-plane role label). Other machines join with the node token printed
on start (``kubeling agent --server ... --token ...``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import logging
import signal
from pathlib import Path
from typing import Any

from kubeling.apiserver.app import ApiServer
from kubeling.apiserver.auth import NODE_USER, Authenticator, User
from kubeling.apiserver.certs import Pki, ensure_pki, join_token, node_secret
from kubeling.apiserver.metrics import InstrumentedStore
from kubeling.apiserver.server import Server, make_config
from kubeling.cli import components, services
from kubeling.cli.agent import RunningAgent, agent_options
from kubeling.cli.kubeconfig import write_kubeconfig
from kubeling.cli.main import default_data_dir
from kubeling.client.informer import Informers
from kubeling.client.inprocess import InProcessClient
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.manager import run_all
from kubeling.kubelet.node import detect_node_ip
from kubeling.registry import admission
from kubeling.registry.registry import Registry
from kubeling.storage import open_store
from kubeling.utils.clock import REAL
from kubeling.utils.tasks import cancel_all, spawn

log = logging.getLogger("kubeling.server")


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def run_server(args: argparse.Namespace) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        log.info("uvloop not available; using the default event loop")
    return asyncio.run(_serve(args))


def _tune_gc() -> None:
    """Collect cycles rarely: the server's objects are acyclic JSON, freed by refcounting,
    and a full collection over a large watch cache stalls every request for tens of ms."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _start_components(registry: Registry, args: argparse.Namespace) -> Informers:
    """The scheduler and the controller manager, in process, over one set of informers
    (one server: no leader election)."""
    informers = Informers(InProcessClient(registry, manager="informers"))
    if not args.disable_scheduler:
        scheduler = components.build_scheduler(
            InProcessClient(registry, manager="default-scheduler"), informers)
        if scheduler is not None:
            spawn(scheduler.run(), name="scheduler")
    if not args.disable_controllers:
        ctx = ControllerContext(InProcessClient(registry, manager="kube-controller-manager"),
                                informers, REAL, components.controller_options(args))
        spawn(run_all(ctx, components.controller_names(args.controllers)),
              name="controller-manager")
    informers.start()
    return informers


def _api_server(registry: Registry, auth: Authenticator, pki: Pki) -> ApiServer:
    """The ASGI app; it calls kubelets (logs, exec) with the kubelet client certificate."""
    return ApiServer(registry, auth, ca_pem=pki.ca_cert.read_bytes(),
                     kubelet_client_cert=pki.kubelet_client_cert,
                     kubelet_client_key=pki.kubelet_client_key)


async def _start_agent(registry: Registry, args: argparse.Namespace, data_dir: Path,
                       pki: Pki, *, cluster_dns: str) -> RunningAgent | None:
    """This machine's node agent and its service proxy, in process; None when the agent
    could not start (the API server keeps serving)."""
    options = agent_options(args, data_dir / "agent", control_plane=True)
    options.ca_file = pki.ca_cert
    if cluster_dns and not options.cluster_dns:
        options.cluster_dns = (cluster_dns,)
    agent = RunningAgent(InProcessClient(registry, manager="kubelet"), options,
                         proxy_client=InProcessClient(registry, manager="kube-proxy"))
    try:
        if not await agent.start(args):
            return None
    except Exception:
        log.exception("the node agent failed to start; serving the API without it")
        await agent.stop()
        return None
    return agent


async def _master_endpoints(registry: Registry, address: str, port: int) -> None:
    """``default/kubernetes`` points at this server, unless it serves on loopback only
    (an endpoint pods could not reach, which Kubernetes' validation refuses too)."""
    if ipaddress.ip_address(address).is_loopback:
        log.info("the API serves on %s only: the kubernetes Service gets no endpoints", address)
        return
    await registry.reconcile_master_endpoints(address, port)


async def _start_dns(registry: Registry, args: argparse.Namespace) -> Any:
    """The cluster DNS, on the node's address (not the API's, which may be loopback: a pod's
    packets cannot be sent to the host's 127.0.0.1)."""
    try:
        return await services.start_dns(InProcessClient(registry, manager="kube-dns"), args,
                                        node_ip=args.node_ip or detect_node_ip())
    except Exception:
        log.exception("the cluster DNS failed to start; serving the API without it")
        return None


async def _serve(args: argparse.Namespace) -> int:
    data_dir: Path = (args.data_dir or default_data_dir()).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log.info("data dir %s", data_dir)
    host, port = _split_listen(args.listen)
    wildcard = host in ("0.0.0.0", "::")
    # Where other machines reach this server: named in its certificate and the join line.
    public = args.advertise_address or (args.node_ip or detect_node_ip() if wildcard else host)
    extra = tuple(n for n in (public, args.node_ip) if n)
    pki = ensure_pki(data_dir, extra)
    log.info("certificates ready in %s", pki.dir)
    url = args.storage or f"sqlite://{data_dir / 'state.db'}"
    store = open_store(url)
    log.info("storage %s opened at revision %d", url.split("://")[0],
             await store.current_revision())
    from kubeling.storage import compactor

    registry = Registry(InstrumentedStore(store), service_cidr=args.service_cidr,
                        node_port_range=args.service_node_port_range)
    await registry.start()
    log.info("watch cache synced at revision %d", registry.cache.revision)
    _tune_gc()
    spawn(compactor.run_compactor(store), name="compactor")
    admission.configure(not_ready=args.default_not_ready_toleration_seconds,
                        unreachable=args.default_unreachable_toleration_seconds)
    informers = _start_components(registry, args)
    admin = User("kubeling-admin", ("system:masters", "system:authenticated"))
    auth = Authenticator({pki.admin_token.read_text().strip(): admin,
                          node_secret(pki): NODE_USER, join_token(pki): NODE_USER})
    app = _api_server(registry, auth, pki)
    tls = not args.insecure_http
    config = make_config(app, host=host, port=port,
                         cert=pki.server_cert if tls else None,
                         key=pki.server_key if tls else None,
                         ca=pki.ca_cert if tls else None)
    server = Server(config)
    advertise = args.advertise_address or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
    scheme = "https" if tls else "http"
    kubeconfig = data_dir / "kubeconfig.yaml"
    write_kubeconfig(kubeconfig, pki=pki, server=f"{scheme}://{advertise}:{port}")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    serve = asyncio.create_task(server.serve(), name="http")
    while not server.started and not serve.done():
        await asyncio.sleep(0.02)
    if serve.done():
        serve.result()
        return 1
    log.info("serving the Kubernetes API on %s://%s:%d", scheme, host, port)
    token = join_token(pki)
    log.info("node join token (also in %s): %s", pki.node_token, token)
    print(f"kubeling is ready. To use it:\n  export KUBECONFIG={kubeconfig}\n  kubectl get ns\n"
          f"To add a node, run on it:\n  kubeling agent --server {scheme}://{public}:{port} "
          f"--token {token}", flush=True)
    await _master_endpoints(registry, public or detect_node_ip(), port)
    dns = await _start_dns(registry, args)
    agent: RunningAgent | None = None
    if not args.disable_agent:
        agent = await _start_agent(registry, args, data_dir, pki,
                                   cluster_dns=services.dns_cluster_ip(args.service_cidr)
                                   if dns is not None else "")
    await serve
    log.info("shutting down")
    if agent is not None:
        await agent.stop()
    if dns is not None:
        await dns.stop()
    await app.nodes.close()
    await app.http_proxy.close()
    await informers.stop()
    await registry.stop()
    await cancel_all()
    await store.close()
    log.info("stopped")
    return 0
