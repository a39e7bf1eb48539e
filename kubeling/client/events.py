"""Events: what a component did to an object, in words ``kubectl describe`` shows.

Recording never blocks the caller and never fails it: events go on a bounded
queue that one task writes to the API. The same event repeated (same object,
type, reason and message) bumps ``count`` and ``lastTimestamp`` on the event
already written instead of creating another, as client-go's event correlator
does, so a controller that retries does not flood the namespace.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict

from kubeling.api import errors, kinds
from kubeling.client.interface import Client, Obj
from kubeling.utils.clock import REAL, Clock, rfc3339
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.events")

NORMAL = "Normal"
WARNING = "Warning"
MAX_PENDING = 10_000
REMEMBERED = 4096


def reference(obj: Obj) -> Obj:
    """An ObjectReference to ``obj`` (the involvedObject of its events)."""
    meta = obj["metadata"]
    ref = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
           "name": meta["name"], "uid": meta.get("uid", ""),
           "resourceVersion": meta.get("resourceVersion", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return ref


class EventRecorder:
    def __init__(self, client: Client, component: str, *, host: str = "",
                 clock: Clock = REAL) -> None:
        self.client = client
        self.component = component
        self.host = host or socket.gethostname()
        self.clock = clock
        self.kind = kinds.by_resource("", "events")
        self._pending: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue()
        self._seen: OrderedDict[tuple[str, str, str, str, str], tuple[str, str, int]] = \
            OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0
        self._last_stamp = 0
        self._busy = False  # a write is in progress (for flush)

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Record that ``reason`` happened to ``obj`` (type Normal or Warning)."""
        if self._pending.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.put_nowait((reference(obj), type_, reason, message))
        if self._task is None or self._task.done():
            self._task = spawn(self._run(), name=f"events-{self.component}")

    def eventf(self, obj: Obj, type_: str, reason: str, fmt: str, *args: object) -> None:
        self.event(obj, type_, reason, fmt % args if args else fmt)

    async def flush(self) -> None:
        """Wait until every recorded event has been written (for tests)."""
        while not self._pending.empty() or (self._task is not None and self._busy):
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        while True:
            ref, type_, reason, message = await self._pending.get()
            self._busy = True
            try:
                await self._write(ref, type_, reason, message)
            except errors.StatusError as exc:
                log.debug("event %s on %s/%s not written: %s", reason,
                          ref.get("namespace", ""), ref["name"], exc.message)
            except (ConnectionError, OSError) as exc:
                log.debug("event %s not written: %r", reason, exc)
            finally:
                self._busy = self._pending.qsize() > 0

    async def _write(self, ref: Obj, type_: str, reason: str, message: str) -> None:
        assert self.kind is not None
        ns = ref.get("namespace") or "default"
        now = rfc3339(self.clock.now())
        seen_key = (ref.get("uid", ""), ref["name"], type_, reason, message)
        seen = self._seen.get(seen_key)
        if seen is not None:
            name, ens, count = seen
            try:
                await self.client.patch(self.kind, ens, name,
                                        {"count": count + 1, "lastTimestamp": now})
                self._seen[seen_key] = (name, ens, count + 1)
                self._seen.move_to_end(seen_key)
                return
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise
        # Kubernetes names events by the time in nanoseconds; two in the same instant (or
        # on a fake clock) still need distinct names.
        stamp = max(int(self.clock.now() * 1e9), self._last_stamp + 1)
        self._last_stamp = stamp
        name = f"{ref['name']}.{stamp:x}"
        event: Obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
        await self.client.create(self.kind, ns, event)
        self.written += 1
        self._seen[seen_key] = (name, ns, 1)
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
