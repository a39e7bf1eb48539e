"""The garbage collector: owners and dependents, as ownerReferences say.

Three jobs, level-triggered from a scan of every object:

- an object all of whose owners are gone is deleted (background cascading);
- an owner being deleted with the ``orphan`` finalizer has its dependents'
  references to it removed, then loses the finalizer;
- an owner being deleted with ``foregroundDeletion`` has its dependents
  deleted (foreground too), and loses the finalizer when none is left.

Kubernetes keeps a graph updated from informers; here the watch cache keeps
the set of objects that have owners or wait on dependents, and a periodic
pass over that set alone gives the same result.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import defaultdict
from typing import Any

from kubeling.api import errors
from kubeling.api.kinds import Kind
from kubeling.client.inprocess import InProcessClient

log = logging.getLogger("kubeling.controllers.gc")

Obj = dict[str, Any]
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


class GarbageCollector:
    def __init__(self, client: InProcessClient, *, interval: float = 1.0) -> None:
        self.client = client
        self.interval = interval

    async def run(self) -> None:
        log.info("garbage collector started")
        while True:
            try:
                await self.sweep()
            except errors.StatusError as exc:
                log.warning("garbage collection pass failed: %s", exc.message)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> None:
        objects = self.client.gc_candidates()
        dependents: dict[str, list[tuple[Kind, Obj]]] = defaultdict(list)
        for kind, obj in objects:
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents[ref.get("uid", "")].append((kind, obj))
        for kind, obj in objects:
            meta = obj["metadata"]
            fins = meta.get("finalizers") or []
            if meta.get("deletionTimestamp") and ORPHAN in fins:
                await self._orphan(kind, obj, dependents.get(meta["uid"], []))
            elif meta.get("deletionTimestamp") and FOREGROUND in fins:
                await self._foreground(kind, obj, dependents.get(meta["uid"], []))
        # Owners just released or deleted above are seen by a fresh read.
        await self.client.sync()
        for kind, obj in self.client.gc_candidates():
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and not meta.get("deletionTimestamp") and \
                    all(self.client.owner(r, meta.get("namespace")) is None for r in refs):
                await self._delete(kind, obj, "Background", "its owners are gone")

    async def _delete(self, kind: Kind, obj: Obj, policy: str, why: str) -> None:
        meta = obj["metadata"]
        try:
            await self.client.delete(kind, meta.get("namespace"), meta["name"],
                                     options={"propagationPolicy": policy,
                                      "preconditions": {"uid": meta["uid"],
                                                        "resourceVersion":
                                                            meta["resourceVersion"]}})
            log.info("deleted %s %s: %s", kind.resource, _ref(obj), why)
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                raise

    async def _orphan(self, kind: Kind, owner: Obj, deps: list[tuple[Kind, Obj]]) -> None:
        uid = owner["metadata"]["uid"]
        released = True
        for dkind, dep in deps:
            fresh = copy.deepcopy(dep)
            refs = [r for r in fresh["metadata"].get("ownerReferences") or []
                    if r.get("uid") != uid]
            fresh["metadata"]["ownerReferences"] = refs
            if not refs:
                fresh["metadata"].pop("ownerReferences")
            released = await self._update(dkind, fresh) and released
        if not released:
            return  # a dependent changed meanwhile: the next pass tries again
        await self._drop_finalizer(kind, owner, ORPHAN)
        log.info("orphaned %d dependents of %s %s", len(deps), kind.resource, _ref(owner))

    async def _foreground(self, kind: Kind, owner: Obj, deps: list[tuple[Kind, Obj]]) -> None:
        live = [(k, d) for k, d in deps if not d["metadata"].get("deletionTimestamp")]
        for dkind, dep in live:
            await self._delete(dkind, dep, "Foreground",
                               f"its owner {_ref(owner)} is being deleted in the foreground")
        if not deps:
            await self._drop_finalizer(kind, owner, FOREGROUND)
            log.info("foreground deletion of %s %s done", kind.resource, _ref(owner))

    async def _drop_finalizer(self, kind: Kind, obj: Obj, finalizer: str) -> None:
        fresh = copy.deepcopy(obj)
        fresh["metadata"]["finalizers"] = [f for f in fresh["metadata"].get("finalizers") or []
                                           if f != finalizer]
        await self._update(kind, fresh)

    async def _update(self, kind: Kind, obj: Obj) -> bool:
        try:
            await self.client.update(kind, obj)
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                raise
            return exc.code == 404
        return True


def _ref(obj: Obj) -> str:
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])
