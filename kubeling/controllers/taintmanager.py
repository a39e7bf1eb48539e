"""Taint-based eviction: pods leave a node tainted ``NoExecute`` they do not tolerate.

The node lifecycle controller taints a failed node with
``node.kubernetes.io/unreachable:NoExecute`` (or ``not-ready``); this part
then deletes each pod on it that does not tolerate every ``NoExecute`` taint,
at once, or, when its tolerations allow a while (``tolerationSeconds``; the
API server adds 300 s ones to every pod), once that time has passed since the
taint was first seen on the pod's node. The pod's controller then creates a
replacement, which the scheduler places on a healthy node. Each eviction is a
``TaintManagerEviction`` event on the pod and a ``DisruptionTarget`` condition,
as Kubernetes' taint eviction controller records them.
"""

from __future__ import annotations

import logging

from kubeling.api import errors, kinds
from kubeling.api.nodematch import tolerates
from kubeling.client.events import NORMAL
from kubeling.client.informer import NODE_INDEX, key_of, split_key
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.utils.clock import rfc3339

log = logging.getLogger("kubeling.controllers.taintmanager")

NO_EXECUTE = "NoExecute"


def toleration_time(taints: list[Obj], tolerations: list[Obj]) -> float | None:
    """Seconds a pod may stay on a node with these NoExecute ``taints``: 0 when one is not
    tolerated, None (for ever) when no toleration that applies sets tolerationSeconds."""
    used: list[Obj] = []
    for taint in taints:
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return 0.0
        used.append(match)
    if not used:
        return 0.0 if taints else None
    seconds = [t["tolerationSeconds"] for t in used if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    return float(max(0, min(seconds)))


def no_execute_taints(node: Obj | None) -> list[Obj]:
    if node is None:
        return []
    return [t for t in (node.get("spec") or {}).get("taints") or ()
            if t.get("effect") == NO_EXECUTE]


class TaintEvictionController(Controller):
    """Keys are pods (``namespace/name``); node changes requeue the pods bound to the node."""

    name = "taint-eviction"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        pod_kind = kinds.by_resource("", "pods")
        node_kind = kinds.by_resource("", "nodes")
        assert pod_kind is not None and node_kind is not None
        self.pod_kind = pod_kind
        self.pods = ctx.informers.informer(pod_kind)
        self.nodes = ctx.informers.informer(node_kind)
        self.pods.add_handlers(add=self._pod_changed, update=lambda _, p: self._pod_changed(p),
                               delete=self._pod_deleted)
        self.nodes.add_handlers(add=self._node_changed, update=self._node_updated)
        self._since: dict[str, float] = {}  # pod key -> when it was first seen on a tainted node
        self.evictions = 0

    def _pod_changed(self, pod: Obj) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        if no_execute_taints(self.nodes.get(None, node_name)) or key_of(pod) in self._since:
            self.enqueue(pod)

    def _pod_deleted(self, pod: Obj) -> None:
        self._since.pop(key_of(pod), None)

    def _node_changed(self, node: Obj) -> None:
        if no_execute_taints(node):
            self._requeue_pods(node)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if no_execute_taints(old) != no_execute_taints(new):
            self._requeue_pods(new)

    def _requeue_pods(self, node: Obj) -> None:
        for pod in self.pods.by_index(NODE_INDEX, node["metadata"]["name"]):
            self.enqueue(pod)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        pod = self.pods.get(ns, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self._since.pop(key, None)
            return
        spec = pod.get("spec") or {}
        taints = no_execute_taints(self.nodes.get(None, spec.get("nodeName") or ""))
        if not taints:
            if self._since.pop(key, None) is not None:
                self.recorder.event(pod, NORMAL, "TaintManagerEviction",
                                    f"Cancelling deletion of Pod {key}")
            return
        allowed = toleration_time(taints, list(spec.get("tolerations") or ()))
        if allowed is None:
            self._since.pop(key, None)
            return
        now = self.clock.monotonic()
        since = self._since.setdefault(key, now)
        left = since + allowed - now
        if left > 0:
            self.queue.add_after(key, left)
            return
        await self._evict(pod, key)

    async def _evict(self, pod: Obj, key: str) -> None:
        meta = pod["metadata"]
        self.recorder.event(pod, NORMAL, "TaintManagerEviction", f"Marking for deletion Pod {key}")
        condition = {"type": "DisruptionTarget", "status": "True",
                     "lastTransitionTime": rfc3339(self.clock.now()),
                     "reason": "DeletionByTaintManager",
                     "message": "Taint manager: deleting due to NoExecute taint"}
        try:
            await self.client.patch(self.pod_kind, meta["namespace"], meta["name"],
                                    {"status": {"conditions": [condition]}},
                                    patch_type="strategic", subresource="status")
            await self.client.delete(self.pod_kind, meta["namespace"], meta["name"],
                                     options={"preconditions": {"uid": meta.get("uid")}})
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                raise
            return
        self.evictions += 1
        self._since.pop(key, None)
        log.info("evicted pod %s from node %s: NoExecute taint not tolerated any longer", key,
                 (pod.get("spec") or {}).get("nodeName"))
