"""The in-process client: the API's verbs as calls into the registry, no HTTP.

The all-in-one server's components use it, so they go through the same
admission, defaulting, validation and concurrency checks as kubectl does,
only without the encoding and the network. It keeps the contract of
:class:`kubeling.client.interface.Client`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from kubeling.api import errors, kinds
from kubeling.api.kinds import Kind
from kubeling.client.interface import ListResult, Obj, PatchType, WatchEvent
from kubeling.registry import verbs
from kubeling.registry.cache import resource_prefix
from kubeling.registry.listing import ListOptions
from kubeling.registry.registry import Registry, WriteOptions


class InProcessClient:
    def __init__(self, registry: Registry, *, manager: str) -> None:
        self.registry = registry
        self.manager = manager

    def _opts(self, manager: str = "") -> WriteOptions:
        return WriteOptions(field_manager=manager or self.manager, field_validation="Ignore",
                            user_agent=self.manager)

    @staticmethod
    def kind(group: str, resource: str) -> Kind:
        k = kinds.by_resource(group, resource)
        if k is None:
            raise LookupError(f"no resource {resource!r} in group {group!r}")
        return k

    async def sync(self) -> None:
        """Wait until reads see every write acknowledged so far."""
        await self.registry.cache.sync()

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        return (await self.registry.get(kind, namespace, name)).obj

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "",
                   limit: int = 0, continue_: str = "",
                   resource_version: str = "") -> ListResult:
        page = await self.registry.list(kind, namespace, ListOptions(
            label_selector=label_selector, field_selector=field_selector, limit=limit,
            continue_=continue_, resource_version=resource_version))
        return ListResult([c.obj for c in page.items], str(page.revision), page.continue_)

    async def watch(self, kind: Kind, namespace: str | None = None, *,
                    resource_version: str = "", label_selector: str = "",
                    field_selector: str = "", allow_bookmarks: bool = True,
                    timeout_seconds: int = 0) -> AsyncIterator[WatchEvent]:
        cache = self.registry.cache
        opts = ListOptions(label_selector=label_selector, field_selector=field_selector)
        predicate = self.registry.predicate(kind, opts)
        if resource_version in ("", "0"):
            start = cache.revision
        else:
            try:
                start = int(resource_version)
            except ValueError:
                raise errors.bad_request(
                    f"invalid resource version {resource_version!r}") from None
        prefix = kind.key_prefix(namespace)
        rp = resource_prefix(prefix + "x")
        watcher = cache.watch_from_cache(rp, prefix, start, predicate)
        if watcher is None:
            raise errors.gone(f"too old resource version: {start} ({cache.oldest_history()})")
        try:
            while True:
                ev = await watcher.queue.get()
                if ev is None:
                    return
                yield WatchEvent(ev.type, ev.obj.obj)
        finally:
            cache.unwatch(rp, watcher)

    async def create(self, kind: Kind, namespace: str | None, obj: Obj) -> Obj:
        return (await self.registry.create(kind, namespace, obj, self._opts(),
                                           version=kind.stored_version)).obj

    async def update(self, kind: Kind, obj: Obj, *, subresource: str = "") -> Obj:
        meta = obj["metadata"]
        c, _ = await self.registry.update(kind, meta.get("namespace"), meta["name"], obj,
                                          self._opts(), version=kind.stored_version,
                                          subresource=subresource)
        return c.obj

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, *,
                    patch_type: PatchType = "merge", subresource: str = "",
                    field_manager: str = "", force: bool = False) -> Obj:
        if patch_type == "apply":
            raise errors.bad_request("the in-process client does not apply configurations")
        c = await verbs.patch(self.registry, kind, namespace, name, patch_type, patch,
                              self._opts(field_manager), subresource=subresource,
                              version=kind.stored_version)
        return c.obj

    async def delete(self, kind: Kind, namespace: str | None, name: str, *,
                     options: Obj | None = None) -> Obj:
        c, _ = await self.registry.delete(kind, namespace, name, options, self._opts())
        return c.obj

    async def bind(self, namespace: str, name: str, node: str, *, uid: str = "") -> None:
        await verbs.bind(self.registry, namespace, name, node, self._opts(), uid=uid)

    async def close(self) -> None:
        return None
