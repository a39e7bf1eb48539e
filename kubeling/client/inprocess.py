"""The in-process client: the API's verbs as calls into the registry, no HTTP.

The all-in-one server's components use it, so they go through the same
admission, defaulting, validation and concurrency checks as kubectl does,
only without the encoding and the network.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import kinds
from kubeling.api.kinds import Kind
from kubeling.registry.listing import ListOptions
from kubeling.registry.registry import Registry, WriteOptions

Obj = dict[str, Any]


class InProcessClient:
    def __init__(self, registry: Registry, *, manager: str) -> None:
        self.registry = registry
        self.manager = manager

    def _opts(self) -> WriteOptions:
        return WriteOptions(field_manager=self.manager, field_validation="Ignore")

    @staticmethod
    def kind(group: str, resource: str) -> Kind:
        k = kinds.by_resource(group, resource)
        if k is None:
            raise LookupError(f"no resource {resource!r} in group {group!r}")
        return k

    async def sync(self) -> None:
        """Wait until reads see every write acknowledged so far."""
        await self.registry.cache.sync()

    def gc_candidates(self) -> list[tuple[Kind, Obj]]:
        """Objects with owners or waiting on dependents, from the watch cache."""
        cache = self.registry.cache
        out = []
        for key in list(cache.gc_keys):
            c = cache.get(key)
            kind = kinds.by_key(key)
            if c is not None and kind is not None:
                out.append((kind, c.obj))
        return out

    def owner(self, ref: Obj, namespace: str | None) -> Obj | None:
        """The live object an ownerReference names (by kind, name and uid), or None."""
        api_version = ref.get("apiVersion", "")
        kind = kinds.by_api_version(api_version, ref.get("kind", ""))
        if kind is None:
            group = api_version.rpartition("/")[0]
            kind = kinds.by_kind(group, ref.get("kind", ""))
        if kind is None:
            return None
        c = self.registry.cache.get(kind.key(namespace if kind.namespaced else None,
                                             ref.get("name", "")))
        if c is None or c.obj["metadata"].get("uid") != ref.get("uid"):
            return None
        return c.obj

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        return (await self.registry.get(kind, namespace, name)).obj

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "") -> list[Obj]:
        page = await self.registry.list(kind, namespace, ListOptions(
            label_selector=label_selector, field_selector=field_selector))
        return [c.obj for c in page.items]

    async def create(self, kind: Kind, namespace: str | None, obj: Obj) -> Obj:
        return (await self.registry.create(kind, namespace, obj, self._opts(),
                                           version=kind.stored_version)).obj

    async def update(self, kind: Kind, obj: Obj, *, subresource: str = "") -> Obj:
        meta = obj["metadata"]
        c, _ = await self.registry.update(kind, meta.get("namespace"), meta["name"], obj,
                                          self._opts(), version=kind.stored_version,
                                          subresource=subresource)
        return c.obj

    async def delete(self, kind: Kind, namespace: str | None, name: str,
                     options: Obj | None = None) -> Obj:
        c, _ = await self.registry.delete(kind, namespace, name, options, self._opts())
        return c.obj
