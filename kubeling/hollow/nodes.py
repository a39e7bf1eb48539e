"""``HollowNodes``: many fake kubelets in one process, cheap enough for thousands of nodes.

One pod informer (indexed by node) and one node informer serve every hollow
node; one heartbeat loop renews all their Leases and node statuses, spread
evenly over each interval; a single work queue with a bounded number of
workers writes pod statuses and deletions. Nothing runs per node, so 5,000
nodes cost 5,000 heap entries, not 5,000 tasks.
"""

from __future__ import annotations

import asyncio
import heapq
import ipaddress
import itertools
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from kubeling.api import errors, kinds
from kubeling.api.kinds import Kind
from kubeling.client.informer import Informer, Informers, split_key
from kubeling.client.interface import Client, Obj
from kubeling.client.leader import micro_time
from kubeling.client.workqueue import ShutDown, WorkQueue
from kubeling.hollow import objects, podstatus
from kubeling.utils.clock import REAL, Clock
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.hollow")


def _kind(group: str, resource: str) -> Kind:
    k = kinds.by_resource(group, resource)
    assert k is not None
    return k


NODES = _kind("", "nodes")
PODS = _kind("", "pods")
LEASES = _kind("coordination.k8s.io", "leases")
_GONE = (404, 409)


class HollowNodes:
    """``count`` nodes called ``prefix0``, ``prefix1``... that register, stay Ready and run
    every pod bound to them (see :mod:`kubeling.hollow` for the pod annotations). With
    ``zones`` > 0, node i is labelled ``topology.kubernetes.io/zone=zone-<i % zones>``."""

    def __init__(self, client: Client, *, count: int, prefix: str = "hollow-node-",
                 cpu: str = "4", memory: str = "32Gi", pods: str = "110",
                 labels: dict[str, str] | None = None, lease_interval: float = 10.0,
                 status_interval: float = 60.0, clock: Clock = REAL,
                 concurrency: int = 32, zones: int = 0) -> None:
        self.client = client
        self.names = [f"{prefix}{i}" for i in range(count)]
        self._index = {n: i for i, n in enumerate(self.names)}
        self.cpu, self.memory, self.pods = cpu, memory, pods
        self.labels = dict(labels or {})
        self.zones = zones
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self.clock = clock
        self.concurrency = max(2, concurrency)
        self.informers = Informers(client, clock=clock)
        self._pods: Informer = self.informers.informer(PODS)
        self._nodes: Informer = self.informers.informer(NODES)
        self.queue = WorkQueue("hollow-nodes", clock=clock)
        self._uids: dict[str, str] = {}
        self._dead: set[str] = set()
        self._next_ip: dict[str, int] = {}
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._tasks: list[asyncio.Task[Any]] = []
        self.renewals = 0
        self.pod_updates = 0

    # ----- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Register every node and its Lease, then run until :meth:`stop`."""
        await self._bounded((self._register(n) for n in self.names), self.concurrency)
        await self._bounded((self._create_lease(n) for n in self.names), self.concurrency)
        self._pods.add_handlers(add=self._pod_changed,
                                update=lambda _old, new: self._pod_changed(new))
        self._nodes.add_handlers(add=self._node_changed,
                                 update=lambda _old, new: self._node_changed(new))
        self.informers.start()
        await self.informers.wait_synced()
        self._schedule_heartbeats()
        self._tasks.append(spawn(self._heartbeats(), name="hollow-heartbeats"))
        for i in range(self.concurrency - self._beat_share):
            self._tasks.append(spawn(self._worker(), name=f"hollow-worker-{i}"))
        log.info("%d hollow nodes registered (%s..%s)", len(self.names),
                 self.names[0] if self.names else "", self.names[-1] if self.names else "")

    async def stop(self) -> None:
        """Stop every loop (the nodes stay registered; their leases expire)."""
        self.queue.shutdown()
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks.clear()
        await self.informers.stop()

    async def kill(self, name: str) -> None:
        """Make one node fail: it stops renewing its lease, reporting status and running its
        pods, as a machine that lost power."""
        if name not in self._index:
            raise KeyError(name)
        self._dead.add(name)
        log.info("hollow node %s killed", name)

    def alive(self, name: str) -> bool:
        return name in self._index and name not in self._dead

    @property
    def _beat_share(self) -> int:
        """Requests in flight for heartbeats; pod work gets the rest, so a flood of pods
        never delays lease renewals (and never the other way round)."""
        return max(1, self.concurrency // 2)

    async def _bounded(self, coros: Iterable[Awaitable[Any]], limit: int) -> list[Any]:
        sem = asyncio.Semaphore(limit)

        async def one(c: Awaitable[Any]) -> Any:
            async with sem:
                return await c

        return await asyncio.gather(*(one(c) for c in coros))

    # ----- registration ---------------------------------------------------------------

    async def _register(self, name: str) -> None:
        index = self._index[name]
        labels = self.labels
        if self.zones > 0:
            labels = {**labels, objects.ZONE_LABEL: f"zone-{index % self.zones}"}
        obj = objects.node_object(name, index, cpu=self.cpu, memory=self.memory,
                                  pods=self.pods, labels=labels, now=self.clock.now())
        try:
            created = await self.client.create(NODES, None, obj)
        except errors.StatusError as exc:
            if exc.code != 409:
                raise
            status = {k: obj["status"][k] for k in
                      ("capacity", "allocatable", "addresses", "nodeInfo", "conditions")}
            created = await self.client.patch(NODES, None, name, {"status": status},
                                              subresource="status")
        self._uids[name] = created["metadata"].get("uid", "")

    async def _create_lease(self, name: str) -> None:
        lease = objects.lease_object(name, self._uids.get(name, ""), self.clock.now())
        try:
            await self.client.create(LEASES, objects.LEASE_NAMESPACE, lease)
        except errors.StatusError as exc:
            if exc.code != 409:
                raise
            await self._renew(name)

    # ----- heartbeats -----------------------------------------------------------------

    def _schedule_heartbeats(self) -> None:
        now = self.clock.monotonic()
        n = max(1, len(self.names))
        for i, name in enumerate(self.names):
            spread = (i + 1) / n
            heapq.heappush(self._heap, (now + self.lease_interval * spread, next(self._seq),
                                        name, "lease"))
            heapq.heappush(self._heap, (now + self.status_interval * spread, next(self._seq),
                                        name, "status"))

    async def _heartbeats(self) -> None:
        tick = min(0.1, self.lease_interval / 10)
        while True:
            now = self.clock.monotonic()
            due: list[Awaitable[Any]] = []
            while self._heap and self._heap[0][0] <= now:
                when, _, name, what = heapq.heappop(self._heap)
                if name in self._dead:
                    continue
                interval = self.lease_interval if what == "lease" else self.status_interval
                heapq.heappush(self._heap, (max(when + interval, now), next(self._seq),
                                            name, what))
                due.append(self._beat(name, what))
            if due:
                await self._bounded(due, self._beat_share)
            wait = self._heap[0][0] - self.clock.monotonic() if self._heap else self.lease_interval
            if wait > 0:
                await self.clock.sleep(max(wait, tick))  # batch what falls due close together
            else:
                await asyncio.sleep(0)

    async def _beat(self, name: str, what: str) -> None:
        try:
            if what == "lease":
                await self._renew(name)
            else:
                await self._post_status(name)
        except errors.StatusError as exc:
            if exc.code == 404:
                self._dead.add(name)
                log.warning("hollow node %s: %s; it stops", name, exc.message)
            else:
                log.info("hollow node %s: %s heartbeat failed: %s", name, what, exc.message)
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.info("hollow node %s: %s heartbeat failed: %r", name, what, exc)

    async def _renew(self, name: str) -> None:
        patch = {"spec": {"holderIdentity": name, "renewTime": micro_time(self.clock.now())}}
        try:
            await self.client.patch(LEASES, objects.LEASE_NAMESPACE, name, patch)
        except errors.StatusError as exc:
            if exc.code != 404 or self._nodes.get(None, name) is None:
                raise
            node = self._nodes.get(None, name) or {}
            uid = node.get("metadata", {}).get("uid", "")
            await self.client.create(LEASES, objects.LEASE_NAMESPACE,
                                     objects.lease_object(name, uid, self.clock.now()))
        self.renewals += 1

    async def _post_status(self, name: str) -> None:
        node = self._nodes.get(None, name) or {}
        previous = (node.get("status") or {}).get("conditions")
        conds = objects.conditions(self.clock.now(), previous)
        await self.client.patch(NODES, None, name, {"status": {"conditions": conds}},
                                subresource="status")

    # ----- reacting to the API --------------------------------------------------------

    def _node_changed(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        if not self.alive(name):
            return
        for c in (node.get("status") or {}).get("conditions") or ():
            if c.get("type") == "Ready" and c.get("status") != "True":
                self.queue.add("node:" + name)  # set right again, as a kubelet would

    def _pod_changed(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and self.alive(node):
            meta = pod["metadata"]
            self.queue.add(f"pod:{meta.get('namespace')}/{meta['name']}")

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                what, _, rest = key.partition(":")
                if what == "node":
                    if self.alive(rest):
                        await self._post_status(rest)
                else:
                    await self._sync_pod(rest)
                self.queue.forget(key)
            except errors.StatusError as exc:
                if exc.code not in _GONE:
                    log.info("hollow nodes: %s failed: %s; retrying", key, exc.message)
                    self.queue.add_rate_limited(key)
            except (ConnectionError, OSError, TimeoutError) as exc:
                log.info("hollow nodes: %s failed: %r; retrying", key, exc)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    async def _sync_pod(self, key: str) -> None:
        pod = self._pods.get_by_key(key)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName", "")
        if not self.alive(node):
            return
        ns, name = split_key(key)
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            await self.client.delete(PODS, ns, name, options={
                "gracePeriodSeconds": 0, "preconditions": {"uid": meta.get("uid")}})
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return
        if not _reported_running(pod):
            status = podstatus.running_status(pod, host_ip=self._host_ip(node),
                                              pod_ip=(pod.get("status") or {}).get("podIP")
                                              or self._pod_ip(node),
                                              now=self.clock.now())
            await self._patch_pod(ns, name, status)
            return
        plan = podstatus.exit_plan(pod)
        if plan is None:
            return
        seconds, code = plan
        now = self.clock.now()
        started = podstatus.container_started_at(pod) or now
        if started + seconds > now:
            self.queue.add_after("pod:" + key, started + seconds - now)
            return
        if code != 0 and (pod.get("spec") or {}).get("restartPolicy") == "OnFailure":
            await self._patch_pod(ns, name, podstatus.restarted_status(pod, code=code, now=now))
        else:
            await self._patch_pod(ns, name, podstatus.terminated_status(pod, code=code, now=now))

    async def _patch_pod(self, ns: str | None, name: str, status: Obj) -> None:
        await self.client.patch(PODS, ns, name, {"status": status}, subresource="status")
        self.pod_updates += 1

    def _host_ip(self, node: str) -> str:
        return objects.node_ip(self._index[node])

    def _pod_ip(self, node: str) -> str:
        obj = self._nodes.get(None, node) or {}
        cidr = (obj.get("spec") or {}).get("podCIDR") or \
            objects.fallback_pod_cidr(self._index[node])
        net = ipaddress.ip_network(cidr, strict=False)
        n = self._next_ip.get(node, 0)
        self._next_ip[node] = n + 1
        usable = max(1, net.num_addresses - 3)
        return str(net.network_address + 2 + n % usable)


def _reported_running(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or ())
    containers = (pod.get("spec") or {}).get("containers") or ()
    return ready and len(status.get("containerStatuses") or ()) == len(containers)
