"""The whole scheduler over the in-process client against a real registry (SQLite)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from kubeling.client.informer import Informers
from kubeling.scheduler import Scheduler, SchedulerOptions
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, node, running_registry

PODS = kind("", "pods")
NODES = kind("", "nodes")
EVENTS = kind("", "events")


def pod(name: str, cpu: str = "100m", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                                     "resources": {"requests": {"cpu": cpu}}}], **spec}}


async def until(what: str, fn: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await fn()
        if got:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_binds_pending_pods_and_reports_unschedulable(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "scheduler")
        for i in range(3):
            await c.create(NODES, None, node(f"n{i}", cpu="1"))
        informers = Informers(c)
        sched = Scheduler(c, informers, options=SchedulerOptions(seed=1))
        task = spawn(sched.run(), name="scheduler")
        for i in range(4):
            await c.create(PODS, "default", pod(f"p{i}", cpu="400m"))
        await c.create(PODS, "default", pod("big", cpu="2"))
        await c.create(PODS, "default", pod("other", schedulerName="someone-else"))

        async def bound() -> bool:
            items = (await c.list(PODS, "default")).items
            return sum(1 for p in items if p["spec"].get("nodeName")) == 4
        await until("4 pods bound", bound)
        items = {p["metadata"]["name"]: p for p in (await c.list(PODS, "default")).items}
        assert len({items[f"p{i}"]["spec"]["nodeName"] for i in range(4)}) >= 2
        assert not items["other"]["spec"].get("nodeName")

        async def big_condition() -> Any:
            p = await c.get(PODS, "default", "big")
            conds = [x for x in p.get("status", {}).get("conditions") or ()
                     if x["type"] == "PodScheduled"]
            return conds[0] if conds else None
        cond = await until("PodScheduled condition on big", big_condition)
        assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
        assert cond["message"] == (
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
            "3 Preemption is not helpful for scheduling.")

        async def events() -> Any:
            evs = (await c.list(EVENTS, "default")).items
            reasons = [(e["reason"], e["involvedObject"]["name"], e["message"]) for e in evs]
            return reasons if any(r[0] == "FailedScheduling" for r in reasons) and sum(
                1 for r in reasons if r[0] == "Scheduled") == 4 else None
        reasons = await until("events", events)
        scheduled = next(r for r in reasons if r[0] == "Scheduled" and r[1] == "p0")
        where = items["p0"]["spec"]["nodeName"]
        assert scheduled[2] == f"Successfully assigned default/p0 to {where}"

        # A bigger node joins: the unschedulable pod is retried on the node event.
        await c.create(NODES, None, node("huge", cpu="8"))

        async def big_bound() -> Any:
            return (await c.get(PODS, "default", "big"))["spec"].get("nodeName")
        assert await until("big bound after a node joined", big_bound) == "huge"
        assert sched.healthy()
        task.cancel()
        await informers.stop()
