"""The pod garbage collector: pods nobody else will ever clean up.

Three kinds, as Kubernetes' PodGC handles them:
- pods bound to a node that no longer exists (after a short quarantine, in case
  the node is only being re-registered) are deleted at once;
- terminating pods that were never scheduled are deleted at once (no node
  agent will confirm them);
- terminated pods (Succeeded/Failed) beyond ``terminated_pod_gc_threshold``
  are deleted, oldest first.
"""

from __future__ import annotations

import logging

from kubeling.api import errors
from kubeling.client.informer import NODE_INDEX
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.utils.clock import parse_rfc3339

log = logging.getLogger("kubeling.controllers.podgc")

GC_PERIOD = 20.0
QUARANTINE = 40.0


class PodGCController(Controller):
    name = "pod-garbage-collector"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pods = ctx.informers.informer(("", "pods"))
        self.nodes = ctx.informers.informer(("", "nodes"))
        self.pods_kind = self.pods.kind
        self._missing_since: dict[str, float] = {}

    async def run(self, workers: int | None = None) -> None:
        await self.wait_synced()
        log.info("%s started", self.name)
        while True:
            await self.gc_once()
            await self.clock.sleep(GC_PERIOD)

    async def gc_once(self) -> int:
        """One pass; returns how many pods it deleted."""
        deleted = 0
        now = self.clock.monotonic()
        bound_nodes = {p["spec"].get("nodeName") for p in self.pods.list()
                       if (p.get("spec") or {}).get("nodeName")}
        for node in list(self._missing_since):
            if node not in bound_nodes or self.nodes.get(None, node) is not None:
                del self._missing_since[node]
        for node in bound_nodes:
            if node is None or self.nodes.get(None, node) is not None:
                continue
            first = self._missing_since.setdefault(node, now)
            if now - first < QUARANTINE:
                continue
            for pod in self.pods.by_index(NODE_INDEX, node):
                deleted += await self._delete(pod, f"its node {node} no longer exists", 0)
        for pod in self.pods.list():
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") and not (pod.get("spec") or {}).get("nodeName"):
                deleted += await self._delete(pod, "it is terminating and was never scheduled",
                                              0)
        deleted += await self._gc_terminated()
        return deleted

    async def _gc_terminated(self) -> int:
        threshold = self.ctx.options.terminated_pod_gc_threshold
        if threshold <= 0:
            return 0
        done = [p for p in self.pods.list()
                if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")]
        excess = len(done) - threshold
        if excess <= 0:
            return 0
        done.sort(key=lambda p: parse_rfc3339(p["metadata"].get("creationTimestamp")
                                              or "1970-01-01T00:00:00Z"))
        n = 0
        for pod in done[:excess]:
            n += await self._delete(pod, "terminated pods exceed the threshold", None)
        return n

    async def _delete(self, pod: Obj, why: str, grace: int | None) -> int:
        meta = pod["metadata"]
        if meta.get("deletionGracePeriodSeconds") == 0:
            return 0  # already forced; only its finalizers keep it
        options: Obj = {"preconditions": {"uid": meta["uid"]}}
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        try:
            await self.client.delete(self.pods_kind, meta["namespace"], meta["name"],
                                     options=options)
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                log.warning("could not delete pod %s/%s: %s", meta["namespace"], meta["name"],
                            exc.message)
            return 0
        log.info("deleted pod %s/%s: %s", meta["namespace"], meta["name"], why)
        return 1
