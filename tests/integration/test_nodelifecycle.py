"""Node lifecycle on a fake clock: a silent node turns Unknown, is tainted, loses its pods."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeling.api import errors
from kubeling.api.jsoncopy import json_copy
from kubeling.client.informer import Informers
from kubeling.client.inprocess import InProcessClient
from kubeling.controllers.base import ControllerContext, ControllerOptions
from kubeling.controllers.nodelifecycle import NodeLifecycleController
from kubeling.utils.clock import FakeClock, rfc3339
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, node, running_registry
from tests.cluster import wait_for_async

NODES = kind("", "nodes")
PODS = kind("", "pods")
LEASES = kind("coordination.k8s.io", "leases")
EVENTS = kind("", "events")
UNREACHABLE = "node.kubernetes.io/unreachable"


def micro(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def renew(c: InProcessClient, name: str, clock: FakeClock) -> None:
    lease: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": name, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                      "renewTime": micro(clock.now())}}
    try:
        current = await c.get(LEASES, "kube-node-lease", name)
    except errors.StatusError:
        await c.create(LEASES, "kube-node-lease", lease)
        return
    lease["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    await c.update(LEASES, lease)


async def running_pod(c: InProcessClient, name: str, node_name: str,
                      tolerations: list[dict[str, Any]]) -> None:
    await c.create(PODS, "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "tolerations": tolerations}})
    await c.bind("default", name, node_name)
    pod = json_copy(await c.get(PODS, "default", name))
    pod["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}
    await c.update(PODS, pod, subresource="status")


def tolerate_unreachable(seconds: int | None) -> list[dict[str, Any]]:
    t: dict[str, Any] = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return [t]


async def test_silent_node_is_tainted_and_its_pods_evicted(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "kubelet")
        clock = FakeClock()
        infs = Informers(client(reg, "controller-manager"), clock=clock)
        opts = ControllerOptions(node_monitor_period=5, node_monitor_grace_period=40)
        ctl = NodeLifecycleController(ControllerContext(infs.client, infs, clock, opts))
        for n in ("dead", "alive"):
            await c.create(NODES, None, node(n))
            await renew(c, n, clock)
        await running_pod(c, "short", "dead", tolerate_unreachable(30))
        await running_pod(c, "forever", "dead", tolerate_unreachable(None))
        await running_pod(c, "elsewhere", "alive", tolerate_unreachable(0))
        infs.start()
        spawn(ctl.run(workers=2), name="nodelifecycle-under-test")
        await infs.wait_synced()

        async def tick(seconds: float) -> None:
            for _ in range(int(seconds // 5)):
                await renew(c, "alive", clock)
                await clock.advance(5)
                await asyncio.sleep(0.02)

        await tick(35)
        dead = await c.get(NODES, None, "dead")
        assert {x["type"]: x["status"] for x in dead["status"]["conditions"]} == {"Ready": "True"}
        assert not dead["spec"].get("taints")

        await tick(10)

        async def dead_tainted() -> Any:
            n = await c.get(NODES, None, "dead")
            return n if n["spec"].get("taints") else None

        await wait_for_async("the silent node to be tainted", dead_tainted)
        dead = await c.get(NODES, None, "dead")
        conds = {x["type"]: x for x in dead["status"]["conditions"]}
        assert {t: x["status"] for t, x in conds.items()} == {
            "Ready": "Unknown", "MemoryPressure": "Unknown", "DiskPressure": "Unknown",
            "PIDPressure": "Unknown"}
        assert conds["Ready"]["reason"] == "NodeStatusUnknown"
        assert conds["Ready"]["message"] == "Kubelet stopped posting node status."
        assert conds["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
        assert sorted((t["key"], t["effect"]) for t in dead["spec"]["taints"]) == [
            (UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")]
        alive = await c.get(NODES, None, "alive")
        assert not alive["spec"].get("taints")

        async def pod_ready(name: str) -> str:
            p = await c.get(PODS, "default", name)
            return next(x["status"] for x in p["status"]["conditions"] if x["type"] == "Ready")

        await wait_for_async("pods on the dead node marked not ready",
                             lambda: _equals(pod_ready("forever"), "False"))
        assert await pod_ready("elsewhere") == "True"

        async def terminating(name: str) -> bool:
            try:
                p = await c.get(PODS, "default", name)
            except errors.StatusError:
                return True
            return bool(p["metadata"].get("deletionTimestamp"))

        await tick(25)
        assert not await terminating("short")
        await tick(10)
        await wait_for_async("the pod to be evicted once its toleration ran out",
                             lambda: terminating("short"))
        p = await c.get(PODS, "default", "short")
        assert any(x["type"] == "DisruptionTarget" and x["reason"] == "DeletionByTaintManager"
                   for x in p["status"]["conditions"])
        assert not await terminating("forever")
        assert not await terminating("elsewhere")
        await ctl.recorder.flush()
        await ctl.eviction.recorder.flush()
        events = {(e["reason"], e["message"]) for e in (await c.list(EVENTS, "default")).items}
        assert ("TaintManagerEviction", "Marking for deletion Pod default/short") in events
        assert ("NodeNotReady", "Node is not ready") in events

        # The node comes back: it posts Ready with a fresh heartbeat, and the taints go.
        await renew(c, "dead", clock)
        back = json_copy(await c.get(NODES, None, "dead"))
        back["status"]["conditions"] = [{"type": "Ready", "status": "True",
                                         "reason": "KubeletReady",
                                         "lastHeartbeatTime": rfc3339(clock.now())}]
        await c.update(NODES, back, subresource="status")

        async def untainted() -> bool:
            return not (await c.get(NODES, None, "dead"))["spec"].get("taints")

        await tick(5)
        await wait_for_async("the recovered node to lose its taints", untainted)
        await infs.stop()


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_no_execute_taints_held_back_when_no_node_is_ready(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "kubelet")
        clock = FakeClock()
        infs = Informers(client(reg, "controller-manager"), clock=clock)
        opts = ControllerOptions(node_monitor_period=5, node_monitor_grace_period=10)
        ctl = NodeLifecycleController(ControllerContext(infs.client, infs, clock, opts))
        await c.create(NODES, None, node("only"))
        infs.start()
        spawn(ctl.run(workers=1), name="nodelifecycle-under-test")
        await infs.wait_synced()
        for _ in range(6):
            await clock.advance(5)
            await asyncio.sleep(0.02)

        async def unknown() -> Any:
            n = await c.get(NODES, None, "only")
            return n if n["status"]["conditions"][0]["status"] == "Unknown" and \
                n["spec"].get("taints") else None

        await wait_for_async("the lone node to turn Unknown", unknown)
        only = await c.get(NODES, None, "only")
        assert [(t["key"], t["effect"]) for t in only["spec"]["taints"]] == [
            (UNREACHABLE, "NoSchedule")]
        await infs.stop()
