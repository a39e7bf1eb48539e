"""The Deployment controller: watches Deployments, their ReplicaSets and pods, and syncs.

A sync reads one Deployment from the cache, claims the ReplicaSets it selects
(adopting orphans, releasing those that no longer match), and then, in
Kubernetes' order: only status while it is being deleted; pause/resume
conditions; scaling alone when paused or when only ``replicas`` changed;
a legacy rollback; otherwise one step of its strategy (RollingUpdate or
Recreate). Changes to ReplicaSets (their status moving as pods become
available) and pod deletions bring their Deployment back onto the queue.
"""

from __future__ import annotations

import logging

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.api.selectors import selector_from_object
from kubeling.client.events import WARNING
from kubeling.client.informer import key_of, split_key
from kubeling.client.interface import Obj
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.deployment.recreate import RecreateMixin
from kubeling.controllers.deployment.rollback import RollbackMixin
from kubeling.controllers.deployment.rolling import RollingMixin
from kubeling.controllers.deployment.sync import rollback_to
from kubeling.controllers.podcontrol import claim, controller_of

log = logging.getLogger("kubeling.controllers.deployment")


def _kind(group: str, resource: str) -> Kind:
    found = kinds.by_resource(group, resource)
    if found is None:
        raise LookupError(f"no resource {resource!r} in group {group!r}")
    return found


class DeploymentController(RollingMixin, RecreateMixin, RollbackMixin):
    name = "deployment"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.d_kind = _kind("apps", "deployments")
        self.rs_kind = _kind("apps", "replicasets")
        self.pod_kind = _kind("", "pods")
        self.deployments = ctx.informers.informer(self.d_kind)
        self.replicasets = ctx.informers.informer(self.rs_kind)
        self.pods = ctx.informers.informer(self.pod_kind)
        self.deployments.add_handlers(add=self.enqueue, update=lambda _o, n: self.enqueue(n),
                                      delete=self.enqueue)
        self.replicasets.add_handlers(add=self._rs_added, update=self._rs_updated,
                                      delete=self._rs_deleted)
        self.pods.add_handlers(delete=self._pod_deleted)

    # ----- informer handlers ----------------------------------------------------------------

    def _owner(self, namespace: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get(namespace, ref.get("name") or "")
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return d

    def _selecting(self, rs: Obj) -> list[Obj]:
        labels = rs["metadata"].get("labels") or {}
        out = []
        for d in self.deployments.list(rs["metadata"]["namespace"]):
            try:
                selector = selector_from_object(d["spec"].get("selector"))
            except ValueError:
                continue
            if not selector.empty and selector.matches(labels):
                out.append(d)
        return out

    def _rs_added(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        ref = controller_of(rs)
        if ref is not None:
            d = self._owner(rs["metadata"]["namespace"], ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._selecting(rs):
            self.enqueue(d)

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        ns = cur["metadata"]["namespace"]
        old_ref, cur_ref = controller_of(old), controller_of(cur)
        if old_ref != cur_ref:
            d = self._owner(ns, old_ref)
            if d is not None:
                self.enqueue(d)
        if cur_ref is not None:
            d = self._owner(ns, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if old["metadata"].get("labels") != cur["metadata"].get("labels") or old_ref != cur_ref:
            for d in self._selecting(cur):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        d = self._owner(rs["metadata"]["namespace"], controller_of(rs))
        if d is not None:
            self.enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace") or ""
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(ns, ref.get("name") or "")
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return
        d = self._owner(ns, controller_of(rs))
        if d is not None and (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            self.enqueue(d)

    # ----- sync ---------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.deployments.get(ns, name)
        if cached is None:
            return
        d = json_copy(cached)
        selector_obj = d["spec"].get("selector")
        if not (selector_obj or {}).get("matchLabels") and \
                not (selector_obj or {}).get("matchExpressions"):
            self.recorder.event(d, WARNING, "SelectingAll", "This deployment is selecting all "
                                "pods. A non-empty selector is required.")
            status = d.setdefault("status", {})
            if int(status.get("observedGeneration") or 0) < int(d["metadata"].get("generation")
                                                                 or 0):
                status["observedGeneration"] = d["metadata"]["generation"]
                await self.write_status(d)
            return
        rss = await self.replica_sets_for(d)
        if d["metadata"].get("deletionTimestamp"):
            await self.sync_status_only(d, rss)
            return
        await self.check_paused_conditions(d)
        if d["spec"].get("paused"):
            await self.sync_only_scale(d, rss)
            return
        if rollback_to(d) is not None:
            await self.rollback(d, rss)
            return
        if await self.is_scaling_event(d, rss):
            await self.sync_only_scale(d, rss)
            return
        if (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            await self.rollout_recreate(d, rss, self.pod_map(d, rss))
        else:
            await self.rollout_rolling(d, rss)

    async def replica_sets_for(self, d: Obj) -> list[Obj]:
        """The ReplicaSets ``d`` controls, after adopting and releasing."""
        selector = selector_from_object(d["spec"].get("selector"))
        candidates = self.replicasets.list(d["metadata"]["namespace"])
        try:
            return await claim(self.client, self.rs_kind, d, self.d_kind, selector, candidates)
        except errors.StatusError as exc:
            log.info("claiming replica sets for %s: %s", key_of(d), exc.message)
            raise

    def pod_map(self, d: Obj, rss: list[Obj]) -> dict[str, list[Obj]]:
        """The Deployment's pods by the uid of the ReplicaSet that controls them."""
        by_uid: dict[str, list[Obj]] = {rs["metadata"]["uid"]: [] for rs in rss}
        selector = selector_from_object(d["spec"].get("selector"))
        for pod in self.pods.list(d["metadata"]["namespace"], selector):
            ref = controller_of(pod)
            if ref is not None and ref.get("uid") in by_uid:
                by_uid[ref["uid"]].append(pod)
        return by_uid
