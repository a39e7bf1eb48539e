"""The agent's presence in the API: registering its Node, renewing its Lease, reporting status.

As the kubelet does: the Lease ``kube-node-lease/<node>`` is renewed every
``lease_interval`` (that is what keeps the node alive for the node lifecycle
controller); the status is measured every ``status_update_interval`` and
written when it changed, or when ``status_report_interval`` has passed since
the last write. Condition transitions are recorded as the kubelet's node
events (NodeHasSufficientMemory, NodeReady...). Registration adopts a Node of
the same name left by an earlier run instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.interface import Obj
from kubeling.client.leader import micro_time
from kubeling.client.nodeobjects import LEASE_NAMESPACE, lease_object
from kubeling.kubelet import node as nodestatus
from kubeling.kubelet.context import KubeletContext
from kubeling.runtime.protocol import RuntimeFailure
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.heartbeat")


def _kind(group: str, resource: str) -> Kind:
    k = kinds.by_resource(group, resource)
    assert k is not None
    return k


NODES = _kind("", "nodes")
LEASES = _kind("coordination.k8s.io", "leases")
_TRANSIENT = (ConnectionError, OSError, TimeoutError)


class Heartbeat:
    """Registers the agent's Node and keeps it alive and truthful. ``reader`` measures the
    machine (tests give a fake one)."""

    def __init__(self, ctx: KubeletContext, *, kubelet_port: int,
                 reader: Callable[[Path], nodestatus.Reading] = nodestatus.read_machine,
                 thresholds: nodestatus.Thresholds = nodestatus.Thresholds()) -> None:
        self.ctx = ctx
        self.port = kubelet_port
        self.reader = reader
        self.thresholds = thresholds
        self.name = ctx.options.node_name
        self.node_uid = ""
        self._lease: Obj | None = None
        self._last_status: Obj | None = None
        self.last_node: Obj | None = None  # as the API returned it after our last write
        self._last_report = float("-inf")
        self._runtime_version = ""
        self._tasks: list[asyncio.Task[Any]] = []
        self.renewals = 0
        self.status_checks = 0  # status passes done (written or not)
        self.status_writes = 0

    # ----- what the node is ---------------------------------------------------------------

    def _ref(self) -> Obj:
        # The kubelet names its node by name in events, with the name as the uid too.
        return {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": self.name, "uid": self.name}}

    async def _runtime_problems(self) -> list[str]:
        try:
            v = await self.ctx.runtime.version()
        except (RuntimeFailure, *_TRANSIENT) as exc:
            log.warning("container runtime is down: %s", exc)
            return ["container runtime is down"]
        self._runtime_version = f"{v.runtime_name}://{v.runtime_version}"
        return []

    async def _images(self) -> list[Obj]:
        try:
            return nodestatus.images(await self.ctx.runtime.list_images())
        except (RuntimeFailure, *_TRANSIENT) as exc:
            log.info("listing images failed: %s", exc)
            return list((self._last_status or {}).get("images") or [])

    async def compute_status(self, previous: list[Obj] | None
                             ) -> tuple[Obj, list[nodestatus.Transition]]:
        """The node's status now (conditions continuing ``previous``) and the transitions."""
        problems = await self._runtime_problems()
        reading = await asyncio.to_thread(self.reader, self.ctx.options.root_dir)
        conds, changes = nodestatus.conditions(reading, now=self.ctx.clock.now(),
                                               previous=previous, not_ready=problems,
                                               thresholds=self.thresholds)
        status = nodestatus.node_status(
            reading, self.ctx.options, node_ip=self.ctx.node_ip, port=self.port,
            runtime_version=self._runtime_version or f"{self.ctx.runtime.name}://unknown",
            conds=conds, image_list=await self._images())
        return status, changes

    def _record(self, changes: list[nodestatus.Transition]) -> None:
        for t in changes:
            warn = t.event == "NodeNotReady" or (t.type != "Ready" and t.status == "True")
            self.ctx.recorder.event(self._ref(), WARNING if warn else NORMAL, t.event,
                                    f"Node {self.name} status is now: {t.event}")

    # ----- registration -------------------------------------------------------------------

    async def register(self) -> Obj:
        """Create the Node, or adopt the one of that name; retries until the API answers."""
        self.ctx.recorder.event(self._ref(), NORMAL, "Starting", "Starting kubelet.")
        delay = 0.1
        while True:
            try:
                node = await self._register_once()
                break
            except errors.StatusError as exc:
                if exc.code < 500 and exc.code not in (409, 429):
                    raise
                log.info("registering node %s: %s; retrying", self.name, exc.message)
            except _TRANSIENT as exc:
                log.info("registering node %s: %r; retrying", self.name, exc)
            await self.ctx.clock.sleep(delay)
            delay = min(delay * 2, 7.0)
        self.node_uid = node["metadata"].get("uid", "")
        log.info("node %s registered", self.name)
        return node

    async def _register_once(self) -> Obj:
        existing: Obj | None = None
        try:
            existing = await self.ctx.client.get(NODES, None, self.name)
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
        previous = ((existing or {}).get("status") or {}).get("conditions")
        status, changes = await self.compute_status(previous)
        if existing is None:
            node = await self.ctx.client.create(
                NODES, None, nodestatus.node_object(self.ctx.options, status))
        else:
            node = await self._adopt(existing, status)
        self._written(node, status)
        self._record(changes)
        return node

    async def _adopt(self, existing: Obj, status: Obj) -> Obj:
        want = nodestatus.node_object(self.ctx.options, status)
        node = json_copy(existing)
        meta = node["metadata"]
        labels = meta.setdefault("labels", {})
        if any(labels.get(k) != v for k, v in want["metadata"]["labels"].items()) or \
                any(k not in (meta.get("annotations") or {})
                    for k in want["metadata"]["annotations"]):
            labels.update(want["metadata"]["labels"])
            meta.setdefault("annotations", {}).update(want["metadata"]["annotations"])
            node = await self.ctx.client.update(NODES, node)
        log.info("adopting the existing node %s", self.name)
        return await self.ctx.client.patch(NODES, None, self.name, {"status": status},
                                           subresource="status")

    def _written(self, node: Obj, status: Obj) -> None:
        self.last_node = node
        self._last_status = status
        self._last_report = self.ctx.clock.monotonic()
        self.node_uid = node["metadata"].get("uid", "") or self.node_uid
        self.status_writes += 1

    # ----- the loops ----------------------------------------------------------------------

    def start(self) -> None:
        """Run the lease and status loops in the background (``register`` first)."""
        if not self._tasks:
            self._tasks = [spawn(self._lease_loop(), name=f"node-lease-{self.name}"),
                           spawn(self._status_loop(), name=f"node-status-{self.name}")]

    async def run(self) -> None:
        """Run the lease and status loops until cancelled or stopped."""
        self.start()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _lease_loop(self) -> None:
        opts = self.ctx.options
        while True:
            try:
                await self.renew_lease()
            except errors.StatusError as exc:
                log.warning("renewing lease of node %s: %s", self.name, exc.message)
            except _TRANSIENT as exc:
                log.warning("renewing lease of node %s: %r", self.name, exc)
            await self.ctx.clock.sleep(opts.lease_interval)

    async def _status_loop(self) -> None:
        while True:
            await self.ctx.clock.sleep(self.ctx.options.status_update_interval)
            try:
                await self.update_status()
            except errors.StatusError as exc:
                log.warning("updating status of node %s: %s", self.name, exc.message)
            except _TRANSIENT as exc:
                log.warning("updating status of node %s: %r", self.name, exc)

    async def renew_lease(self) -> Obj:
        """Write the Lease with renewTime = now (creating it when missing)."""
        now = self.ctx.clock.now()
        duration = self.ctx.options.lease_duration
        if self._lease is not None:
            lease = json_copy(self._lease)
            lease["spec"].update(holderIdentity=self.name, leaseDurationSeconds=duration,
                                 renewTime=micro_time(now))
            try:
                self._lease = await self.ctx.client.update(LEASES, lease)
                self.renewals += 1
                return self._lease
            except errors.StatusError as exc:
                if exc.code not in (404, 409):
                    raise
                self._lease = None
        try:
            current = await self.ctx.client.get(LEASES, LEASE_NAMESPACE, self.name)
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
            fresh = lease_object(self.name, self.node_uid, now, duration=duration)
            self._lease = await self.ctx.client.create(LEASES, LEASE_NAMESPACE, fresh)
        else:
            lease = json_copy(current)
            lease["spec"].update(holderIdentity=self.name, leaseDurationSeconds=duration,
                                 renewTime=micro_time(now))
            if self.node_uid:
                lease["metadata"]["ownerReferences"] = lease_object(
                    self.name, self.node_uid, now)["metadata"]["ownerReferences"]
            self._lease = await self.ctx.client.update(LEASES, lease)
        self.renewals += 1
        return self._lease

    async def update_status(self) -> bool:
        """Measure the node; write its status when it changed or is due. True if written."""
        # What the API says now (the node lifecycle controller may have marked it Unknown);
        # no node there (deleted, or not seen yet) means a write, which re-registers it.
        api_node = self.ctx.objects.node()
        seen = (api_node or {}).get("status")
        previous = (seen or self._last_status or {}).get("conditions")
        status, changes = await self.compute_status(previous)
        due = self.ctx.clock.monotonic() - self._last_report >= \
            self.ctx.options.status_report_interval
        if not due and not nodestatus.status_changed(seen, status):
            self.status_checks += 1
            return False
        if log.isEnabledFor(logging.DEBUG) and seen is not None:
            log.debug("node %s status differs in %s", self.name,
                      [k for k in status if nodestatus.status_changed({k: seen.get(k)},
                                                                      {k: status[k]})])
        try:
            node = await self.ctx.client.patch(NODES, None, self.name, {"status": status},
                                               subresource="status")
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
            log.warning("node %s was deleted; registering it again", self.name)
            self._lease = None
            await self.register()
            self.status_checks += 1
            return True
        self._written(node, status)
        self._record(changes)
        self.status_checks += 1
        return True
