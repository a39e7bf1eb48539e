"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection.

Several schedulers or controller managers may run against one API server;
exactly one of them acts. Each candidate tries to write its identity into
the Lease; the holder renews ``renewTime`` every ``retry_period``. Whether a
lease has expired is judged by *our* clock: a candidate remembers when it last
saw the lease record change and takes it over only after
``leaseDurationSeconds`` have passed since then without a change, so clocks
that disagree between machines do not matter. Every write is conditional on
the Lease's resourceVersion, so two candidates can never both win.

The holder that cannot renew for ``renew_deadline`` stops leading (its
``lead()`` is cancelled and :meth:`LeaderElector.run` returns); the process
is expected to exit then, as Kubernetes components do. A holder that stops
cleanly releases the lease (empty holder, one-second duration) so a successor
takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from kubeling.api import kinds
from kubeling.api.errors import StatusError
from kubeling.client.interface import Client, Obj
from kubeling.utils.clock import REAL, Clock
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.leader")

JITTER = 1.2
_LEASES = kinds.by_resource("coordination.k8s.io", "leases")
assert _LEASES is not None
LEASES = _LEASES


def micro_time(ts: float) -> str:
    """A MicroTime: RFC 3339 in UTC with microseconds (``2026-01-02T03:04:05.123456Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: Client, *, namespace: str = "kube-system", name: str,
                 identity: str, lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, clock: Clock = REAL) -> None:
        if not lease_duration > renew_deadline > retry_period * JITTER:
            raise ValueError("need lease_duration > renew_deadline > retry_period * 1.2")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self._lease: Obj | None = None  # the Lease as last read or written
        self._observed: Obj = {}  # its spec
        self._observed_at = 0.0  # when (monotonic) we saw that spec change
        self._leading = False

    @property
    def is_leader(self) -> bool:
        """True while this candidate holds the lease and runs ``lead()``."""
        return self._leading

    @property
    def leader(self) -> str:
        """The holder identity last observed ("" when none)."""
        return str(self._observed.get("holderIdentity") or "")

    @property
    def _desc(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Acquire the lease, run ``lead()`` while renewing it; return when the lease is lost
        or ``lead()`` returns (re-raising what it raised). Cancelling ``run`` cancels
        ``lead()`` and releases the lease."""
        await self._acquire()
        log.info("%s became leader of lease %s", self.identity, self._desc)
        self._leading = True

        async def _lead() -> None:
            await lead()

        task = spawn(_lead(), name=f"leader:{self._desc}")
        lost = False
        try:
            lost = not await self._renew(task)
        finally:
            self._leading = False
            if not task.done():
                task.cancel()
                await asyncio.wait([task])
            released = await self._bounded(self._release(), self.renew_deadline)
            if lost:
                log.warning("%s lost lease %s: not renewed within %ss", self.identity,
                            self._desc, self.renew_deadline)
            else:
                log.info("%s stopped leading lease %s (%s)", self.identity, self._desc,
                         "released" if released else "release failed")
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    # ----- the loops ------------------------------------------------------------------

    async def _acquire(self) -> None:
        log.debug("%s attempting to acquire lease %s", self.identity, self._desc)
        while not await self._bounded(self._try_acquire_or_renew(), self.renew_deadline):
            await self.clock.sleep(self.retry_period * (1 + random.random() * JITTER))

    async def _renew(self, task: asyncio.Task[Any]) -> bool:
        """Renew every retry period until ``task`` ends (True) or renewal fails for the
        renew deadline (False)."""
        while True:
            if await self._sleep_unless_done(task, self.retry_period):
                return True
            deadline = self.clock.monotonic() + self.renew_deadline
            while True:
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    return False
                if await self._bounded(self._try_acquire_or_renew(), remaining):
                    break
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    return False
                if await self._sleep_unless_done(task, min(self.retry_period, remaining)):
                    return True

    async def _sleep_unless_done(self, task: asyncio.Task[Any], seconds: float) -> bool:
        """Sleep ``seconds`` on our clock; True at once if ``task`` finishes first."""
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait([task, sleeper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        return task.done()

    async def _bounded(self, coro: Coroutine[Any, Any, bool], seconds: float) -> bool:
        """The result of ``coro``, or False when it takes longer than ``seconds`` on our clock."""
        attempt = asyncio.ensure_future(coro)
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait([attempt, sleeper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if not attempt.done():
                attempt.cancel()
                await asyncio.wait([attempt])
        return attempt.done() and not attempt.cancelled() and bool(attempt.result())

    # ----- one attempt ----------------------------------------------------------------

    def _holds(self) -> bool:
        return self.leader == self.identity

    def _valid(self, now: float) -> bool:
        duration = self._observed.get("leaseDurationSeconds") or 0
        return self._observed_at + float(duration) > now

    def _observe(self, lease: Obj) -> None:
        self._lease = lease
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed = spec
            self._observed_at = self.clock.monotonic()

    def _record(self) -> Obj:
        now = micro_time(self.clock.now())
        return {"holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": now, "renewTime": now, "leaseTransitions": 0}

    async def _write(self, spec: Obj) -> None:
        assert self._lease is not None
        updated = await self.client.update(LEASES, {**self._lease, "spec": spec})
        self._lease = updated
        self._observed = updated.get("spec") or {}
        self._observed_at = self.clock.monotonic()

    async def _try_acquire_or_renew(self) -> bool:
        try:
            return await self._attempt()
        except (StatusError, ConnectionError) as exc:
            log.debug("%s: lease %s attempt failed: %s", self.identity, self._desc, exc)
            return False

    async def _attempt(self) -> bool:
        record = self._record()
        if self._holds() and self._valid(self.clock.monotonic()) and self._lease is not None:
            record["acquireTime"] = self._observed.get("acquireTime") or record["acquireTime"]
            record["leaseTransitions"] = self._observed.get("leaseTransitions") or 0
            try:
                await self._write(record)
                return True
            except (StatusError, ConnectionError) as exc:
                log.info("%s: optimistic renewal of %s failed (%s); reading it", self.identity,
                         self._desc, exc)
        try:
            lease = await self.client.get(LEASES, self.namespace, self.name)
        except StatusError as exc:
            if exc.code != 404:
                raise
            created = await self.client.create(LEASES, self.namespace, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": record})
            self._lease = created
            self._observed = created.get("spec") or {}
            self._observed_at = self.clock.monotonic()
            return True
        self._observe(lease)
        if self.leader and self._valid(self.clock.monotonic()) and not self._holds():
            return False
        if self._holds():
            record["acquireTime"] = self._observed.get("acquireTime") or record["acquireTime"]
            record["leaseTransitions"] = self._observed.get("leaseTransitions") or 0
        else:
            record["leaseTransitions"] = (self._observed.get("leaseTransitions") or 0) + 1
        await self._write(record)
        return True

    async def _release(self) -> bool:
        if not self._holds() or self._lease is None:
            return True
        now = micro_time(self.clock.now())
        try:
            await self._write({"holderIdentity": "", "leaseDurationSeconds": 1,
                               "acquireTime": now, "renewTime": now,
                               "leaseTransitions": self._observed.get("leaseTransitions") or 0})
        except (StatusError, ConnectionError) as exc:
            log.warning("%s: could not release lease %s: %s", self.identity, self._desc, exc)
            return False
        return True
