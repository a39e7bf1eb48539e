"""The service account controller: a ``default`` ServiceAccount in every active namespace.

Pods that name no service account run as ``default``; this controller makes
sure it exists in each namespace that is not terminating, and creates it again
if someone deletes it, as Kubernetes' ServiceAccountsController does.
"""

from __future__ import annotations

import logging

from kubeling.api import errors, kinds
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext

log = logging.getLogger("kubeling.controllers.serviceaccount")

ACCOUNTS = ("default",)


def _active(ns: Obj) -> bool:
    return not ns["metadata"].get("deletionTimestamp") and \
        (ns.get("status") or {}).get("phase") != "Terminating"


class ServiceAccountController(Controller):
    name = "serviceaccount"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        ns_kind = kinds.by_resource("", "namespaces")
        sa_kind = kinds.by_resource("", "serviceaccounts")
        assert ns_kind is not None and sa_kind is not None
        self.sa_kind = sa_kind
        self.namespaces = ctx.informers.informer(ns_kind)
        self.accounts = ctx.informers.informer(sa_kind)
        self.namespaces.add_handlers(add=self.enqueue, update=lambda _, new: self.enqueue(new))
        self.accounts.add_handlers(delete=self._account_deleted)

    def _account_deleted(self, sa: Obj) -> None:
        meta = sa["metadata"]
        if meta["name"] in ACCOUNTS and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get(None, key)
        if ns is None or not _active(ns):
            return
        for name in ACCOUNTS:
            if self.accounts.get(key, name) is not None:
                continue
            sa = {"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": name, "namespace": key}}
            try:
                await self.client.create(self.sa_kind, key, sa)
            except errors.StatusError as exc:
                # Already there (our cache lags), or the namespace started terminating.
                if exc.code in (403, 404, 409):
                    continue
                raise
            log.info("created service account %s/%s", key, name)
