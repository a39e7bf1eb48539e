"""The namespace controller: empties a terminating namespace, then lets it go.

Deleting a namespace only marks it Terminating (its ``kubernetes`` finalizer
keeps it). This controller deletes everything in it, kind by kind, and once
nothing is left removes the finalizer through the ``finalize`` subresource,
which deletes the namespace, as Kubernetes' namespace controller does.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from kubeling.api import errors, kinds
from kubeling.client.inprocess import InProcessClient

log = logging.getLogger("kubeling.controllers.namespace")

FINALIZER = "kubernetes"
Obj = dict[str, Any]


class NamespaceController:
    def __init__(self, client: InProcessClient, *, interval: float = 1.0) -> None:
        self.client = client
        self.interval = interval
        self.ns_kind = client.kind("", "namespaces")

    async def run(self) -> None:
        log.info("namespace controller started")
        while True:
            try:
                for ns in (await self.client.list(self.ns_kind)).items:
                    if ns["metadata"].get("deletionTimestamp"):
                        await self.sync(ns)
            except errors.StatusError as exc:
                log.warning("namespace sync failed: %s", exc.message)
            await asyncio.sleep(self.interval)

    async def sync(self, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        remaining = 0
        for kind in kinds.KINDS:
            if not kind.namespaced or "delete" not in kind.verbs or kind.storage_of:
                continue
            for obj in (await self.client.list(kind, name)).items:
                remaining += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(kind, name, obj["metadata"]["name"])
                except errors.StatusError as exc:
                    if exc.code != 404:
                        raise
        if remaining:
            log.debug("namespace %s: %d objects still being deleted", name, remaining)
            return
        fresh = copy.deepcopy(await self.client.get(self.ns_kind, None, name))
        fins = [f for f in (fresh.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
        fresh.setdefault("spec", {})["finalizers"] = fins
        if not fins:
            fresh["spec"].pop("finalizers")
        await self.client.update(self.ns_kind, fresh, subresource="finalize")
        log.info("namespace %s is empty; finalized", name)
