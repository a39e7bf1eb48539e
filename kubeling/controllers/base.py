"""What every controller shares: its context, its work queue and its workers.

A controller watches informers, turns each change into a *key* on its work
queue, and reconciles one key at a time from the informer caches
(level-triggered: ``sync`` computes what should exist from what is observed
now, so it can crash or be restarted anywhere without harm). A failed sync is
retried with per-key exponential back-off; a key is never synced by two
workers at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from kubeling.api import errors
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informers, key_of
from kubeling.client.interface import Client, Obj
from kubeling.client.workqueue import ShutDown, WorkQueue
from kubeling.utils import metrics
from kubeling.utils.clock import REAL, Clock
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.controllers")

MAX_RETRIES_LOGGED = 15


@dataclass
class ControllerOptions:
    """Flags of the controller manager (the names of kube-controller-manager's)."""

    workers: int = 5
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    default_not_ready_toleration_seconds: int = 300
    default_unreachable_toleration_seconds: int = 300
    cluster_cidr: str = "10.42.0.0/16"
    node_cidr_mask_size: int = 24
    terminated_pod_gc_threshold: int = 12500
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ControllerContext:
    client: Client
    informers: Informers
    clock: Clock = REAL
    options: ControllerOptions = field(default_factory=ControllerOptions)

    def recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self.client, component, clock=self.clock)


class Controller:
    """Base of the queue-driven controllers: subclasses set ``name``, register informer
    handlers that call :meth:`enqueue`, and implement :meth:`sync`."""

    name = "controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.queue = WorkQueue(self.name, clock=ctx.clock)
        self.recorder = ctx.recorder(self.name)
        self.syncs = 0
        self.errors = 0
        self._work_metric = metrics.WORKQUEUE_WORK.labels(self.name)

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    async def wait_synced(self) -> None:
        """Wait until the informers this controller reads have listed once."""
        await self.ctx.informers.wait_synced()

    async def run(self, workers: int | None = None) -> None:
        n = workers or self.ctx.options.workers
        await self.wait_synced()
        log.info("%s started with %d workers", self.name, n)
        tasks = [spawn(self._worker(), name=f"{self.name}-worker-{i}") for i in range(n)]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shutdown()
            for t in tasks:
                t.cancel()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            started = self.clock.monotonic()
            try:
                await self.sync(key)
                self.queue.forget(key)
            except errors.StatusError as exc:
                self._retry(key, f"{exc.message} ({exc.code})", exc.code == 409)
            except (ConnectionError, OSError, TimeoutError) as exc:
                self._retry(key, repr(exc), False)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one sync must not stop the controller
                log.exception("%s: sync of %s crashed", self.name, key)
                self._retry(key, "crash", False)
            finally:
                self.syncs += 1
                self._work_metric.observe(self.clock.monotonic() - started)
                self.queue.done(key)

    def _retry(self, key: str, why: str, conflict: bool) -> None:
        self.errors += 1
        n = self.queue.num_requeues(key)
        level = logging.DEBUG if conflict or n > MAX_RETRIES_LOGGED else logging.INFO
        log.log(level, "%s: sync of %s failed: %s; retrying", self.name, key, why)
        self.queue.add_rate_limited(key)
