"""The rate-limited work queue every controller drains (client-go's workqueue).

Contract, as controllers rely on it:
- a key waiting in the queue is there once, however often it is added;
- a key being processed is never handed to a second worker: adding it
  meanwhile marks it dirty and it comes back after :meth:`WorkQueue.done`;
- :meth:`add_rate_limited` re-adds a failed key after an exponential per-key
  back-off (5 ms doubling up to a limit), :meth:`forget` resets it;
- :meth:`add_after` delays a key (for deadlines such as minReadySeconds);
- time comes from a :class:`Clock`, so tests drive back-off with a fake one.
"""

from __future__ import annotations

import asyncio
from collections import deque

from kubeling.utils import metrics
from kubeling.utils.clock import REAL, Clock
from kubeling.utils.tasks import spawn


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue:
    def __init__(self, name: str, *, clock: Clock = REAL, base_delay: float = 0.005,
                 max_delay: float = 300.0) -> None:
        self.name = name
        self.clock = clock
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._waiting: dict[str, float] = {}  # key -> when it is due (monotonic)
        self._wake = asyncio.Event()
        self._shutdown = False
        self.adds = 0
        self._adds_metric = metrics.WORKQUEUE_ADDS.labels(name)
        metrics.WORKQUEUE_DEPTH.labels(name).set_function(lambda: len(self._queue))

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self.adds += 1
        self._adds_metric.inc()
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake.set()

    async def get(self) -> str:
        """The next key to process; call :meth:`done` with it when finished."""
        while not self._queue:
            if self._shutdown:
                raise ShutDown(self.name)
            self._wake.clear()
            await self._wake.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake.set()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        if self._shutdown:
            return
        due = self.clock.monotonic() + delay
        current = self._waiting.get(key)
        if current is not None and current <= due:
            return
        self._waiting[key] = due
        spawn(self._later(key, due, delay), name=f"workqueue-{self.name}-delay")

    async def _later(self, key: str, due: float, delay: float) -> None:
        await self.clock.sleep(delay)
        if self._waiting.get(key) == due:
            del self._waiting[key]
            self.add(key)

    def when(self, key: str) -> float:
        """The back-off for the next failure of ``key`` (and count it)."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return min(self.base_delay * (2 ** n), self.max_delay)

    def add_rate_limited(self, key: str) -> None:
        metrics.WORKQUEUE_RETRIES.labels(self.name).inc()
        self.add_after(key, self.when(key))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    def shutdown(self) -> None:
        self._shutdown = True
        self._wake.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown
