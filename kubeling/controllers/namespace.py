"""The namespace controller: empties a terminating namespace, then lets it go.

Deleting a namespace only marks it Terminating (its ``kubernetes`` finalizer
keeps it). Driven by the namespaces informer, this controller deletes
everything in such a namespace, kind by kind, and once nothing is left
removes the finalizer through the ``finalize`` subresource, which deletes the
namespace, as Kubernetes' namespace controller does. While content remains
(pods terminating, objects held by finalizers) the namespace is looked at
again after a growing delay, and its status conditions say what is left
(``NamespaceContentRemaining``, ``NamespaceFinalizersRemaining``,
``NamespaceDeletionContentFailure``).
"""

from __future__ import annotations

import logging
from collections import Counter

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.utils.clock import rfc3339

log = logging.getLogger("kubeling.controllers.namespace")

FINALIZER = "kubernetes"
FIRST_RECHECK = 0.05
MAX_RECHECK = 5.0

# (type, reason and message when nothing is wrong)
CONDITIONS = (
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered",
     "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions",
     "All legacy kube types successfully parsed"),
    ("NamespaceDeletionContentFailure", "ContentDeleted",
     "All content successfully deleted, may be waiting on finalization"),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentRemoved", "All content successfully removed"),
)


def namespaced_kinds() -> list[Kind]:
    return [k for k in kinds.KINDS if k.namespaced and "delete" in k.verbs and not k.storage_of]


class NamespaceController(Controller):
    name = "namespace"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.ns_kind = kinds.by_resource("", "namespaces")
        assert self.ns_kind is not None
        self.namespaces = ctx.informers.informer(self.ns_kind)
        self.namespaces.add_handlers(add=self._changed, update=lambda _, new: self._changed(new))
        self._rechecks: dict[str, int] = {}

    def _changed(self, ns: Obj) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.enqueue(ns)

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get(None, key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            self._rechecks.pop(key, None)
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or ()):
            return
        remaining, finalizers, failures = await self._delete_content(key)
        await self._set_conditions(ns, remaining, finalizers, failures)
        if remaining or failures:
            n = self._rechecks.get(key, 0)
            self._rechecks[key] = n + 1
            delay = min(FIRST_RECHECK * 2 ** n, MAX_RECHECK)
            log.debug("namespace %s: %d objects remain; looking again in %.2fs", key,
                      sum(remaining.values()), delay)
            self.queue.add_after(key, delay)
            return
        self._rechecks.pop(key, None)
        await self._finalize(key)

    async def _delete_content(self, namespace: str,
                              ) -> tuple[Counter[str], Counter[str], list[str]]:
        remaining: Counter[str] = Counter()
        finalizers: Counter[str] = Counter()
        failures: list[str] = []
        for kind in namespaced_kinds():
            try:
                items = (await self.client.list(kind, namespace)).items
            except errors.StatusError as exc:
                failures.append(f"{kind.qualified_resource}: {exc.message}")
                continue
            for obj in items:
                meta = obj["metadata"]
                remaining[f"{kind.resource}.{kind.group}"] += 1
                for f in meta.get("finalizers") or ():
                    finalizers[f] += 1
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(kind, namespace, meta["name"], options={
                        "propagationPolicy": "Background",
                        "preconditions": {"uid": meta.get("uid")}})
                except errors.StatusError as exc:
                    if exc.code not in (404, 409):
                        failures.append(f"{kind.qualified_resource} {meta['name']}: "
                                        f"{exc.message}")
        return remaining, finalizers, failures

    async def _set_conditions(self, ns: Obj, remaining: Counter[str], finalizers: Counter[str],
                              failures: list[str]) -> None:
        bad: dict[str, tuple[str, str]] = {}
        if failures:
            bad["NamespaceDeletionContentFailure"] = (
                "ContentDeletionFailed",
                f"Failed to delete all resource types, {len(failures)} remaining: "
                + ", ".join(sorted(failures)))
        if remaining:
            parts = sorted(f"{r} has {n} resource instances" for r, n in remaining.items())
            bad["NamespaceContentRemaining"] = (
                "SomeResourcesRemain", "Some resources are remaining: " + ", ".join(parts))
        if finalizers:
            parts = sorted(f"{f} in {n} resource instances" for f, n in finalizers.items())
            bad["NamespaceFinalizersRemaining"] = (
                "SomeFinalizerRemain", "Some finalizers are remaining: " + ", ".join(parts))
        now = rfc3339(self.clock.now())
        fresh = json_copy(ns)
        status = fresh.setdefault("status", {})
        conds: list[Obj] = status.setdefault("conditions", [])
        changed = False
        for type_, ok_reason, ok_message in CONDITIONS:
            state, (reason, message) = ("True", bad[type_]) if type_ in bad else \
                ("False", (ok_reason, ok_message))
            cur = next((c for c in conds if c.get("type") == type_), None)
            if cur is None:
                conds.append({"type": type_, "status": state, "lastTransitionTime": now,
                              "reason": reason, "message": message})
                changed = True
            elif (cur.get("status"), cur.get("reason"), cur.get("message")) != \
                    (state, reason, message):
                if cur.get("status") != state:
                    cur["lastTransitionTime"] = now
                cur.update(status=state, reason=reason, message=message)
                changed = True
        if not changed:
            return
        assert self.ns_kind is not None
        try:
            await self.client.update(self.ns_kind, fresh, subresource="status")
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                raise

    async def _finalize(self, name: str) -> None:
        assert self.ns_kind is not None
        try:
            fresh = json_copy(await self.client.get(self.ns_kind, None, name))
        except errors.StatusError as exc:
            if exc.code == 404:
                return
            raise
        spec = fresh.setdefault("spec", {})
        fins = [f for f in spec.get("finalizers") or () if f != FINALIZER]
        if fins:
            spec["finalizers"] = fins
        else:
            spec.pop("finalizers", None)
        await self.client.update(self.ns_kind, fresh, subresource="finalize")
        log.info("namespace %s is empty; finalized", name)
