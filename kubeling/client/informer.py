"""Shared informers: list + watch one kind into a local, indexed, read-only cache.

Every component reads the cluster from informers and never lists from the API
per decision (client-go's SharedInformer). An informer lists the kind, then
watches from the list's resourceVersion; when the stream ends it watches again
from the last revision it saw, and when the server answers 410 Gone it lists
again and turns the difference into add/update/delete notifications, so
handlers see every change exactly as if nothing had been missed.

Handlers run synchronously in the informer's task, in event order: they should
only note what changed (put a key on a work queue), never await the API.
Cached objects are shared with the client (and, in process, with the API
server's watch cache): treat them as read-only.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

from kubeling.api import errors, kinds
from kubeling.api.kinds import Kind
from kubeling.api.selectors import LabelSelector
from kubeling.client.interface import Client, Obj
from kubeling.utils.clock import REAL, Clock
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.informer")

AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
IndexFunc = Callable[[Obj], Iterable[str]]

PAGE = 500
MIN_WATCH_TIMEOUT = 300


def key_of(obj: Obj) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects (client-go's MetaNamespaceKey)."""
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


def split_key(key: str) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


def _by_namespace(obj: Obj) -> Iterable[str]:
    ns = obj["metadata"].get("namespace")
    return (ns,) if ns else ()


def _by_owner(obj: Obj) -> Iterable[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or () if r.get("uid")]


def _by_node(obj: Obj) -> Iterable[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return (node,) if node else ()


def _by_label(obj: Obj) -> Iterable[str]:
    return [f"{k}={v}" for k, v in (obj["metadata"].get("labels") or {}).items()]


NAMESPACE_INDEX = "namespace"
OWNER_INDEX = "owner"  # every ownerReference's uid
NODE_INDEX = "node"  # spec.nodeName (pods)
LABEL_INDEX = "label"  # "key=value" per label


class Informer:
    """One kind (optionally filtered by namespace and selectors), listed and watched."""

    def __init__(self, client: Client, kind: Kind, *, namespace: str | None = None,
                 label_selector: str = "", field_selector: str = "", resync: float = 0.0,
                 clock: Clock = REAL) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync = resync
        self.clock = clock
        self._items: dict[str, Obj] = {}
        self._index_fns: dict[str, IndexFunc] = {
            NAMESPACE_INDEX: _by_namespace, OWNER_INDEX: _by_owner, LABEL_INDEX: _by_label}
        if kind.kind == "Pod":
            self._index_fns[NODE_INDEX] = _by_node
        self._indexes: dict[str, dict[str, set[str]]] = {n: {} for n in self._index_fns}
        self._adds: list[AddHandler] = []
        self._updates: list[UpdateHandler] = []
        self._deletes: list[DeleteHandler] = []
        self._synced = asyncio.Event()
        self.resource_version = ""
        self.relists = 0
        self._tasks: list[asyncio.Task[Any]] = []

    # ----- reading -----------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> Obj | None:
        return self._items.get(key)

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def list(self, namespace: str | None = None,
             selector: LabelSelector | None = None) -> list[Obj]:
        """Objects in ``namespace`` (all when None) whose labels match ``selector``."""
        if selector is not None and selector.nothing:
            return []
        keys: Iterable[str]
        if namespace is not None and self.kind.namespaced:
            keys = self._indexes[NAMESPACE_INDEX].get(namespace, ())
        else:
            keys = self._items.keys()
        if selector is not None and not selector.empty:
            for req in selector.requirements:
                value = selector.requires_exact_match(req.key)
                if value is not None:
                    narrowed = self._indexes[LABEL_INDEX].get(f"{req.key}={value}", set())
                    keys = narrowed if namespace is None else narrowed & set(keys)
                    break
        items = self._items
        out = [items[k] for k in keys if k in items]
        if selector is not None and not selector.empty:
            out = [o for o in out if selector.matches(o["metadata"].get("labels"))]
        return out

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        items = self._items
        return [items[k] for k in self._indexes[index].get(value, ()) if k in items]

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Add a custom index (before start, or it is built from the current items)."""
        self._index_fns[name] = fn
        idx: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for v in fn(obj):
                idx.setdefault(v, set()).add(key)
        self._indexes[name] = idx

    # ----- notifications -------------------------------------------------------------

    def add_handlers(self, *, add: AddHandler | None = None, update: UpdateHandler | None = None,
                     delete: DeleteHandler | None = None) -> None:
        """Register callbacks; a handler added after the first list sees the current items
        as adds, as client-go's AddEventHandler does."""
        if add is not None:
            self._adds.append(add)
            if self.has_synced:
                for obj in list(self._items.values()):
                    self._call(add, obj)
        if update is not None:
            self._updates.append(update)
        if delete is not None:
            self._deletes.append(delete)

    def _call(self, fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:  # a broken handler must not stop the informer
            log.exception("%s informer: a handler failed", self.kind.resource)

    def _store(self, key: str, obj: Obj) -> Obj | None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._index_fns.items():
            idx = self._indexes[name]
            for v in fn(obj):
                s = idx.get(v)
                if s is None:
                    idx[v] = {key}
                else:
                    s.add(key)
        return old

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._index_fns.items():
            idx = self._indexes[name]
            for v in fn(obj):
                s = idx.get(v)
                if s is not None:
                    s.discard(key)
                    if not s:
                        del idx[v]

    def _upsert(self, obj: Obj) -> None:
        old = self._store(key_of(obj), obj)
        if old is None:
            for add in self._adds:
                self._call(add, obj)
        else:
            for upd in self._updates:
                self._call(upd, old, obj)

    def _remove(self, obj: Obj) -> None:
        key = key_of(obj)
        old = self._items.pop(key, None)
        if old is None:
            return
        self._unindex(key, old)
        for dele in self._deletes:
            self._call(dele, obj)

    # ----- list and watch -------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        name = f"informer-{self.kind.qualified_resource}"
        self._tasks.append(spawn(self.run(), name=name))
        if self.resync > 0:
            self._tasks.append(spawn(self._resync_loop(), name=name + "-resync"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks.clear()

    async def _relist(self) -> str:
        fresh: dict[str, Obj] = {}
        cont = ""
        rv = ""
        while True:
            page = await self.client.list(self.kind, self.namespace,
                                          label_selector=self.label_selector,
                                          field_selector=self.field_selector,
                                          limit=PAGE, continue_=cont)
            rv = rv or page.resource_version
            for obj in page.items:
                fresh[key_of(obj)] = obj
            cont = page.continue_
            if not cont:
                break
        for key, gone in list(self._items.items()):
            if key not in fresh:
                self._remove(gone)
        for key, obj in fresh.items():
            old = self._items.get(key)
            if old is None or old["metadata"].get("resourceVersion") != \
                    obj["metadata"].get("resourceVersion"):
                self._upsert(obj)
        self.relists += 1
        self.resource_version = rv
        if not self._synced.is_set():
            log.debug("%s informer synced with %d objects", self.kind.resource, len(fresh))
        self._synced.set()
        return rv

    async def run(self) -> None:
        rv = ""
        delay = 0.5
        while True:
            try:
                if not rv:
                    rv = await self._relist()
                timeout = int(MIN_WATCH_TIMEOUT * (1 + random.random()))
                async for ev in self.client.watch(
                        self.kind, self.namespace, resource_version=rv,
                        label_selector=self.label_selector, field_selector=self.field_selector,
                        allow_bookmarks=True, timeout_seconds=timeout):
                    obj = ev.object
                    new_rv = obj["metadata"].get("resourceVersion") or rv
                    if ev.type == "DELETED":
                        self._remove(obj)
                    elif ev.type in ("ADDED", "MODIFIED"):
                        self._upsert(obj)
                    rv = new_rv
                    self.resource_version = rv
                delay = 0.5
            except errors.StatusError as exc:
                if exc.code == 410:
                    log.info("%s informer: %s; listing again", self.kind.resource, exc.message)
                    rv = ""
                    continue
                log.warning("%s informer: %s (%d); retrying in %.1fs", self.kind.resource,
                            exc.message, exc.code, delay)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 30.0)
            except (ConnectionError, OSError, TimeoutError) as exc:
                log.warning("%s informer: %r; retrying in %.1fs", self.kind.resource, exc, delay)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _resync_loop(self) -> None:
        await self.wait_synced()
        while True:
            await self.clock.sleep(self.resync)
            for obj in list(self._items.values()):
                for upd in self._updates:
                    self._call(upd, obj, obj)


class Informers:
    """One informer per (kind, namespace, selectors), shared by every component of a process."""

    def __init__(self, client: Client, *, clock: Clock = REAL, resync: float = 0.0) -> None:
        self.client = client
        self.clock = clock
        self.resync = resync
        self._informers: dict[tuple[str, str, str, str], Informer] = {}
        self._started = False

    def informer(self, kind: Kind | tuple[str, str], *, namespace: str | None = None,
                 label_selector: str = "", field_selector: str = "") -> Informer:
        if isinstance(kind, tuple):
            found = kinds.by_resource(*kind)
            if found is None:
                raise LookupError(f"no resource {kind[1]!r} in group {kind[0]!r}")
            kind = found
        key = (kind.qualified_resource, namespace or "", label_selector, field_selector)
        inf: Informer | None = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, kind, namespace=namespace, label_selector=label_selector,
                           field_selector=field_selector, resync=self.resync, clock=self.clock)
            self._informers[key] = inf
            if self._started:
                inf.start()
        return inf

    def start(self) -> None:
        """Start every informer asked for so far; later ones start when asked for."""
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in self._informers.values()))

    async def stop(self) -> None:
        for inf in self._informers.values():
            await inf.stop()
