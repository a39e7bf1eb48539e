"""The watch cache: every object in memory, fed by one watch on the store.

Lists and watches are served from here, so the store sees one watch and the
writes, not one query per client. Each object is decoded once and encoded to
JSON at most once (the bytes are shared by every watcher and every list that
returns it). A ring of recent events lets a watch resume from a
resourceVersion without touching the store; an older one falls back to a
store watch (which answers 410 Gone once compacted).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from kubeling.storage.interface import Event, KeyValue, Store
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.cache")

ROOT = "/registry/"
Obj = dict[str, Any]


def decode(value: bytes, revision: int) -> Obj:
    obj: Obj = orjson.loads(value)
    meta = obj.setdefault("metadata", {})
    meta["resourceVersion"] = str(revision)
    return obj


class Cached:
    """An object as stored, decoded, with its JSON encoding made on first use."""

    __slots__ = ("_json", "key", "obj", "revision")

    def __init__(self, key: str, obj: Obj, revision: int) -> None:
        self.key = key
        self.obj = obj
        self.revision = revision
        self._json: bytes | None = None

    def json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.obj)
        return self._json

    @classmethod
    def from_kv(cls, kv: KeyValue) -> Cached:
        return cls(kv.key, decode(kv.value, kv.mod_revision), kv.mod_revision)


@dataclass(slots=True)
class CacheEvent:
    type: str  # ADDED | MODIFIED | DELETED
    revision: int
    obj: Cached  # the new object; for DELETED the last state at the delete revision
    prev: Cached | None


def resource_prefix(key: str) -> str:
    """``/registry/apps/deployments/ns/name`` -> ``/registry/apps/deployments/``."""
    parts = key.split("/", 4)
    return "/".join(parts[:4]) + "/"


Filter = Callable[[Obj], bool]


class Watcher:
    """One consumer of cache events under a key prefix, filtered by a predicate."""

    def __init__(self, prefix: str, predicate: Filter | None, *, max_queue: int) -> None:
        self.prefix = prefix
        self.predicate = predicate
        self.queue: asyncio.Queue[CacheEvent | None] = asyncio.Queue()
        self.max_queue = max_queue
        self.overflowed = False

    def offer(self, ev: CacheEvent) -> None:
        if self.overflowed or not ev.obj.key.startswith(self.prefix):
            return
        pred = self.predicate
        if pred is not None:
            now = ev.type != "DELETED" and pred(ev.obj.obj)
            before = ev.prev is not None and pred(ev.prev.obj)
            if ev.type == "DELETED":
                if not pred(ev.obj.obj):
                    return
            elif now and not before and ev.type == "MODIFIED":
                ev = CacheEvent("ADDED", ev.revision, ev.obj, ev.prev)
            elif before and not now:
                # Leaving a filtered watch reads as DELETED, carrying the new state.
                ev = CacheEvent("DELETED", ev.revision, ev.obj, ev.prev)
            elif not now:
                return
        if self.queue.qsize() >= self.max_queue:
            self.overflowed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(ev)


class WatchCache:
    def __init__(self, store: Store, *, history: int = 200_000, max_queue: int = 100_000) -> None:
        self.store = store
        self.revision = 0
        self._objects: dict[str, dict[str, Cached]] = {}
        self._sorted: dict[str, list[str]] = {}
        self._last_change: dict[str, int] = {}
        self._history: deque[CacheEvent] = deque(maxlen=history)
        self._watchers: dict[str, set[Watcher]] = {}
        self._max_queue = max_queue
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._started_at = 0
        self.ready = asyncio.Event()
        # Objects this process is writing, so their events need not be parsed again.
        self._expected: dict[str, tuple[bytes, Obj]] = {}

    async def start(self) -> None:
        result = await self.store.list(ROOT)
        for kv in result.kvs:
            c = Cached.from_kv(kv)
            self._objects.setdefault(resource_prefix(kv.key), {})[kv.key] = c
        self.revision = result.revision
        self._started_at = result.revision
        log.info("watch cache loaded %d objects at revision %d", len(result.kvs), self.revision)
        self._task = spawn(self._run(), name="watch-cache")
        self.ready.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for watchers in self._watchers.values():
            for w in watchers:
                w.queue.put_nowait(None)

    async def _run(self) -> None:
        watch = self.store.watch(ROOT, self.revision)
        try:
            async for ev in watch:
                self._apply(ev)
                async with self._advanced:
                    self._advanced.notify_all()
        finally:
            await watch.aclose()  # type: ignore[attr-defined]

    def _apply(self, ev: Event) -> None:
        rp = resource_prefix(ev.key)
        objs = self._objects.setdefault(rp, {})
        prev = objs.get(ev.key)
        if ev.type == "DELETED":
            if prev is None and ev.prev_value is not None:
                prev = Cached(ev.key, decode(ev.prev_value, ev.revision), ev.revision)
            objs.pop(ev.key, None)
            self._sorted.pop(rp, None)
            last = Cached(ev.key, decode(ev.prev_value or b"{}", ev.revision), ev.revision)
            cev = CacheEvent("DELETED", ev.revision, last, prev)
        else:
            assert ev.value is not None
            exp = self._expected.pop(ev.key, None)
            if exp is not None and exp[0] == ev.value:
                exp[1].setdefault("metadata", {})["resourceVersion"] = str(ev.revision)
                c = Cached(ev.key, exp[1], ev.revision)
            else:
                c = Cached(ev.key, decode(ev.value, ev.revision), ev.revision)
            if prev is None:
                self._sorted.pop(rp, None)
            objs[ev.key] = c
            cev = CacheEvent("ADDED" if prev is None else "MODIFIED", ev.revision, c, prev)
        self._last_change[rp] = ev.revision
        self.revision = ev.revision
        self._history.append(cev)
        for w in self._watchers.get(rp, ()):
            w.offer(cev)

    def expect(self, key: str, value: bytes, obj: Obj) -> None:
        """Announce a write this process is about to make: when its event comes with the
        same bytes, the cache keeps ``obj`` instead of parsing the bytes again."""
        if len(self._expected) < 10_000:
            self._expected[key] = (value, obj)

    def unexpect(self, key: str, value: bytes) -> None:
        """Withdraw an announced write that did not happen."""
        cur = self._expected.get(key)
        if cur is not None and cur[0] is value:
            del self._expected[key]

    async def wait_for(self, revision: int, timeout: float = 3.0) -> None:
        """Wait until the cache has seen ``revision`` (a consistent read's precondition)."""
        if self.revision >= revision:
            return
        async with self._advanced:
            await asyncio.wait_for(
                self._advanced.wait_for(lambda: self.revision >= revision), timeout
            )

    async def sync(self) -> None:
        await self.wait_for(await self.store.current_revision())

    def get(self, key: str) -> Cached | None:
        return self._objects.get(resource_prefix(key), {}).get(key)

    def last_change(self, rp: str) -> int:
        return self._last_change.get(rp, self._started_at)

    def list(self, rp: str, prefix: str, start_key: str = "") -> list[Cached]:
        """Objects under ``prefix`` (within resource prefix ``rp``) in key order."""
        objs = self._objects.get(rp)
        if not objs:
            return []
        keys = self._sorted.get(rp)
        if keys is None:
            keys = sorted(objs)
            self._sorted[rp] = keys
        lo = bisect.bisect_left(keys, max(prefix, start_key))
        out = []
        for i in range(lo, len(keys)):
            k = keys[i]
            if not k.startswith(prefix):
                break
            out.append(objs[k])
        return out

    def oldest_history(self) -> int:
        if self._history:
            return self._history[0].revision - 1
        return self.revision

    def watch_from_cache(self, rp: str, prefix: str, revision: int,
                         predicate: Filter | None) -> Watcher | None:
        """Register a watcher that gets every event after ``revision``; None if the cache's
        history does not reach back that far."""
        if revision < max(self.oldest_history(), self._started_at):
            return None
        w = Watcher(prefix, predicate, max_queue=self._max_queue)
        if revision < self.revision:
            for ev in self._history:
                if ev.revision > revision:
                    w.offer(ev)
        self._watchers.setdefault(rp, set()).add(w)
        return w

    def unwatch(self, rp: str, w: Watcher) -> None:
        self._watchers.get(rp, set()).discard(w)

    def watcher_count(self) -> int:
        return sum(len(v) for v in self._watchers.values())


async def store_events(store: Store, prefix: str, revision: int,
                       predicate: Filter | None) -> AsyncIterator[CacheEvent]:
    """Events straight from the store, for watches older than the cache's history."""
    w = Watcher(prefix, predicate, max_queue=1 << 30)
    async for ev in store.watch(prefix, revision):
        if ev.type == "DELETED":
            prev = Cached(ev.key, decode(ev.prev_value or b"{}", ev.revision), ev.revision)
            cev = CacheEvent("DELETED", ev.revision, prev, prev)
        else:
            assert ev.value is not None
            c = Cached(ev.key, decode(ev.value, ev.revision), ev.revision)
            prevc = (Cached(ev.key, decode(ev.prev_value, ev.revision), ev.revision)
                     if ev.prev_value is not None else None)
            cev = CacheEvent(ev.type, ev.revision, c, prevc)
        w.offer(cev)
        while not w.queue.empty():
            item = w.queue.get_nowait()
            if item is not None:
                yield item

