"""The scheduling queue: pods waiting for a node, in three places.

- *active*: ready now, popped highest priority first, then oldest first;
- *backoff*: failed recently; each attempt doubles the wait (1 s, 2 s, 4 s...
  up to 10 s) before the pod is active again;
- *unschedulable*: no node fitted and nothing has changed since. A cluster
  event that could help (a node added or changed, a placed pod deleted...)
  moves the pods rejected by a plugin that cares about that event back to
  active (or backoff, if still backing off); pods left there for 5 minutes are
  retried anyway.

A pod that failed while an event arrived during its own cycle goes to backoff
instead of unschedulable, so the event is not lost. Time comes from a
:class:`~kubeling.utils.clock.Clock`, so tests move it by hand.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from kubeling.scheduler.framework import Event
from kubeling.scheduler.nodeinfo import PodInfo
from kubeling.utils.clock import REAL, Clock

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_IN_UNSCHEDULABLE = 300.0
BACKOFF_FLUSH_PERIOD = 1.0
UNSCHEDULABLE_FLUSH_PERIOD = 30.0


@dataclass
class QueuedPod:
    info: PodInfo
    timestamp: float  # when it last entered the queue (monotonic)
    initial_attempt: float | None = None
    attempts: int = 0
    unschedulable_plugins: set[str] = field(default_factory=set)
    cycle: int = 0
    seq: int = 0

    @property
    def key(self) -> str:
        return self.info.key


class SchedulingQueue:
    def __init__(self, *, clock: Clock = REAL, initial_backoff: float = INITIAL_BACKOFF,
                 max_backoff: float = MAX_BACKOFF,
                 max_in_unschedulable: float = MAX_IN_UNSCHEDULABLE,
                 plugin_events: dict[str, Event] | None = None) -> None:
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_in_unschedulable = max_in_unschedulable
        self.plugin_events = plugin_events or {}
        self._active: dict[str, QueuedPod] = {}
        self._active_heap: list[tuple[int, float, int, str]] = []
        self._backoff: dict[str, QueuedPod] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self.unschedulable: dict[str, QueuedPod] = {}
        self._in_flight: dict[str, QueuedPod] = {}
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self.closed = False

    # ----- what is where (for tests and metrics) ---------------------------------------

    def location(self, key: str) -> str | None:
        for name, where in (("active", self._active), ("backoff", self._backoff),
                            ("unschedulable", self.unschedulable),
                            ("in-flight", self._in_flight)):
            if key in where:
                return name
        return None

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self.unschedulable)

    @property
    def active_count(self) -> int:
        return len(self._active)

    # ----- adding and removing ---------------------------------------------------------

    def add(self, info: PodInfo) -> None:
        """A new pending pod (or one changed while not queued)."""
        key = info.key
        if key in self._in_flight:
            self._in_flight[key].info = info
            return
        for where in (self._active, self._backoff):
            qp = where.get(key)
            if qp is not None:
                qp.info = info
                return
        qp = self.unschedulable.get(key)
        if qp is not None:
            qp.info = info
            self._move(qp, Event.POD_UPDATE)
            return
        self._push_active(QueuedPod(info, self.clock.monotonic()))

    def delete(self, key: str) -> None:
        self._active.pop(key, None)
        self._backoff.pop(key, None)
        self.unschedulable.pop(key, None)
        self._in_flight.pop(key, None)

    def _push_active(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self._active[qp.key] = qp
        heapq.heappush(self._active_heap, (-qp.info.priority, qp.timestamp, qp.seq, qp.key))
        self._wakeup.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self._backoff[qp.key] = qp
        heapq.heappush(self._backoff_heap, (self.backoff_expiry(qp), qp.seq, qp.key))

    # ----- popping ---------------------------------------------------------------------

    def pop_nowait(self) -> QueuedPod | None:
        heap, active = self._active_heap, self._active
        while heap:
            _, _, seq, key = heapq.heappop(heap)
            qp = active.get(key)
            if qp is None or qp.seq != seq:
                continue
            del active[key]
            self.scheduling_cycle += 1
            qp.cycle = self.scheduling_cycle
            qp.attempts += 1
            if qp.initial_attempt is None:
                qp.initial_attempt = self.clock.monotonic()
            self._in_flight[key] = qp
            return qp
        return None

    async def pop(self) -> QueuedPod:
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            if self.closed:
                raise asyncio.CancelledError()
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, key: str) -> None:
        """The pod's cycle ended with a node chosen (or the pod gone)."""
        self._in_flight.pop(key, None)

    def requeue(self, qp: QueuedPod, *, unschedulable_plugins: set[str] | None = None,
                error: bool = False) -> None:
        """A cycle failed: back to backoff or unschedulable (AddUnschedulableIfNotPresent)."""
        current = self._in_flight.pop(qp.key, None)
        if current is None:
            return  # deleted meanwhile
        qp.info = current.info
        qp.timestamp = self.clock.monotonic()
        qp.unschedulable_plugins = set(unschedulable_plugins or ())
        if error or self.move_request_cycle >= qp.cycle:
            self._push_backoff(qp)
        else:
            self.unschedulable[qp.key] = qp

    # ----- back-off --------------------------------------------------------------------

    def backoff_duration(self, qp: QueuedPod) -> float:
        d = self.initial_backoff
        for _ in range(1, qp.attempts):
            d *= 2
            if d > self.max_backoff:
                return self.max_backoff
        return min(d, self.max_backoff)

    def backoff_expiry(self, qp: QueuedPod) -> float:
        return qp.timestamp + self.backoff_duration(qp)

    def is_backing_off(self, qp: QueuedPod) -> bool:
        return self.backoff_expiry(qp) > self.clock.monotonic()

    def flush_backoff_completed(self) -> int:
        now = self.clock.monotonic()
        heap, moved = self._backoff_heap, 0
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            qp = self._backoff.get(key)
            if qp is None or qp.seq != seq:
                continue
            del self._backoff[key]
            self._push_active(qp)
            moved += 1
        return moved

    def flush_unschedulable_leftover(self) -> int:
        now = self.clock.monotonic()
        stale = [qp for qp in self.unschedulable.values()
                 if now - qp.timestamp > self.max_in_unschedulable]
        for qp in stale:
            self._move(qp, None)
        return len(stale)

    # ----- cluster events --------------------------------------------------------------

    def _interested(self, qp: QueuedPod, event: Event) -> bool:
        if not qp.unschedulable_plugins:
            return True
        for name in qp.unschedulable_plugins:
            if self.plugin_events.get(name, Event.NONE) & event:
                return True
        return False

    def _move(self, qp: QueuedPod, event: Event | None) -> None:
        del self.unschedulable[qp.key]
        if self.is_backing_off(qp):
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    def on_event(self, event: Event, pod_filter: Callable[[QueuedPod], bool] | None = None
                 ) -> int:
        """Move the unschedulable pods that ``event`` could help; returns how many."""
        self.move_request_cycle = self.scheduling_cycle
        if not event or not self.unschedulable:
            return 0
        movable = [qp for qp in self.unschedulable.values() if self._interested(qp, event)
                   and (pod_filter is None or pod_filter(qp))]
        for qp in movable:
            self._move(qp, event)
        return len(movable)

    # ----- background --------------------------------------------------------------------

    async def run_backoff_flusher(self) -> None:
        while not self.closed:
            await self.clock.sleep(BACKOFF_FLUSH_PERIOD)
            self.flush_backoff_completed()

    async def run_unschedulable_flusher(self) -> None:
        while not self.closed:
            await self.clock.sleep(UNSCHEDULABLE_FLUSH_PERIOD)
            self.flush_unschedulable_leftover()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
