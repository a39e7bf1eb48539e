"""Prometheus metrics of the API server, named as kube-apiserver names them.

Requests by verb, resource and code with latency histograms, open watches,
and storage latency per operation, so dashboards built for Kubernetes read
ours unchanged.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from kubeling.storage.interface import Event, KeyValue, ListResult, Store
from kubeling.utils import metrics as component_metrics

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "apiserver_request_total", "Counter of apiserver requests broken out by verb, group, "
    "version, resource and HTTP response code.",
    ["verb", "group", "version", "resource", "subresource", "code"], registry=REGISTRY)
LATENCY = Histogram(
    "apiserver_request_duration_seconds", "Response latency distribution in seconds for each "
    "verb, group, version, resource and subresource.",
    ["verb", "group", "version", "resource", "subresource"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0))
WATCHERS = Gauge(
    "apiserver_registered_watchers", "Number of currently registered watchers.",
    ["group", "resource"], registry=REGISTRY)
LONGRUNNING = Gauge(
    "apiserver_longrunning_requests", "Gauge of all active long-running apiserver requests.",
    ["verb", "resource"], registry=REGISTRY)
STORAGE_LATENCY = Histogram(
    "apiserver_storage_request_duration_seconds", "Storage request latency in seconds, by "
    "operation.", ["operation"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
OBJECTS = Gauge(
    "apiserver_storage_objects", "Number of stored objects at the time of last check split "
    "by kind.", ["resource"], registry=REGISTRY)


def exposition() -> bytes:
    """The API server's metrics, then those of the components running in this process."""
    return generate_latest(REGISTRY) + component_metrics.exposition()


_STORAGE_OPS = ("create", "get", "list", "update", "delete", "compact")


class InstrumentedStore:
    """A Store wrapper that times every storage call."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._h = {op: STORAGE_LATENCY.labels(op) for op in _STORAGE_OPS}

    async def create(self, key: str, value: bytes) -> KeyValue:
        start = time.perf_counter()
        try:
            return await self.inner.create(key, value)
        finally:
            self._h["create"].observe(time.perf_counter() - start)

    async def get(self, key: str) -> KeyValue | None:
        start = time.perf_counter()
        try:
            return await self.inner.get(key)
        finally:
            self._h["get"].observe(time.perf_counter() - start)

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_key: str = "") -> ListResult:
        start = time.perf_counter()
        try:
            return await self.inner.list(prefix, revision=revision, limit=limit,
                                         start_key=start_key)
        finally:
            self._h["list"].observe(time.perf_counter() - start)

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        start = time.perf_counter()
        try:
            return await self.inner.update(key, value,
                                           expected_mod_revision=expected_mod_revision)
        finally:
            self._h["update"].observe(time.perf_counter() - start)

    async def delete(self, key: str, *, expected_mod_revision: int | None = None,
                     ) -> tuple[KeyValue, int]:
        start = time.perf_counter()
        try:
            return await self.inner.delete(key, expected_mod_revision=expected_mod_revision)
        finally:
            self._h["delete"].observe(time.perf_counter() - start)

    def watch(self, prefix: str, revision: int) -> AsyncIterator[Event]:
        return self.inner.watch(prefix, revision)

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    async def compact(self, revision: int) -> None:
        start = time.perf_counter()
        try:
            await self.inner.compact(revision)
        finally:
            self._h["compact"].observe(time.perf_counter() - start)

    async def close(self) -> None:
        await self.inner.close()


class RequestMetrics:
    """Per-request counters and histograms, with the labelled children kept at hand."""

    def __init__(self) -> None:
        self._latency: dict[tuple[str, ...], Any] = {}
        self._count: dict[tuple[str, ...], Any] = {}

    def observe(self, labels: tuple[str, str, str, str, str], code: int, seconds: float) -> None:
        hist = self._latency.get(labels)
        if hist is None:
            hist = self._latency[labels] = LATENCY.labels(*labels)
        hist.observe(seconds)
        key = (*labels, str(code))
        counter = self._count.get(key)
        if counter is None:
            counter = self._count[key] = REQUESTS.labels(*key)
        counter.inc()


REQUEST_METRICS = RequestMetrics()
