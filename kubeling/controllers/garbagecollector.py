"""The garbage collector: owners and dependents, as ownerReferences say.

It watches every deletable kind through the shared informers and keeps a graph
of owner uid -> dependent uids, as Kubernetes' GraphBuilder does, so each
decision is a lookup rather than a scan. Keys on its work queue are object
uids. A sync does one of three things:

- *background*: an object none of whose owners exists any more (absent from
  the informers *and* confirmed by a GET that 404s or shows another uid) is
  deleted, with its uid and resourceVersion as preconditions; references to
  missing owners are dropped from an object that still has a live owner;
- *foreground*: an owner being deleted with the ``foregroundDeletion``
  finalizer has its dependents deleted (an object that has dependents itself
  is deleted in the foreground too) and loses the finalizer once no dependent
  with ``blockOwnerDeletion: true`` is left;
- *orphan*: an owner being deleted with the ``orphan`` finalizer has its
  reference removed from every dependent, then loses the finalizer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.client.informer import Informer
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext

log = logging.getLogger("kubeling.controllers.gc")

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
ABSENT_REMEMBERED = 16_384


def deletable_kinds() -> list[Kind]:
    """Every kind the collector watches: list, watch and delete, stored on its own, not events."""
    return [k for k in kinds.KINDS
            if not k.storage_of and (k.group, k.resource) != ("", "events")
            and all(v in k.verbs for v in ("list", "watch", "delete"))]


def kind_of_ref(ref: Obj) -> Kind | None:
    api_version = ref.get("apiVersion", "")
    found = kinds.by_api_version(api_version, ref.get("kind", ""))
    if found is None:
        found = kinds.by_kind(api_version.rpartition("/")[0], ref.get("kind", ""))
    return found


@dataclass(eq=False)
class GraphNode:
    """One object in the graph; *virtual* until an informer has shown it (only named by a
    dependent's ownerReference so far)."""

    uid: str
    kind: Kind | None
    namespace: str | None
    name: str
    observed: bool = False
    owners: list[Obj] = field(default_factory=list)
    dependents: set[str] = field(default_factory=set)
    being_deleted: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def deleting_dependents(self) -> bool:
        return self.being_deleted and FOREGROUND in self.finalizers

    def ref_to(self, owner_uid: str) -> Obj | None:
        for ref in self.owners:
            if ref.get("uid") == owner_uid:
                return ref
        return None


def _describe(kind: Kind | None, namespace: str | None, name: str) -> str:
    what = kind.resource if kind else "object"
    return f"{what} {namespace}/{name}" if namespace else f"{what} {name}"


class GarbageCollector(Controller):
    name = "garbagecollector"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.graph: dict[str, GraphNode] = {}
        self._absent: OrderedDict[str, None] = OrderedDict()
        self._informers: dict[str, Informer] = {}
        for kind in deletable_kinds():
            inf = ctx.informers.informer(kind)
            self._informers[kind.qualified_resource] = inf
            inf.add_handlers(add=partial(self._observe, kind),
                             update=partial(self._changed, kind), delete=self._forget)
        self.deletions = 0

    # ----- the graph, kept by informer handlers ------------------------------------------

    def _changed(self, kind: Kind, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._forget(old)
        self._observe(kind, new)

    def _observe(self, kind: Kind, obj: Obj) -> None:
        meta = obj["metadata"]
        uid = meta.get("uid")
        if not uid:
            return
        node = self.graph.get(uid)
        if node is None:
            node = self.graph[uid] = GraphNode(uid, kind, meta.get("namespace"), meta["name"])
        was_deleting_dependents = node.observed and node.deleting_dependents
        old_refs = {r.get("uid"): r for r in node.owners}
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid")]
        new_refs = {r["uid"]: r for r in refs}
        node.kind, node.namespace, node.name = kind, meta.get("namespace"), meta["name"]
        node.observed = True
        node.owners = refs
        node.being_deleted = bool(meta.get("deletionTimestamp"))
        node.finalizers = tuple(meta.get("finalizers") or ())
        for ouid, ref in new_refs.items():
            if ouid not in old_refs:
                owner = self._owner_node(ouid, ref, node.namespace)
                owner.dependents.add(uid)
                if owner.deleting_dependents or ouid in self._absent:
                    self.queue.add(uid)
            elif old_refs[ouid].get("blockOwnerDeletion") and not ref.get("blockOwnerDeletion"):
                self._owner_changed(ouid)
        for ouid in old_refs:
            if ouid not in new_refs:
                self._unlink(ouid, uid)
        if node.being_deleted and (FOREGROUND in node.finalizers or ORPHAN in node.finalizers):
            self.queue.add(uid)
        if node.deleting_dependents and not was_deleting_dependents:
            for dep in node.dependents:
                self.queue.add(dep)

    def _owner_node(self, uid: str, ref: Obj, namespace: str | None) -> GraphNode:
        owner = self.graph.get(uid)
        if owner is None:
            kind = kind_of_ref(ref)
            ns = namespace if kind is not None and kind.namespaced else None
            owner = self.graph[uid] = GraphNode(uid, kind, ns, ref.get("name", ""))
            self.queue.add(uid)  # is it really there? the sync of a virtual node asks the API
        return owner

    def _owner_changed(self, owner_uid: str) -> None:
        owner = self.graph.get(owner_uid)
        if owner is not None and owner.deleting_dependents:
            self.queue.add(owner_uid)

    def _unlink(self, owner_uid: str, dependent_uid: str) -> None:
        owner = self.graph.get(owner_uid)
        if owner is None:
            return
        owner.dependents.discard(dependent_uid)
        if not owner.observed and not owner.dependents:
            del self.graph[owner_uid]
        elif owner.deleting_dependents:
            self.queue.add(owner_uid)

    def _forget(self, obj: Obj) -> None:
        uid = obj["metadata"].get("uid")
        node = self.graph.get(uid or "")
        if node is None or not node.observed:
            return
        for ref in node.owners:
            self._unlink(ref["uid"], node.uid)
        if node.dependents:
            self._remember_absent(node.uid)
            node.observed = False
            node.owners = []
            node.being_deleted = False
            node.finalizers = ()
            for dep in node.dependents:
                self.queue.add(dep)
        else:
            del self.graph[node.uid]

    def _remember_absent(self, uid: str) -> None:
        self._absent[uid] = None
        if len(self._absent) > ABSENT_REMEMBERED:
            self._absent.popitem(last=False)

    def _cached(self, node: GraphNode) -> Obj | None:
        if node.kind is None:
            return None
        inf = self._informers.get(node.kind.qualified_resource)
        obj = inf.get(node.namespace, node.name) if inf is not None else None
        if obj is None or obj["metadata"].get("uid") != node.uid:
            return None
        return obj

    # ----- reconciling one uid --------------------------------------------------------------

    async def sync(self, key: str) -> None:
        node = self.graph.get(key)
        if node is None:
            return
        if not node.observed:
            await self._check_virtual(node)
            return
        obj = self._cached(node)
        if obj is None:
            return
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            fins = meta.get("finalizers") or ()
            if ORPHAN in fins:
                await self._orphan_dependents(node, obj)
            elif FOREGROUND in fins:
                await self._wait_for_dependents(node, obj)
            return
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid")]
        if refs:
            await self._collect(node, obj, refs)

    async def _check_virtual(self, node: GraphNode) -> None:
        """An owner no informer has shown: if the API does not have it either, it is gone
        and its dependents are looked at again."""
        if node.kind is None or (node.kind.namespaced and not node.namespace):
            gone = node.kind is not None
        else:
            gone = not await self._exists(node.kind, node.namespace, node.name, node.uid)
        if not gone or self.graph.get(node.uid) is not node or node.observed:
            return
        self._remember_absent(node.uid)
        for dep in node.dependents:
            self.queue.add(dep)

    async def _exists(self, kind: Kind, namespace: str | None, name: str, uid: str) -> Obj | None:
        try:
            live = await self.client.get(kind, namespace if kind.namespaced else None, name)
        except errors.StatusError as exc:
            if exc.code == 404:
                return None
            raise
        return live if live["metadata"].get("uid") == uid else None

    async def _classify(self, node: GraphNode, refs: list[Obj],
                        ) -> tuple[list[Obj], list[Obj], list[Obj]]:
        """Split ownerReferences into (solid, dangling, waiting for dependents' deletion)."""
        solid: list[Obj] = []
        dangling: list[Obj] = []
        waiting: list[Obj] = []
        for ref in refs:
            uid = ref["uid"]
            owner = self.graph.get(uid)
            if owner is not None and owner.observed:
                (waiting if owner.deleting_dependents else solid).append(ref)
                continue
            if uid in self._absent:
                dangling.append(ref)
                continue
            kind = kind_of_ref(ref)
            if kind is None:
                log.debug("%s: owner kind %s/%s is unknown; keeping it",
                          _describe(node.kind, node.namespace, node.name),
                          ref.get("apiVersion"), ref.get("kind"))
                solid.append(ref)
                continue
            if kind.namespaced and not node.namespace:
                dangling.append(ref)
                continue
            live = await self._exists(kind, node.namespace, ref.get("name", ""), uid)
            if live is None:
                self._remember_absent(uid)
                dangling.append(ref)
            elif live["metadata"].get("deletionTimestamp") and \
                    FOREGROUND in (live["metadata"].get("finalizers") or ()):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _collect(self, node: GraphNode, obj: Obj, refs: list[Obj]) -> None:
        assert node.kind is not None
        solid, dangling, waiting = await self._classify(node, refs)
        what = _describe(node.kind, node.namespace, node.name)
        if solid:
            drop = {r["uid"] for r in dangling + waiting}
            if drop:
                await self._update_refs(node.kind, obj, drop)
                log.info("%s: removed references to owners %s", what, ", ".join(sorted(drop)))
            return
        fins = obj["metadata"].get("finalizers") or ()
        if waiting and node.dependents:
            policy = "Foreground"
        elif ORPHAN in fins:
            policy = "Orphan"
        elif FOREGROUND in fins:
            policy = "Foreground"
        else:
            policy = "Background"
        meta = obj["metadata"]
        try:
            await self.client.delete(node.kind, node.namespace, node.name, options={
                "propagationPolicy": policy,
                "preconditions": {"uid": node.uid, "resourceVersion": meta["resourceVersion"]}})
        except errors.StatusError as exc:
            if exc.code == 404:
                return
            raise
        self.deletions += 1
        owners = ", ".join(f"{r.get('kind')} {r.get('name')}" for r in refs)
        log.info("deleted %s (%s): its owners are %s: %s", what, policy.lower(),
                 "being deleted" if waiting else "gone", owners)

    async def _update_refs(self, kind: Kind, obj: Obj, drop: set[str]) -> None:
        fresh = json_copy(obj)
        meta = fresh["metadata"]
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") not in drop]
        if refs:
            meta["ownerReferences"] = refs
        else:
            meta.pop("ownerReferences", None)
        try:
            await self.client.update(kind, fresh)
        except errors.StatusError as exc:
            if exc.code != 404:
                raise

    async def _wait_for_dependents(self, node: GraphNode, obj: Obj) -> None:
        blocking = []
        for dep_uid in node.dependents:
            dep = self.graph.get(dep_uid)
            if dep is None or not dep.observed:
                continue
            ref = dep.ref_to(node.uid)
            if ref is not None and ref.get("blockOwnerDeletion"):
                blocking.append(dep)
        if blocking:
            for dep in blocking:
                if not dep.deleting_dependents:
                    self.queue.add(dep.uid)
            return
        await self._remove_finalizer(node, obj, FOREGROUND)
        log.info("%s: no blocking dependents left; foreground deletion completes",
                 _describe(node.kind, node.namespace, node.name))

    async def _orphan_dependents(self, node: GraphNode, obj: Obj) -> None:
        count = 0
        for dep_uid in list(node.dependents):
            dep = self.graph.get(dep_uid)
            if dep is None or dep.kind is None:
                continue
            cached = self._cached(dep)
            if cached is None:
                continue
            if any(r.get("uid") == node.uid
                   for r in cached["metadata"].get("ownerReferences") or ()):
                await self._update_refs(dep.kind, cached, {node.uid})
                count += 1
        await self._remove_finalizer(node, obj, ORPHAN)
        log.info("%s: orphaned %d dependents", _describe(node.kind, node.namespace, node.name),
                 count)

    async def _remove_finalizer(self, node: GraphNode, obj: Obj, finalizer: str) -> None:
        assert node.kind is not None
        fresh = json_copy(obj)
        meta = fresh["metadata"]
        fins = [f for f in meta.get("finalizers") or () if f != finalizer]
        if fins:
            meta["finalizers"] = fins
        else:
            meta.pop("finalizers", None)
        try:
            await self.client.update(node.kind, fresh)
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
