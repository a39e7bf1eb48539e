"""Resource usage of the node and its containers, as the kubelet reports it.

``kubectl top`` and the HorizontalPodAutoscaler read CPU and memory through a
metrics API that scrapes each node's kubelet; this module is the node's side:
it samples the runtime's container stats and the host (psutil) every
``stats_interval`` and serves them in the two shapes the kubelet serves,
``/stats/summary`` (JSON) and ``/metrics/resource`` (Prometheus text).

CPU is kept cumulative (core-nanoseconds) and as a rate (nanocores, from the
difference between the last two samples of the same container; absent until
there are two). Containers are matched to their pods through the
``io.kubernetes.*`` labels the agent puts on them; only running containers
count, and a pod's figures are the sums of its containers'.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeling.client.interface import Obj
from kubeling.kubelet.context import (
    CONTAINER_NAME,
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    KubeletContext,
)
from kubeling.runtime.protocol import ContainerState, ContainerStats, ContainerStatus
from kubeling.utils import tasks
from kubeling.utils.clock import rfc3339
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.stats")


@dataclass(frozen=True)
class NodeSample:
    timestamp: float
    cpu_core_ns: int  # cumulative CPU time of the whole host, nanoseconds
    memory_total: int
    memory_available: int
    memory_used: int  # without page cache and buffers
    memory_free: int


def sample_host(now: float) -> NodeSample:
    """The host's CPU time and memory, through psutil."""
    import psutil

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    busy = sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    vm = psutil.virtual_memory()
    return NodeSample(timestamp=now, cpu_core_ns=int(busy * 1e9), memory_total=vm.total,
                      memory_available=vm.available, memory_used=vm.used,
                      memory_free=vm.free)


@dataclass(frozen=True)
class _Usage:
    timestamp: float
    cpu_core_ns: int
    nano_cores: int | None
    working_set: int
    rss: int


@dataclass(frozen=True)
class _Container:
    status: ContainerStatus
    usage: _Usage


def _rate(prev: tuple[float, int] | None, ts: float, core_ns: int) -> int | None:
    if prev is None:
        return None
    prev_ts, prev_ns = prev
    if ts <= prev_ts or core_ns < prev_ns:
        return None
    return int((core_ns - prev_ns) / (ts - prev_ts))


def _cpu(ts: float, core_ns: int, nano_cores: int | None) -> Obj:
    out: Obj = {"time": rfc3339(ts)}
    if nano_cores is not None:
        out["usageNanoCores"] = nano_cores
    out["usageCoreNanoSeconds"] = core_ns
    return out


def _memory(ts: float, working_set: int, rss: int, usage: int | None = None,
            available: int | None = None) -> Obj:
    out: Obj = {"time": rfc3339(ts)}
    if available is not None:
        out["availableBytes"] = available
    out["usageBytes"] = working_set if usage is None else usage
    out["workingSetBytes"] = working_set
    out["rssBytes"] = rss
    return out


class StatsProvider:
    """Samples usage every ``ctx.options.stats_interval`` and serves the latest figures.

    ``host`` samples the node (default: psutil); tests pass a fake."""

    def __init__(self, ctx: KubeletContext, *,
                 host: Callable[[float], NodeSample] = sample_host) -> None:
        self.ctx = ctx
        self._host = host
        self._task: asyncio.Task[Any] | None = None
        self._prev: dict[str, tuple[float, int]] = {}  # container id → (ts, cpu ns)
        self._prev_node: tuple[float, int] | None = None
        self._containers: list[_Container] = []
        self._sandbox_start: dict[str, float] = {}  # pod uid → sandbox creation time
        self._node: NodeSample | None = None
        self._node_rate: int | None = None
        self.scrape_error = False

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._loop(), name="kubelet-stats")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)

    async def _loop(self) -> None:
        while True:
            await self.sample()
            await self.ctx.clock.sleep(self.ctx.options.stats_interval)

    async def sample(self) -> None:
        """Take one sample of the node and of every running container."""
        now = self.ctx.clock.now()
        try:
            node = self._host(now)
        except Exception:
            log.exception("sampling the node's usage failed")
        else:
            self._node_rate = _rate(self._prev_node, node.timestamp, node.cpu_core_ns)
            self._prev_node = (node.timestamp, node.cpu_core_ns)
            self._node = node
        runtime = self.ctx.runtime
        try:
            stats = await runtime.list_container_stats()
            statuses = await runtime.list_containers()
            sandboxes = await runtime.list_pod_sandboxes()
        except Exception as exc:
            log.warning("sampling container usage failed: %s", exc)
            self.scrape_error = True
            return
        self.scrape_error = False
        self._sandbox_start = {}
        for sb in sandboxes:
            if sb.uid and (sb.uid not in self._sandbox_start
                           or sb.created_at > self._sandbox_start[sb.uid]):
                self._sandbox_start[sb.uid] = sb.created_at
        by_id = {s.id: s for s in statuses}
        containers: list[_Container] = []
        prev: dict[str, tuple[float, int]] = {}
        for st in stats:
            status = by_id.get(st.container_id)
            if status is None or status.state is not ContainerState.RUNNING:
                continue
            if not status.labels.get(POD_UID) or not status.labels.get(CONTAINER_NAME):
                continue
            containers.append(_Container(status, self._usage(st)))
            prev[st.container_id] = (st.timestamp, st.cpu_usage_core_ns)
        self._prev = prev
        self._containers = containers

    def _usage(self, st: ContainerStats) -> _Usage:
        rate = _rate(self._prev.get(st.container_id), st.timestamp, st.cpu_usage_core_ns)
        return _Usage(st.timestamp, st.cpu_usage_core_ns, rate, st.memory_working_set_bytes,
                      st.memory_rss_bytes)

    # ----- the two views ----------------------------------------------------------------

    def _pods(self) -> list[tuple[dict[str, str], list[_Container]]]:
        pods: dict[str, tuple[dict[str, str], list[_Container]]] = {}
        for c in self._containers:
            labels = c.status.labels
            uid = labels[POD_UID]
            ref = {"name": labels.get(POD_NAME, ""), "namespace": labels.get(POD_NAMESPACE, ""),
                   "uid": uid}
            pods.setdefault(uid, (ref, []))[1].append(c)
        return sorted(pods.values(), key=lambda p: (p[0]["namespace"], p[0]["name"]))

    def _node_summary(self) -> Obj:
        out: Obj = {"nodeName": self.ctx.options.node_name}
        node = self._node
        if node is None:
            return out
        working_set = node.memory_total - node.memory_available
        out["cpu"] = _cpu(node.timestamp, node.cpu_core_ns, self._node_rate)
        out["memory"] = _memory(node.timestamp, working_set, node.memory_used,
                                usage=node.memory_total - node.memory_free,
                                available=node.memory_available)
        return out

    def summary(self) -> Obj:
        """The kubelet's ``/stats/summary``: the node and every pod with running containers."""
        pods: list[Obj] = []
        for ref, containers in self._pods():
            ts = max(c.usage.timestamp for c in containers)
            rates = [c.usage.nano_cores for c in containers]
            pod_rate = None if any(r is None for r in rates) else sum(
                r for r in rates if r is not None)
            entry: Obj = {"podRef": ref}
            start = self._sandbox_start.get(ref["uid"])
            if start:
                entry["startTime"] = rfc3339(start)
            entry["containers"] = [self._container_summary(c) for c in
                                   sorted(containers, key=lambda c: c.status.name)]
            entry["cpu"] = _cpu(ts, sum(c.usage.cpu_core_ns for c in containers), pod_rate)
            entry["memory"] = _memory(ts, sum(c.usage.working_set for c in containers),
                                      sum(c.usage.rss for c in containers))
            pods.append(entry)
        return {"node": self._node_summary(), "pods": pods}

    @staticmethod
    def _container_summary(c: _Container) -> Obj:
        out: Obj = {"name": c.status.labels[CONTAINER_NAME]}
        if c.status.started_at:
            out["startTime"] = rfc3339(c.status.started_at)
        out["cpu"] = _cpu(c.usage.timestamp, c.usage.cpu_core_ns, c.usage.nano_cores)
        out["memory"] = _memory(c.usage.timestamp, c.usage.working_set, c.usage.rss)
        return out

    def resource_metrics(self) -> bytes:
        """The kubelet's ``/metrics/resource`` in the Prometheus text format."""
        text = _Exposition()
        node = self._node
        text.family("node_cpu_usage_seconds_total", "counter",
                    "Cumulative cpu time consumed by the node in core-seconds")
        if node is not None:
            text.sample("node_cpu_usage_seconds_total", {}, node.cpu_core_ns / 1e9,
                        node.timestamp)
        text.family("node_memory_working_set_bytes", "gauge",
                    "Current working set of the node in bytes")
        if node is not None:
            text.sample("node_memory_working_set_bytes", {},
                        node.memory_total - node.memory_available, node.timestamp)
        pods = self._pods()
        text.family("container_cpu_usage_seconds_total", "counter",
                    "Cumulative cpu time consumed by the container in core-seconds")
        for ref, containers in pods:
            for c in containers:
                text.sample("container_cpu_usage_seconds_total", _labels(ref, c),
                            c.usage.cpu_core_ns / 1e9, c.usage.timestamp)
        text.family("container_memory_working_set_bytes", "gauge",
                    "Current working set of the container in bytes")
        for ref, containers in pods:
            for c in containers:
                text.sample("container_memory_working_set_bytes", _labels(ref, c),
                            c.usage.working_set, c.usage.timestamp)
        text.family("container_start_time_seconds", "gauge",
                    "Start time of the container since unix epoch in seconds")
        for ref, containers in pods:
            for c in containers:
                if c.status.started_at > 0:
                    text.sample("container_start_time_seconds", _labels(ref, c),
                                c.status.started_at, None)
        text.family("pod_cpu_usage_seconds_total", "counter",
                    "Cumulative cpu time consumed by the pod in core-seconds")
        for ref, containers in pods:
            text.sample("pod_cpu_usage_seconds_total", _pod_labels(ref),
                        sum(c.usage.cpu_core_ns for c in containers) / 1e9,
                        max(c.usage.timestamp for c in containers))
        text.family("pod_memory_working_set_bytes", "gauge",
                    "Current working set of the pod in bytes")
        for ref, containers in pods:
            text.sample("pod_memory_working_set_bytes", _pod_labels(ref),
                        sum(c.usage.working_set for c in containers),
                        max(c.usage.timestamp for c in containers))
        for name, stability in (("resource_scrape_error", "STABLE"), ("scrape_error", "ALPHA")):
            text.family(name, "gauge",
                        "1 if there was an error while getting container metrics, 0 otherwise",
                        stability=stability)
            text.sample(name, {}, 1 if self.scrape_error else 0, None)
        return text.render()


def _labels(ref: dict[str, str], c: _Container) -> dict[str, str]:
    return {"container": c.status.labels[CONTAINER_NAME], "namespace": ref["namespace"],
            "pod": ref["name"]}


def _pod_labels(ref: dict[str, str]) -> dict[str, str]:
    return {"namespace": ref["namespace"], "pod": ref["name"]}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)
                                  and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, *, stability: str = "STABLE"
               ) -> None:
        self._lines.append(f"# HELP {name} [{stability}] {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: dict[str, str], value: float,
               timestamp: float | None) -> None:
        rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        line = f"{name}{{{rendered}}} {_number(value)}" if rendered else f"{name} {_number(value)}"
        if timestamp is not None:
            line += f" {int(timestamp * 1000)}"
        self._lines.append(line)

    def render(self) -> bytes:
        return ("\n".join(self._lines) + "\n").encode()
