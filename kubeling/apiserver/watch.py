"""Watch streams: newline-delimited JSON events, from the cache or, when older, the store.

A watch without a resourceVersion (or with "0") first sends the current
objects as ADDED events, then every change; with a resourceVersion it sends
every change after it, or an ERROR event with 410 Gone when that revision is
compacted away. Bookmarks carry the latest revision to clients that asked
for them. The frame of one event is built once per representation and
shared by every watcher.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from kubeling.api import errors
from kubeling.api.kinds import Kind, api_version
from kubeling.apiserver import render
from kubeling.apiserver.codec import Want
from kubeling.apiserver.handlers import list_options
from kubeling.apiserver.request import Request, RequestInfo
from kubeling.registry.cache import Cached, CacheEvent, resource_prefix, store_events
from kubeling.registry.listing import ListOptions
from kubeling.registry.registry import Registry
from kubeling.storage.interface import CompactedError

log = logging.getLogger("kubeling.watch")

BOOKMARK_INTERVAL = 30.0
MIN_REQUEST_TIMEOUT = 1800


class WatchStream:
    """One watch: an async iterator of encoded frames."""

    def __init__(self, registry: Registry, req: Request, info: RequestInfo, kind: Kind,
                 want: Want) -> None:
        self.registry = registry
        self.req = req
        self.info = info
        self.kind = kind
        self.want = want
        opts = list_options(req)
        self.opts = opts
        self.predicate = registry.predicate(kind, opts)
        self.bookmarks = req.qbool("allowWatchBookmarks")
        self.send_initial = req.q("sendInitialEvents")
        timeout = req.qint("timeoutSeconds", 0)
        if timeout <= 0:
            timeout = int(MIN_REQUEST_TIMEOUT * (1 + random.random()))
        self.deadline = time.monotonic() + timeout
        self.include_object = req.q("includeObject")
        self._first_table = True

    def _frame(self, type_: str, c: Cached) -> bytes:
        if self.want.shape == "Table":
            obj = render.in_version(self.kind, c, self.info.version)
            t = render.table(self.kind, [obj], include_object=self.include_object,
                             resource_version=c.obj["metadata"].get("resourceVersion", ""),
                             columns=self._first_table, table_version=self.want.table_version)
            self._first_table = False
            return orjson.dumps({"type": type_, "object": t}) + b"\n"
        if self.want.shape == "PartialObjectMetadata":
            return orjson.dumps({"type": type_, "object": render.partial(c.obj)}) + b"\n"
        return (b'{"type":"' + type_.encode() + b'","object":'
                + render.object_json(self.kind, c, self.info.version) + b"}\n")

    def _bookmark(self, revision: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.kind.kind,
               "apiVersion": api_version(self.kind.group, self.info.version),
               "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    @staticmethod
    def _error(exc: errors.StatusError) -> bytes:
        return orjson.dumps({"type": "ERROR", "object": exc.to_status()}) + b"\n"

    async def frames(self) -> AsyncIterator[bytes]:
        rv_param = self.opts.resource_version
        cache = self.registry.cache
        ns = self.info.namespace
        prefix = self.kind.key_prefix(ns)
        rp = resource_prefix(prefix + "x")
        initial = rv_param in ("", "0") if self.send_initial == "" else \
            self.send_initial == "true"
        if initial:
            lopts = ListOptions(label_selector=self.opts.label_selector,
                                field_selector=self.opts.field_selector,
                                resource_version=rv_param if rv_param else "")
            if rv_param not in ("", "0") and self.send_initial == "true":
                lopts.resource_version_match = "NotOlderThan"
            page = await self.registry.list(self.kind, ns, lopts)
            start = page.revision
            for c in page.items:
                yield self._frame("ADDED", c)
            if self.send_initial == "true" and self.bookmarks:
                yield self._bookmark(start, initial_end=True)
        else:
            try:
                start = int(rv_param)
            except ValueError:
                raise errors.bad_request(f"invalid resource version {rv_param!r}") from None
        watcher = cache.watch_from_cache(rp, prefix, start, self.predicate)
        if watcher is None:
            async for frame in self._from_store(prefix, start):
                yield frame
            return
        try:
            last_rv = start
            while True:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    return
                wait = min(remaining, BOOKMARK_INTERVAL) if self.bookmarks else remaining
                try:
                    async with asyncio.timeout(wait):
                        ev = await watcher.queue.get()
                except TimeoutError:
                    if self.bookmarks and time.monotonic() < self.deadline:
                        yield self._bookmark(max(last_rv, cache.revision))
                    continue
                if ev is None:
                    if watcher.overflowed:
                        log.warning("watch on %s closed: the client is too slow", prefix)
                    return
                last_rv = ev.revision
                yield self._frame(ev.type, ev.obj)
                # Drain what is already queued without awaiting each time.
                while not watcher.queue.empty():
                    nxt = watcher.queue.get_nowait()
                    if nxt is None:
                        return
                    last_rv = nxt.revision
                    yield self._frame(nxt.type, nxt.obj)
        finally:
            cache.unwatch(rp, watcher)

    async def _from_store(self, prefix: str, start: int) -> AsyncIterator[bytes]:
        events = store_events(self.registry.store, prefix, start, self.predicate)
        try:
            while True:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    ev: CacheEvent = await asyncio.wait_for(anext(events), remaining)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    return
                except CompactedError as exc:
                    yield self._error(errors.resource_expired(exc.requested, exc.compacted))
                    return
                yield self._frame(ev.type, ev.obj)
        finally:
            await events.aclose()  # type: ignore[attr-defined]
