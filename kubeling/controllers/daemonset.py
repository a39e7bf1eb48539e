"""The DaemonSet controller: one pod on every eligible node.

Each sync makes sure the DaemonSet's current template has a ControllerRevision
(its hash labels the pods as ``controller-revision-hash``), then walks the
nodes: an eligible node without a pod gets one (pinned to it by node affinity,
bound by the scheduler), a node that is no longer eligible loses its pod,
failed pods are replaced, extra pods removed; pods on nodes that no longer
exist are force-deleted (no kubelet is left to finish them — the pod GC's job
in Kubernetes). A RollingUpdate replaces old-revision pods within
``maxUnavailable`` (delete first) or ``maxSurge`` (create first); OnDelete
waits for the user. Status carries the counters ``kubectl rollout status ds``
reads.
"""

from __future__ import annotations

import asyncio
import logging

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.api.selectors import selector_from_object
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.informer import OWNER_INDEX, key_of
from kubeling.client.interface import Obj
from kubeling.controllers import daemonset_util as du
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.controllers.daemonset_rolling import NodePods, plan_rollout
from kubeling.controllers.podcontrol import (
    Expectations,
    OwnedPodEvents,
    PartialCreate,
    claim,
    controller_of,
    controller_ref,
    create_batched,
    from_template,
)

log = logging.getLogger("kubeling.controllers.daemonset")


def _kind(group: str, resource: str) -> Kind:
    k = kinds.by_resource(group, resource)
    assert k is not None
    return k


DAEMONSETS = _kind("apps", "daemonsets")
REVISIONS = _kind("apps", "controllerrevisions")
NODES = _kind("", "nodes")
PODS = _kind("", "pods")


def _node_changed(old: Obj, new: Obj) -> bool:
    return old["metadata"].get("labels") != new["metadata"].get("labels") or \
        old.get("spec") != new.get("spec")


class DaemonSetController(Controller):
    name = "daemonset-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.daemonsets = ctx.informers.informer(DAEMONSETS)
        self.nodes = ctx.informers.informer(NODES)
        self.pods = ctx.informers.informer(PODS)
        self.revisions = ctx.informers.informer(REVISIONS)
        self.expectations = Expectations(ctx.clock)
        self.daemonsets.add_handlers(add=self.enqueue, update=lambda _o, n: self.enqueue(n),
                                     delete=self._ds_deleted)
        self.nodes.add_handlers(add=self._all, delete=self._all,
                                update=lambda o, n: self._all(n) if _node_changed(o, n) else None)
        OwnedPodEvents("DaemonSet", self.queue, self.expectations).register(self.pods)

    def _ds_deleted(self, ds: Obj) -> None:
        self.expectations.forget(key_of(ds))

    def _all(self, _node: Obj) -> None:
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    # ----- sync -----------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        ds = self.daemonsets.get(ns, name)
        if ds is None:
            self.expectations.forget(key)
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        revision = await self._current_revision(ds)
        hash_ = revision["metadata"]["labels"][du.REVISION_HASH]
        by_node, orphans = await self._pods_by_node(ds)
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        if self.expectations.satisfied(key):
            await self._manage(key, ds, nodes, by_node, orphans, hash_)
        await self._cleanup_history(ds, revision, by_node)
        await self._update_status(ds, nodes, by_node, hash_)

    async def _pods_by_node(self, ds: Obj) -> tuple[dict[str, list[Obj]], list[Obj]]:
        meta = ds["metadata"]
        selector = selector_from_object((ds.get("spec") or {}).get("selector"))
        seen = {p["metadata"]["uid"]: p for p in self.pods.by_index(OWNER_INDEX, meta["uid"])}
        for p in self.pods.list(meta["namespace"], selector):
            seen.setdefault(p["metadata"]["uid"], p)
        owned = await claim(self.client, PODS, ds, DAEMONSETS, selector, list(seen.values()))
        by_node: dict[str, list[Obj]] = {}
        orphans: list[Obj] = []
        for p in owned:
            node = du.target_node(p)
            if node is None:
                orphans.append(p)
            else:
                by_node.setdefault(node, []).append(p)
        return by_node, orphans

    def _surge(self, ds: Obj, desired: int) -> tuple[int, int] | None:
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return None
        rolling = strategy.get("rollingUpdate") or {}
        surge = du.scaled(rolling.get("maxSurge"), desired, default=0)
        unavailable = du.scaled(rolling.get("maxUnavailable"), desired, default=1)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable

    async def _manage(self, key: str, ds: Obj, nodes: dict[str, Obj],
                      by_node: dict[str, list[Obj]], orphans: list[Obj], hash_: str) -> None:
        spec = ds.get("spec") or {}
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        tols = du.daemon_tolerations(pod_spec)
        desired = sum(1 for n in nodes.values() if du.should_run(n, pod_spec, tols)[0])
        limits = self._surge(ds, desired)
        surging = limits is not None and limits[0] > 0
        create: list[str] = []
        delete: list[Obj] = []
        force: list[Obj] = list(orphans)
        eligible: dict[str, NodePods] = {}
        for name, node in nodes.items():
            run, keep = du.should_run(node, pod_spec, tols)
            pods = by_node.get(name, [])
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            if run and not pods:
                create.append(name)
            elif keep:
                for p in live:
                    if (p.get("status") or {}).get("phase") == "Failed":
                        self.recorder.event(
                            ds, WARNING, "FailedDaemonPod",
                            f"Found failed daemon pod {p['metadata']['namespace']}/"
                            f"{p['metadata']['name']} on node {name}, will try to kill it")
                        delete.append(p)
                live = [p for p in live if (p.get("status") or {}).get("phase") != "Failed"]
                keep_pods, extra = _dedupe(live, hash_, surging, spec, self.clock.now())
                delete += extra
                if run or keep_pods:
                    eligible[name] = NodePods(name, keep_pods, terminating=len(pods) > len(live))
            elif not keep:
                delete += live
        for name, pods in by_node.items():
            if name not in nodes:
                force += pods
        if limits is not None and not delete and not create:
            min_ready = spec.get("minReadySeconds") or 0
            plan = plan_rollout(list(eligible.values()), hash_, limits[0], limits[1],
                                min_ready, self.clock.now())
            delete += plan.delete
            create += plan.create
            if plan.recheck_in is not None:
                self.queue.add_after(key, plan.recheck_in)
        await self._sync_nodes(key, ds, create, delete, force, hash_)

    async def _sync_nodes(self, key: str, ds: Obj, create: list[str], delete: list[Obj],
                          force: list[Obj], hash_: str) -> None:
        self.expectations.expect_deletions(key, [p["metadata"]["uid"] for p in delete + force])
        results = await asyncio.gather(
            *(self._delete(ds, p, 0 if p in force else None) for p in delete + force),
            return_exceptions=True)
        if create:
            self.expectations.expect_creations(key, len(create))
            queue = list(create)

            async def one() -> None:
                await self._create(ds, queue.pop(0), hash_)

            try:
                await create_batched(len(create), one)
            except PartialCreate as exc:
                self.expectations.creations_failed(key, len(create) - exc.done)
                raise exc.cause from None
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def _create(self, ds: Obj, node: str, hash_: str) -> None:
        template = (ds.get("spec") or {}).get("template") or {}
        pod = from_template(template, ds, DAEMONSETS)
        pod["metadata"]["labels"][du.REVISION_HASH] = hash_
        pod["metadata"]["labels"][du.TEMPLATE_GENERATION] = str(ds["metadata"].get(
            "generation", 1))
        du.add_daemon_tolerations(pod["spec"])
        du.pin_to_node(pod["spec"], node)
        try:
            created = await self.client.create(PODS, ds["metadata"]["namespace"], pod)
        except errors.StatusError as exc:
            self.recorder.event(ds, WARNING, "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.recorder.event(ds, NORMAL, "SuccessfulCreate",
                            f"Created pod: {created['metadata']['name']}")

    async def _delete(self, ds: Obj, pod: Obj, grace: int | None) -> None:
        meta = pod["metadata"]
        options: Obj = {"preconditions": {"uid": meta["uid"]}}
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        try:
            await self.client.delete(PODS, meta["namespace"], meta["name"], options=options)
        except errors.StatusError as exc:
            self.expectations.deletion_observed(key_of(ds), meta["uid"])
            if exc.code in (404, 409):
                return
            self.recorder.event(ds, WARNING, "FailedDelete", f"Error deleting: {exc.message}")
            raise
        self.recorder.event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    # ----- history and status -----------------------------------------------------------

    def _owned_revisions(self, ds: Obj) -> list[Obj]:
        uid = ds["metadata"]["uid"]
        return [r for r in self.revisions.by_index(OWNER_INDEX, uid)
                if (controller_of(r) or {}).get("uid") == uid]

    async def _current_revision(self, ds: Obj) -> Obj:
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        collisions = (ds.get("status") or {}).get("collisionCount") or 0
        owned = self._owned_revisions(ds)
        top = max((r.get("revision", 0) for r in owned), default=0)
        for r in owned:
            if du.revision_template(r) == template:
                if r.get("revision", 0) < top:
                    fresh = json_copy(r)
                    fresh["revision"] = top + 1
                    return await self.client.update(REVISIONS, fresh)
                return r
        hash_ = du.template_hash(template, collisions)
        meta = ds["metadata"]
        revision: Obj = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": f"{meta['name']}-{hash_}",
                                 "namespace": meta["namespace"],
                                 "labels": {**((template.get("metadata") or {}).get("labels")
                                               or {}), du.REVISION_HASH: hash_},
                                 "ownerReferences": [controller_ref(ds, DAEMONSETS)]},
                    "data": du.revision_data(template), "revision": top + 1}
        try:
            return await self.client.create(REVISIONS, meta["namespace"], revision)
        except errors.StatusError as exc:
            if exc.code != 409:
                raise
        existing = await self.client.get(REVISIONS, meta["namespace"],
                                         revision["metadata"]["name"])
        if du.revision_template(existing) == template and \
                (controller_of(existing) or {}).get("uid") == meta["uid"]:
            return existing
        status = json_copy(ds.get("status") or {})
        status["collisionCount"] = collisions + 1
        await self.client.update(DAEMONSETS, {**ds, "status": status}, subresource="status")
        raise errors.conflict("daemonsets", meta["name"], "apps",
                              "found a hash collision for the template; retrying")

    async def _cleanup_history(self, ds: Obj, current: Obj,
                               by_node: dict[str, list[Obj]]) -> None:
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else limit
        live = {(p["metadata"].get("labels") or {}).get(du.REVISION_HASH)
                for pods in by_node.values() for p in pods}
        old = [r for r in self._owned_revisions(ds)
               if r["metadata"]["uid"] != current["metadata"]["uid"]
               and (r["metadata"].get("labels") or {}).get(du.REVISION_HASH) not in live]
        old.sort(key=lambda r: r.get("revision", 0))
        for r in old[:max(0, len(old) - limit)]:
            try:
                await self.client.delete(REVISIONS, r["metadata"]["namespace"],
                                         r["metadata"]["name"])
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise

    async def _update_status(self, ds: Obj, nodes: dict[str, Obj],
                             by_node: dict[str, list[Obj]], hash_: str) -> None:
        spec = ds.get("spec") or {}
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        min_ready = spec.get("minReadySeconds") or 0
        now = self.clock.now()
        desired = current = ready = available = updated = misscheduled = 0
        tols = du.daemon_tolerations(pod_spec)
        for name, node in nodes.items():
            run, _ = du.should_run(node, pod_spec, tols)
            pods = du.oldest_first(by_node.get(name, []))
            if not run:
                misscheduled += 1 if pods else 0
                continue
            desired += 1
            if not pods:
                continue
            current += 1
            pod = pods[0]
            if du.is_ready(pod):
                ready += 1
                if du.available_in(pod, min_ready, now) == 0:
                    available += 1
            if any((p["metadata"].get("labels") or {}).get(du.REVISION_HASH) == hash_
                   for p in pods):
                updated += 1
        status = json_copy(ds.get("status") or {})
        status.update(desiredNumberScheduled=desired, currentNumberScheduled=current,
                      numberMisscheduled=misscheduled, numberReady=ready,
                      numberAvailable=available, updatedNumberScheduled=updated,
                      observedGeneration=ds["metadata"].get("generation", 1))
        if desired - available > 0:
            status["numberUnavailable"] = desired - available
        else:
            status.pop("numberUnavailable", None)
        if not available:
            status.pop("numberAvailable")
        if not updated:
            status.pop("updatedNumberScheduled")
        if status != (ds.get("status") or {}):
            await self.client.update(DAEMONSETS, {**ds, "status": status},
                                     subresource="status")


def _dedupe(pods: list[Obj], hash_: str, surging: bool, spec: Obj,
            now: float) -> tuple[list[Obj], list[Obj]]:
    """The pods to keep on one node and the extra ones to delete: the oldest only, or while
    surging the oldest updated and the oldest old pod (the old one goes once the updated one
    is available)."""
    ordered = du.oldest_first(pods)
    if len(ordered) <= 1:
        return ordered, []
    if not surging:
        return ordered[:1], ordered[1:]
    new = [p for p in ordered if (p["metadata"].get("labels") or {}).get(du.REVISION_HASH)
           == hash_]
    old = [p for p in ordered if p not in new]
    keep = new[:1] + old[:1]
    extra = new[1:] + old[1:]
    if new and old and du.available_in(new[0], spec.get("minReadySeconds") or 0, now) == 0:
        keep, extra = new[:1], extra + old[:1]
    return keep, extra
