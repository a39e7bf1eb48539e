"""Node lifecycle: notice nodes that stopped talking, and taint them so their pods move.

A node agent proves it is alive two ways: it renews its Lease in
``kube-node-lease`` and posts its Ready condition with a fresh
``lastHeartbeatTime``. Every ``node_monitor_period`` this controller looks at
each node; if neither has changed within ``node_monitor_grace_period`` —
measured on our clock from when *we* saw the last change, so skewed node
clocks and a restarted controller do not matter — every condition of the node
becomes Unknown (``NodeStatusUnknown``, "Kubelet stopped posting node
status."), its pods are marked not Ready, and it is tainted
``node.kubernetes.io/unreachable:NoExecute``; a node that reports Ready=False
is tainted ``node.kubernetes.io/not-ready:NoExecute`` instead. The NoSchedule
taints follow the conditions (not-ready, unreachable, memory/disk/PID
pressure, network unavailable, unschedulable). When a node recovers its taints
go. If no node of a zone is ready the NoExecute taints are held back, as in
Kubernetes' full-disruption mode, so one dead network does not evict
everything. :mod:`kubeling.controllers.taintmanager` does the evictions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.informer import NODE_INDEX
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.controllers.taintmanager import TaintEvictionController
from kubeling.utils.clock import parse_rfc3339, rfc3339
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.controllers.nodelifecycle")

LEASE_NAMESPACE = "kube-node-lease"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
ZONE_LABEL = "topology.kubernetes.io/zone"
CONDITION_TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
# condition type -> (status, NoSchedule taint key)
NO_SCHEDULE_BY_CONDITION = (
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    ("MemoryPressure", "True", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
    ("NetworkUnavailable", "True", "node.kubernetes.io/network-unavailable"),
)
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MANAGED_NO_SCHEDULE = {key for _, _, key in NO_SCHEDULE_BY_CONDITION} | {UNSCHEDULABLE}


@dataclass
class Health:
    probe: float  # monotonic time of the last sign of life we observed
    heartbeat: str  # Ready's lastHeartbeatTime then
    renew: str  # the Lease's renewTime then


def condition(node: Obj, type_: str) -> Obj | None:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return c
    return None


def ready_status(node: Obj) -> str:
    c = condition(node, "Ready")
    return str(c.get("status", "Unknown")) if c else "Unknown"


def desired_taints(node: Obj, *, evict: bool, now: str) -> list[Obj]:
    """The node's taints with the controller-managed ones recomputed from its conditions."""
    taints = list((node.get("spec") or {}).get("taints") or ())
    wanted: list[Obj] = []
    for type_, status, key in NO_SCHEDULE_BY_CONDITION:
        c = condition(node, type_)
        if c is not None and c.get("status") == status:
            wanted.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.append({"key": UNSCHEDULABLE, "effect": "NoSchedule"})
    ready = ready_status(node)
    if evict and ready == "False":
        wanted.append({"key": NOT_READY, "effect": "NoExecute", "timeAdded": now})
    elif evict and ready == "Unknown":
        wanted.append({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now})

    def managed(t: Obj) -> bool:
        return (t.get("effect") == "NoSchedule" and t.get("key") in MANAGED_NO_SCHEDULE) or \
            (t.get("effect") == "NoExecute" and t.get("key") in (NOT_READY, UNREACHABLE))

    kept = [t for t in taints if not managed(t)]
    for w in wanted:
        same = next((t for t in taints if t.get("key") == w["key"]
                     and t.get("effect") == w["effect"]), None)
        kept.append(same if same is not None else w)
    return kept


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        node_kind = kinds.by_resource("", "nodes")
        lease_kind = kinds.by_resource("coordination.k8s.io", "leases")
        pod_kind = kinds.by_resource("", "pods")
        assert node_kind is not None and lease_kind is not None and pod_kind is not None
        self.node_kind, self.pod_kind = node_kind, pod_kind
        self.nodes = ctx.informers.informer(node_kind)
        self.leases = ctx.informers.informer(lease_kind, namespace=LEASE_NAMESPACE)
        self.pods = ctx.informers.informer(pod_kind)
        self.nodes.add_handlers(add=self.enqueue, update=lambda _, new: self.enqueue(new),
                                delete=self._node_deleted)
        self.eviction = TaintEvictionController(ctx)
        opts = ctx.options
        self.period = opts.node_monitor_period
        self.grace = opts.node_monitor_grace_period
        self.startup_grace = float(opts.extra.get("node_startup_grace_period", 60.0))
        self._health: dict[str, Health] = {}
        self._disrupted_zones: set[str] = set()

    def _node_deleted(self, node: Obj) -> None:
        self._health.pop(node["metadata"]["name"], None)

    async def run(self, workers: int | None = None) -> None:
        await self.wait_synced()
        spawn(self.eviction.run(workers), name="taint-eviction")
        spawn(self._monitor(), name="node-monitor")
        await super().run(workers)

    async def _monitor(self) -> None:
        while True:
            self.monitor_pass()
            await self.clock.sleep(self.period)

    def monitor_pass(self) -> None:
        """Note signs of life, work out which zones have no ready node, and queue every node."""
        zones: dict[str, bool] = {}
        for node in self.nodes.list():
            overdue = self._overdue(node)
            ok = not overdue and ready_status(node) == "True"
            zone = self._zone(node)
            zones[zone] = zones.get(zone, False) or ok
            self.enqueue(node)
        disrupted = {z for z, ok in zones.items() if not ok}
        for z in disrupted - self._disrupted_zones:
            log.warning("no node of zone %r is ready: holding back NoExecute taints", z or "-")
        self._disrupted_zones = disrupted

    @staticmethod
    def _zone(node: Obj) -> str:
        return (node["metadata"].get("labels") or {}).get(ZONE_LABEL, "")

    def _overdue(self, node: Obj) -> bool:
        """Record what changed since we last looked; True when the node has been silent for
        longer than its grace period."""
        name = node["metadata"]["name"]
        now = self.clock.monotonic()
        ready = condition(node, "Ready")
        heartbeat = str(ready.get("lastHeartbeatTime") or "") if ready else ""
        lease = self.leases.get(LEASE_NAMESPACE, name)
        renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
        h = self._health.get(name)
        if h is None:
            probe = now
            if ready is None:
                created = node["metadata"].get("creationTimestamp")
                age = self.clock.now() - parse_rfc3339(created) if created else 0.0
                probe = now - max(0.0, age)
            h = self._health[name] = Health(probe, heartbeat, renew)
        if heartbeat != h.heartbeat:
            h.heartbeat, h.probe = heartbeat, now
        if renew != h.renew and _later(renew, h.renew):
            h.renew, h.probe = renew, now
        grace = self.startup_grace if ready is None else self.grace
        return now > h.probe + grace

    async def sync(self, key: str) -> None:
        node = self.nodes.get(None, key)
        if node is None:
            return
        was_ready = ready_status(node)
        if self._overdue(node):
            node = await self._mark_unknown(node)
        now = rfc3339(self.clock.now())
        evict = self._zone(node) not in self._disrupted_zones
        taints = desired_taints(node, evict=evict, now=now)
        if taints != list((node.get("spec") or {}).get("taints") or ()):
            fresh = json_copy(node)
            fresh.setdefault("spec", {})["taints"] = taints
            if not taints:
                fresh["spec"].pop("taints")
            node = await self.client.update(self.node_kind, fresh)
            log.info("node %s: taints now %s", key,
                     ", ".join(f"{t['key']}:{t['effect']}" for t in taints) or "none")
        if ready_status(node) != "True":
            if was_ready == "True":
                self.recorder.event(node, NORMAL, "NodeNotReady",
                                    f"Node {key} status is now: NodeNotReady")
            await self._mark_pods_not_ready(key)

    async def _mark_unknown(self, node: Obj) -> Obj:
        fresh = json_copy(node)
        status = fresh.setdefault("status", {})
        conds: list[Obj] = status.setdefault("conditions", [])
        now = rfc3339(self.clock.now())
        changed = False
        for type_ in CONDITION_TYPES:
            c = next((x for x in conds if x.get("type") == type_), None)
            if c is None:
                conds.append({"type": type_, "status": "Unknown",
                              "reason": "NodeStatusNeverUpdated",
                              "message": "Kubelet never posted node status.",
                              "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                              "lastTransitionTime": now})
                changed = True
            elif c.get("status") != "Unknown":
                c.update(status="Unknown", reason="NodeStatusUnknown",
                         message="Kubelet stopped posting node status.", lastTransitionTime=now)
                changed = True
        if not changed:
            return node
        updated = await self.client.update(self.node_kind, fresh, subresource="status")
        log.warning("node %s: no lease renewal or status for %.0fs; conditions now Unknown",
                    node["metadata"]["name"], self.grace)
        return updated

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        for pod in self.pods.by_index(NODE_INDEX, node_name):
            ready = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                          if c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False":
                continue
            fresh = json_copy(pod)
            for c in fresh["status"]["conditions"]:
                if c.get("type") == "Ready":
                    c["status"] = "False"
                    c["lastTransitionTime"] = rfc3339(self.clock.now())
            try:
                await self.client.update(self.pod_kind, fresh, subresource="status")
            except errors.StatusError as exc:
                if exc.code not in (404, 409):
                    raise
                continue
            self.recorder.event(pod, WARNING, "NodeNotReady", "Node is not ready")


def _later(a: str, b: str) -> bool:
    if not b:
        return bool(a)
    try:
        return parse_rfc3339(a) > parse_rfc3339(b)
    except ValueError:
        return a != b
