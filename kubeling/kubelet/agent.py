"""The node agent: every part of the kubelet put together, in process or on its own.

``Agent(client, options)`` is the same code in ``kubeling server`` (over an
in-process client) and in ``kubeling agent`` (over HTTPS): it opens the
runtime, serves the kubelet API, registers the Node and keeps its Lease, and
feeds the pod workers from two sources — the API pods bound to this node and
the static pods of ``--pod-manifest-path`` (mirrored into the API).

Start-up order matters for adoption: the pod workers first learn what the
runtime already runs (``adopt``), and only then see the desired pods, so a
restarted agent carries on with its containers instead of starting new ones;
housekeeping (killing what is no longer desired) waits for the first full list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informers
from kubeling.client.interface import Client, Obj
from kubeling.kubelet import heartbeat, node, tls
from kubeling.kubelet.context import CONFIG_MIRROR, KubeletContext, KubeletOptions
from kubeling.kubelet.imagegc import ImageGC
from kubeling.kubelet.mirror import MirrorPods
from kubeling.kubelet.podcidr import PodCidr
from kubeling.kubelet.podworkers import PodWorkers
from kubeling.kubelet.probes import ProbeManager
from kubeling.kubelet.routes import Routes
from kubeling.kubelet.server import KubeletServer
from kubeling.kubelet.staticpods import StaticPodSource
from kubeling.kubelet.stats import StatsProvider
from kubeling.kubelet.status import StatusManager
from kubeling.kubelet.volumes import VolumeManager
from kubeling.runtime import RuntimeOptions, open_runtime
from kubeling.runtime.protocol import Runtime
from kubeling.utils import tasks
from kubeling.utils.clock import REAL, Clock
from kubeling.utils.health import HealthServer
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.agent")

MIRROR_RESYNC = 10.0  # seconds between full mirror-pod checks (deletions are seen at once)
POD_CIDR_WAIT = 10.0  # seconds new pods wait at start for the node's pod CIDR (OCI runtime)


def airgap_import(opts: KubeletOptions) -> None:
    """Import the image archives put in the agent's images-import directory (as k3s's
    agent/images): nodes without a registry start with the images they need."""
    from kubeling.runtime.images import ImageStore
    from kubeling.runtime.images.archive import import_directory

    opts.images_import_dir.mkdir(parents=True, exist_ok=True)
    import_directory(ImageStore(opts.images_dir), opts.images_import_dir)


class InformerObjects:
    """``ObjectSource`` over the agent's informers."""

    def __init__(self, informers: Informers, node_name: str) -> None:
        self._configmaps = informers.informer(("", "configmaps"))
        self._secrets = informers.informer(("", "secrets"))
        self._pvcs = informers.informer(("", "persistentvolumeclaims"))
        self._pvs = informers.informer(("", "persistentvolumes"))
        self._nodes = informers.informer(("", "nodes"),
                                         field_selector=f"metadata.name={node_name}")
        # Services: the pods' service environment variables and the cluster DNS address.
        self._services = informers.informer(("", "services"))
        self._node_name = node_name

    def configmap(self, namespace: str, name: str) -> Obj | None:
        return self._configmaps.get(namespace, name)

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self._secrets.get(namespace, name)

    def pvc(self, namespace: str, name: str) -> Obj | None:
        return self._pvcs.get(namespace, name)

    def pv(self, name: str) -> Obj | None:
        return self._pvs.get(None, name)

    def node(self) -> Obj | None:
        return self._nodes.get(None, self._node_name)

    def service(self, namespace: str, name: str) -> Obj | None:
        return self._services.get(namespace, name)

    def services(self, namespace: str) -> list[Obj]:
        return self._services.list(namespace)


def _is_mirror(pod: Obj) -> bool:
    return CONFIG_MIRROR in (pod["metadata"].get("annotations") or {})


class Agent:
    """One node's kubelet. ``start()`` returns once the Node is registered and the pod
    workers run; ``stop()`` stops the agent and leaves the containers running."""

    def __init__(self, client: Client, options: KubeletOptions, *, clock: Clock = REAL,
                 runtime: Runtime | None = None) -> None:
        self.client = client
        self.options = options
        self.clock = clock
        self._runtime = runtime
        self.port = 0
        self.health_port = 0
        self.ctx: KubeletContext | None = None
        self._parts: dict[str, Any] = {}
        self._static: dict[str, Obj] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self._ready = False
        self._mirror_dirty = asyncio.Event()

    # ----- start-up ---------------------------------------------------------------------

    async def start(self) -> None:
        opts = self.options
        for d in (opts.root_dir, opts.pods_dir, opts.logs_dir, opts.runtime_dir):
            d.mkdir(parents=True, exist_ok=True)
        node_ip = opts.node_ip or node.detect_node_ip()
        runtime = self._runtime or open_runtime(opts.runtime, RuntimeOptions(
            root_dir=opts.runtime_dir, node_ip=node_ip,
            log_max_bytes=opts.container_log_max_bytes,
            log_max_files=opts.container_log_max_files, images_dir=opts.images_dir,
            insecure_registries=opts.insecure_registries, oci_binary=opts.oci_binary,
            cgroup_parent=opts.cgroup_parent, cni_conf_dir=opts.cni_conf_dir,
            cni_bin_dirs=opts.cni_bin_dirs))
        if opts.runtime == "oci":
            await asyncio.to_thread(airgap_import, opts)
        version = await runtime.version()
        log.info("runtime %s %s (%s)", version.runtime_name, version.runtime_version,
                 "host processes, no isolation" if version.runtime_name == "process"
                 else "OCI containers")
        informers = Informers(self.client, clock=self.clock)
        self.pods = informers.informer(("", "pods"),
                                       field_selector=f"spec.nodeName={opts.node_name}")
        objects = InformerObjects(informers, opts.node_name)
        recorder = EventRecorder(self.client, "kubelet", host=opts.node_name, clock=self.clock)
        ctx = KubeletContext(client=self.client, informers=informers, runtime=runtime,
                             options=opts, recorder=recorder, objects=objects,
                             clock=self.clock, node_ip=node_ip)
        self.ctx = ctx
        informers.start()
        self._build_parts(ctx)
        cert, key = tls.ensure_serving_cert(opts.root_dir / "pki", opts.node_name, [node_ip])
        server = KubeletServer(
            ctx, cert_file=cert, key_file=key, client_ca_file=opts.ca_file,
            stats=self._parts.get("stats"))
        self._parts["server"] = server
        self.port = await server.start()
        log.info("kubelet API on %s:%d", opts.address, self.port)
        beat = heartbeat.Heartbeat(ctx, kubelet_port=self.port)
        self._parts["heartbeat"] = beat
        await beat.register()
        log.info("node %s registered (%s)", opts.node_name, node_ip)
        self._tasks.append(spawn(beat.run(), name="node-heartbeat"))
        self._parts["podcidr"].start()
        health = HealthServer(host=opts.address, port=opts.health_port,
                              checks={"syncloop": lambda: self._ready})
        await health.start()
        self.health_port = health.port
        self._parts["health"] = health
        await informers.wait_synced()
        if opts.runtime == "oci" and not await self._parts["podcidr"].wait(POD_CIDR_WAIT):
            log.warning("node %s has no pod CIDR after %.0fs: pods get no network until it has "
                        "one (or a CNI configuration is put in place)", opts.node_name,
                        POD_CIDR_WAIT)
        workers = self._parts["workers"]
        await workers.adopt()
        for name in ("status", "volumes", "probes", "stats", "workers", "imagegc", "routes"):
            part = self._parts.get(name)
            if part is not None:
                part.start()
        self.pods.add_handlers(add=self._pod_added, update=self._pod_updated,
                               delete=self._pod_deleted)
        if opts.pod_manifest_path is not None:
            self._start_static_pods(ctx)
        self._tasks.append(spawn(self._housekeeping(), name="kubelet-housekeeping"))
        self._ready = True
        log.info("node agent %s ready: %d pods bound here", opts.node_name, len(self.pods))

    def add_health_check(self, name: str, check: Callable[[], bool]) -> None:
        """Another part of this process (the service proxy) joins the agent's /healthz."""
        health = self._parts.get("health")
        if health is not None:
            health.checks[name] = check

    def _build_parts(self, ctx: KubeletContext) -> None:
        status = StatusManager(ctx)
        volumes = VolumeManager(ctx, wake=self._wake)
        probes = ProbeManager(ctx, status=status, wake=self._wake)
        workers = PodWorkers(ctx, volumes=volumes, probes=probes, status=status)
        stats = StatsProvider(ctx)
        self._parts.update(status=status, volumes=volumes, probes=probes, workers=workers,
                           stats=stats, podcidr=PodCidr(ctx), imagegc=ImageGC(ctx))
        if ctx.options.runtime == "oci":
            self._parts["routes"] = Routes(ctx)

    def _wake(self, uid: str) -> None:
        workers = self._parts.get("workers")
        if workers is not None:
            workers.wake(uid)

    # ----- pod sources ------------------------------------------------------------------

    def _pod_added(self, pod: Obj) -> None:
        if _is_mirror(pod):
            return
        self._parts["workers"].update(pod)

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        if _is_mirror(pod):
            if pod["metadata"].get("deletionTimestamp"):
                self._mirror_dirty.set()  # deleted through the API: replace it at once
            return
        self._pod_added(pod)

    def _pod_deleted(self, pod: Obj) -> None:
        if _is_mirror(pod):
            self._mirror_dirty.set()
            return
        self._parts["workers"].remove(pod["metadata"]["uid"])

    def _start_static_pods(self, ctx: KubeletContext) -> None:
        path = self.options.pod_manifest_path
        assert path is not None
        path.mkdir(parents=True, exist_ok=True)
        source = StaticPodSource(path, self.options.node_name, clock=self.clock)
        mirror = MirrorPods(ctx.client, self.options.node_name, pods=self.pods.list)
        self._parts.update(static=source, mirror=mirror)
        log.info("static pods from %s", path)
        self._tasks.append(spawn(source.run(self._static_changed), name="static-pods"))
        self._tasks.append(spawn(self._mirror_loop(), name="mirror-pods"))

    def _static_changed(self, pods: dict[str, Obj]) -> None:
        workers = self._parts["workers"]
        for uid in set(self._static) - set(pods):
            workers.remove(uid)
        for pod in pods.values():
            workers.update(pod)
        self._static = dict(pods)
        self._mirror_dirty.set()

    async def _mirror_loop(self) -> None:
        mirror = self._parts["mirror"]
        while True:
            try:
                await asyncio.wait_for(self._mirror_dirty.wait(), MIRROR_RESYNC)
            except TimeoutError:
                pass
            self._mirror_dirty.clear()
            try:
                await mirror.sync(dict(self._static))
            except Exception:
                log.exception("mirror pod sync failed; retrying")
                await asyncio.sleep(1.0)
                self._mirror_dirty.set()

    async def _housekeeping(self) -> None:
        workers = self._parts["workers"]
        while True:
            await self.clock.sleep(self.options.housekeeping_interval)
            desired = {p["metadata"]["uid"] for p in self.pods.list() if not _is_mirror(p)}
            desired |= set(self._static)
            try:
                await workers.housekeeping(desired)
            except Exception:
                log.exception("housekeeping failed")

    # ----- shutdown -----------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every part; containers keep running, for the next start to adopt."""
        self._ready = False
        await tasks.stop(*self._tasks)
        self._tasks.clear()
        for name in ("static", "workers", "probes", "volumes", "stats", "status", "heartbeat",
                     "podcidr", "imagegc", "routes", "server", "health"):
            part = self._parts.get(name)
            if part is None:
                continue
            try:
                result = part.stop()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("stopping %s failed", name)
        if self.ctx is not None:
            await self.ctx.informers.stop()
            await self.ctx.runtime.close()
        log.info("node agent %s stopped", self.options.node_name)


def default_root(data_dir: Path) -> Path:
    """Where an agent keeps its pods, logs and runtime state under a data dir."""
    return data_dir / "agent"
