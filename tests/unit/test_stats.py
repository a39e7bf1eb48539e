"""Resource usage: CPU rates from cumulative samples, the summary and /metrics/resource shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from prometheus_client.parser import text_string_to_metric_families

from kubeling.kubelet.context import (
    CONTAINER_NAME,
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    KubeletContext,
    KubeletOptions,
)
from kubeling.kubelet.stats import NodeSample, StatsProvider
from kubeling.runtime.protocol import (
    ContainerState,
    ContainerStats,
    ContainerStatus,
    RuntimeFailure,
    SandboxState,
    SandboxStatus,
)
from kubeling.utils.clock import FakeClock
from kubeling.utils.tasks import cancel_all

T0 = 1_700_000_000.0
GIB = 1 << 30


class FakeRuntime:
    """Containers whose cumulative CPU and memory the test sets before each sample."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.containers: dict[str, ContainerStatus] = {}
        self.usage: dict[str, tuple[int, int]] = {}  # id → (cpu ns, working set)
        self.fail = False

    def add(self, cid: str, pod: str, container: str, *, state: ContainerState =
            ContainerState.RUNNING) -> None:
        labels = {POD_NAME: pod, POD_NAMESPACE: "default", POD_UID: f"uid-{pod}",
                  CONTAINER_NAME: container}
        self.containers[cid] = ContainerStatus(
            id=cid, sandbox_id=f"sb-{pod}", name=container, attempt=0, state=state,
            image="busybox", image_ref="/bin/busybox", created_at=T0, started_at=T0 + 1,
            labels=labels)
        self.usage[cid] = (0, 0)

    async def list_container_stats(self) -> list[ContainerStats]:
        if self.fail:
            raise RuntimeFailure("Unavailable", "runtime gone")
        return [ContainerStats(container_id=cid, timestamp=self.clock.now(),
                               cpu_usage_core_ns=cpu, memory_working_set_bytes=mem,
                               memory_rss_bytes=mem // 2)
                for cid, (cpu, mem) in self.usage.items()]

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return list(self.containers.values())

    async def list_pod_sandboxes(self) -> list[SandboxStatus]:
        pods = {c.labels[POD_NAME] for c in self.containers.values()}
        return [SandboxStatus(id=f"sb-{p}", uid=f"uid-{p}", namespace="default", name=p,
                              attempt=0, state=SandboxState.READY, created_at=T0)
                for p in pods]


class Host:
    def __init__(self) -> None:
        self.cpu_ns = 0

    def __call__(self, now: float) -> NodeSample:
        return NodeSample(timestamp=now, cpu_core_ns=self.cpu_ns, memory_total=8 * GIB,
                          memory_available=6 * GIB, memory_used=GIB, memory_free=5 * GIB)


def provider(tmp_path: Path) -> tuple[StatsProvider, FakeRuntime, Host, FakeClock]:
    clock = FakeClock(T0)
    runtime = FakeRuntime(clock)
    ctx = KubeletContext(client=cast(Any, None), informers=cast(Any, None),
                         runtime=cast(Any, runtime),
                         options=KubeletOptions(node_name="node-a", root_dir=tmp_path,
                                                stats_interval=10.0),
                         recorder=cast(Any, None), objects=cast(Any, None), clock=clock)
    host = Host()
    return StatsProvider(ctx, host=host), runtime, host, clock


def pod_entry(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in summary["pods"] if p["podRef"]["name"] == name)


async def test_cpu_rate_from_cumulative_samples(tmp_path: Path) -> None:
    stats, runtime, host, clock = provider(tmp_path)
    runtime.add("c1", "web", "app")
    runtime.add("c2", "web", "sidecar")
    runtime.usage.update({"c1": (1_000_000_000, 50_000_000), "c2": (0, 10_000_000)})
    host.cpu_ns = 100_000_000_000
    stats.start()
    await clock.advance(0)
    first = stats.summary()
    web = pod_entry(first, "web")
    assert "usageNanoCores" not in web["containers"][0]["cpu"]  # one sample: no rate yet
    assert web["containers"][0]["cpu"]["usageCoreNanoSeconds"] == 1_000_000_000

    # 10 s later app used 5 more CPU-seconds (half a core), the sidecar 1 (a tenth).
    runtime.usage.update({"c1": (6_000_000_000, 60_000_000), "c2": (1_000_000_000, 10_000_000)})
    host.cpu_ns = 120_000_000_000
    await clock.advance(10)
    summary = stats.summary()
    web = pod_entry(summary, "web")
    app, sidecar = web["containers"]
    assert (app["name"], sidecar["name"]) == ("app", "sidecar")
    assert app["cpu"]["usageNanoCores"] == 500_000_000
    assert sidecar["cpu"]["usageNanoCores"] == 100_000_000
    assert web["cpu"]["usageNanoCores"] == 600_000_000
    assert web["cpu"]["usageCoreNanoSeconds"] == 7_000_000_000
    assert web["memory"]["workingSetBytes"] == 70_000_000
    assert app["memory"] == {"time": "2023-11-14T22:13:30Z", "usageBytes": 60_000_000,
                             "workingSetBytes": 60_000_000, "rssBytes": 30_000_000}
    assert summary["node"]["cpu"]["usageNanoCores"] == 2_000_000_000
    await stats.stop()
    await cancel_all()


async def test_restarted_container_has_no_rate_until_its_second_sample(tmp_path: Path) -> None:
    stats, runtime, _, clock = provider(tmp_path)
    runtime.add("c1", "web", "app")
    runtime.usage["c1"] = (5_000_000_000, 1)
    await stats.sample()
    del runtime.containers["c1"], runtime.usage["c1"]
    runtime.add("c1b", "web", "app")
    runtime.usage["c1b"] = (100_000_000, 1)
    clock._now += 10
    await stats.sample()
    app = pod_entry(stats.summary(), "web")["containers"][0]
    assert "usageNanoCores" not in app["cpu"]
    runtime.usage["c1b"] = (300_000_000, 1)
    clock._now += 10
    await stats.sample()
    app = pod_entry(stats.summary(), "web")["containers"][0]
    assert app["cpu"]["usageNanoCores"] == 20_000_000


async def test_summary_shape(tmp_path: Path) -> None:
    stats, runtime, _, _ = provider(tmp_path)
    runtime.add("c1", "web", "app")
    runtime.add("c3", "done", "job", state=ContainerState.EXITED)
    runtime.usage["c1"] = (2_000_000_000, 4096)
    await stats.sample()
    summary = stats.summary()
    node = summary["node"]
    assert node["nodeName"] == "node-a"
    assert node["cpu"] == {"time": "2023-11-14T22:13:20Z", "usageCoreNanoSeconds": 0}
    assert node["memory"] == {"time": "2023-11-14T22:13:20Z", "availableBytes": 6 * GIB,
                              "usageBytes": 3 * GIB, "workingSetBytes": 2 * GIB,
                              "rssBytes": GIB}
    assert [p["podRef"] for p in summary["pods"]] == [
        {"name": "web", "namespace": "default", "uid": "uid-web"}]  # exited: not counted
    web = summary["pods"][0]
    assert web["startTime"] == "2023-11-14T22:13:20Z"
    assert web["containers"][0]["startTime"] == "2023-11-14T22:13:21Z"
    assert set(web["containers"][0]) == {"name", "startTime", "cpu", "memory"}


async def test_resource_metrics(tmp_path: Path) -> None:
    stats, runtime, host, _ = provider(tmp_path)
    runtime.add("c1", "web", "app")
    runtime.add("c2", "web", "sidecar")
    runtime.usage.update({"c1": (1_500_000_000, 1000), "c2": (500_000_000, 24)})
    host.cpu_ns = 42_000_000_000
    await stats.sample()
    text = stats.resource_metrics().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in families.values() for s in f.samples}
    assert values[("node_cpu_usage_seconds_total", ())] == 42.0
    assert values[("node_memory_working_set_bytes", ())] == 2 * GIB
    app = (("container", "app"), ("namespace", "default"), ("pod", "web"))
    assert values[("container_cpu_usage_seconds_total", app)] == 1.5
    assert values[("container_memory_working_set_bytes", app)] == 1000
    assert values[("container_start_time_seconds", app)] == T0 + 1
    pod = (("namespace", "default"), ("pod", "web"))
    assert values[("pod_cpu_usage_seconds_total", pod)] == 2.0
    assert values[("pod_memory_working_set_bytes", pod)] == 1024
    assert values[("scrape_error", ())] == 0
    assert values[("resource_scrape_error", ())] == 0
    assert "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\"," \
           "pod=\"web\"} 1.5 1700000000000" in text
    assert families["container_cpu_usage_seconds"].type == "counter"  # family name sans _total

    runtime.fail = True
    await stats.sample()
    text = stats.resource_metrics().decode()
    assert "\nscrape_error 1\n" in text
