"""The service proxy (kube-proxy): watches Services and EndpointSlices, programs a backend.

A :class:`ServiceProxy` runs its own informers over any client. Event handlers
only note which Service changed (a slice names its Service in the label
``kubernetes.io/service-name``); one loop turns the noted Services into
:class:`~kubeling.proxy.model.ServicePort` lists and hands them to the backend.
Changes that arrive while a sync runs are coalesced into the next one, and
``min_sync_period`` spaces syncs out. The backend is nftables when the process
is root and has ``nft`` (rules in the kernel; they outlive the proxy, so an
agent restart keeps traffic flowing and the next proxy takes the table over),
otherwise a userspace relay on node ports.

Besides change-driven syncs the loop rewrites everything at start, every
``full_sync_period``, after a failed incremental sync, and when the table was
removed behind its back (checked every ``check_period``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from kubeling.client.informer import Informers, key_of
from kubeling.client.interface import Client, Obj
from kubeling.proxy import metrics
from kubeling.proxy.model import (
    SERVICE_NAME_LABEL,
    TRIGGER_TIME_ANNOTATION,
    ServicePort,
    service_ports,
)
from kubeling.proxy.nftables import NftablesBackend
from kubeling.proxy.userspace import UserspaceBackend
from kubeling.utils import tasks

log = logging.getLogger("kubeling.proxy")

SERVICE_INDEX = "service"  # EndpointSlices by "namespace/service-name"
MODES = ("auto", "nftables", "userspace")
STALE_AFTER = 60.0  # unhealthy when changes have waited this long


class Backend(Protocol):
    """Where the rules go. ``sync`` gets Service keys with their ports (None: gone);
    ``full`` means the mapping is complete and everything else is to be removed."""

    async def setup(self) -> None: ...

    async def sync(self, ports: Mapping[str, Sequence[ServicePort] | None], *,
                   full: bool) -> None: ...

    async def stop(self, *, cleanup: bool) -> None: ...

    def counts(self) -> tuple[int, int]: ...


def choose_mode(mode: str) -> tuple[str, str]:
    """(mode, why) for ``auto|nftables|userspace``."""
    if mode not in MODES:
        raise ValueError(f"unknown proxy mode {mode!r} (want one of {', '.join(MODES)})")
    if mode != "auto":
        return mode, "as configured"
    ok, why = NftablesBackend.available()
    return ("nftables" if ok else "userspace"), why


def _slice_service(obj: Obj) -> Iterable[str]:
    name = (obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
    return (f"{obj['metadata'].get('namespace')}/{name}",) if name else ()


def _parse_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class ServiceProxy:
    """kube-proxy for one node. ``start`` returns once the first full sync is done."""

    def __init__(self, client: Client, *, node_name: str, node_ips: Sequence[str],
                 cluster_cidr: str = "10.42.0.0/16", mode: str = "auto",
                 min_sync_period: float = 0.0, table: str = "kubeling",
                 command_prefix: Sequence[str] = (), full_sync_period: float = 3600.0,
                 check_period: float = 30.0) -> None:
        self.client = client
        self.node_name = node_name
        self.node_ips = list(node_ips)
        self.cluster_cidr = cluster_cidr
        self.mode, self.mode_reason = choose_mode(mode)
        self.min_sync_period = min_sync_period
        self.table = table
        self.command_prefix = list(command_prefix)
        self.full_sync_period = full_sync_period
        self.check_period = check_period
        self.informers = Informers(client)
        self.services = self.informers.informer(("", "services"))
        self.slices = self.informers.informer(("discovery.k8s.io", "endpointslices"))
        self.slices.add_index(SERVICE_INDEX, _slice_service)
        self.backend: Backend | None = None
        self.last_sync = 0.0  # wall-clock time of the last successful sync
        self.last_sync_duration = 0.0  # seconds it took
        self.syncs = 0
        self.full_syncs = 0
        self.listeners: list[Callable[[set[str], bool], None]] = []  # (keys, full) per sync
        self._dirty: set[str] = set()
        self._triggers: dict[str, list[float]] = {}
        self._need_full = True
        self._last_full = 0.0
        self._pending_since = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._live = False

    # ----- life cycle -------------------------------------------------------------------

    def _make_backend(self) -> Backend:
        if self.mode == "nftables":
            return NftablesBackend(table=self.table, cluster_cidr=self.cluster_cidr,
                                   command_prefix=self.command_prefix)
        return UserspaceBackend(node_ips=self.node_ips)

    async def start(self) -> None:
        log.info("service proxy for node %s: %s mode (%s)", self.node_name, self.mode,
                 self.mode_reason)
        self.backend = self._make_backend()
        await self.backend.setup()
        self.services.add_handlers(add=self._on_service, update=lambda _o, n: self._on_service(n),
                                   delete=self._on_service)
        self.slices.add_handlers(add=self._on_slice, update=lambda _o, n: self._on_slice(n),
                                 delete=self._on_slice)
        self.informers.start()
        await self.informers.wait_synced()
        self._live = True
        await self._sync_once()
        self._task = tasks.spawn(self._loop(), name="service-proxy")

    async def stop(self, *, cleanup: bool = False) -> None:
        """Stop watching. The rules stay (traffic keeps flowing) unless ``cleanup``."""
        await tasks.stop(self._task)
        self._task = None
        await self.informers.stop()
        if self.backend is not None:
            await self.backend.stop(cleanup=cleanup)

    @property
    def healthy(self) -> bool:
        """Started, and no change has waited for programming longer than a minute."""
        if self._task is None or self._task.done():
            return False
        return not self._pending_since or time.monotonic() - self._pending_since < STALE_AFTER

    # ----- events -----------------------------------------------------------------------

    def _mark(self, key: str) -> None:
        if not self._dirty and not self._pending_since:
            self._pending_since = time.monotonic()
        self._dirty.add(key)
        self._wake.set()

    def _on_service(self, obj: Obj) -> None:
        self._mark(key_of(obj))

    def _on_slice(self, obj: Obj) -> None:
        for key in _slice_service(obj):
            if self._live:
                t = (obj["metadata"].get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION)
                when = _parse_time(t) if t else None
                if when is not None:
                    self._triggers.setdefault(key, []).append(when)
            self._mark(key)

    # ----- syncing ----------------------------------------------------------------------

    def ports_of(self, key: str) -> list[ServicePort] | None:
        """The proxied ports of the Service ``key`` now; None when there are none."""
        svc = self.services.get_by_key(key)
        if svc is None:
            return None
        info = service_ports(svc, self.slices.by_index(SERVICE_INDEX, key), self.node_name)
        return info.ports or None

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.check_period)
                idle = False
            except TimeoutError:
                idle = True
            self._wake.clear()  # before anything awaits: a change from now on wakes us again
            if time.monotonic() - self._last_full > self.full_sync_period:
                self._need_full = True
            if idle and not self._need_full and isinstance(self.backend, NftablesBackend) \
                    and not await self.backend.table_present():
                log.warning("table ip %s is gone; programming it again", self.table)
                self._need_full = True
            if not self._dirty and not self._need_full:
                continue
            wait = self._last_start + self.min_sync_period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not await self._sync_once():
                await asyncio.sleep(1.0)  # back off; everything is retried in full

    _last_start = 0.0

    async def _sync_once(self) -> bool:
        assert self.backend is not None
        self._last_start = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        full = self._need_full
        t0 = time.perf_counter()
        try:
            if not full:
                try:
                    await self.backend.sync({k: self.ports_of(k) for k in dirty}, full=False)
                except Exception as exc:  # e.g. the table was deleted: write it all again
                    log.warning("incremental proxy sync failed (%s); syncing in full", exc)
                    full = True
            if full:
                await self.backend.sync({k: self.ports_of(k) for k in self.services.keys()},
                                        full=True)
        except Exception as exc:
            metrics.SYNC_ERRORS.inc()
            log.error("proxy sync failed: %s", exc)
            self._dirty |= dirty
            self._need_full = True
            self._wake.set()
            return False
        elapsed = time.perf_counter() - t0
        self._record(dirty, full, elapsed)
        return True

    def _record(self, dirty: set[str], full: bool, elapsed: float) -> None:
        assert self.backend is not None
        now = time.time()
        self.last_sync = now
        self.last_sync_duration = elapsed
        self.syncs += 1
        self._need_full = False
        if full:
            self.full_syncs += 1
            self._last_full = time.monotonic()
        if not self._dirty:
            self._pending_since = 0.0
        metrics.SYNC_DURATION.observe(elapsed)
        (metrics.FULL_SYNC_DURATION if full else metrics.PARTIAL_SYNC_DURATION).observe(elapsed)
        metrics.LAST_SYNC.set(now)
        for key in dirty:
            for when in self._triggers.pop(key, ()):
                metrics.NETWORK_PROGRAMMING.observe(max(0.0, now - when))
        ports, endpoints = self.backend.counts()
        metrics.SERVICE_PORTS.set(ports)
        metrics.ENDPOINTS.set(endpoints)
        log.debug("proxy sync (%s, %d services changed) took %.3fs: %d service ports, "
                  "%d endpoints", "full" if full else "partial", len(dirty), elapsed, ports,
                  endpoints)
        for listener in self.listeners:
            listener(dirty, full)
