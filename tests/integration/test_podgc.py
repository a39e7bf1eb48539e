"""PodGC: pods of a vanished node and unscheduled terminating pods are deleted."""

from __future__ import annotations

from pathlib import Path

from kubeling.client.informer import Informers
from kubeling.controllers.base import ControllerContext, ControllerOptions
from kubeling.controllers.podgc import QUARANTINE, PodGCController
from kubeling.utils.clock import FakeClock
from tests.apiharness import client, kind, node, running_registry
from tests.cluster import wait_for_async

PODS = kind("", "pods")
NODES = kind("", "nodes")


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def test_pods_of_a_deleted_node_go_after_the_quarantine(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        clock = FakeClock()
        informers = Informers(c, clock=clock)
        gc = PodGCController(ControllerContext(c, informers, clock,
                                               ControllerOptions(terminated_pod_gc_threshold=1)))
        informers.start()
        await c.create(NODES, None, node("n1"))
        await c.create(PODS, "default", pod("on-n1"))
        await c.bind("default", "on-n1", "n1")
        await informers.wait_synced()
        await c.delete(NODES, None, "n1")
        await wait_for_async("node gone from the informer",
                             lambda: gc.nodes.get(None, "n1") is None)
        assert await gc.gc_once() == 0  # quarantine: the node may be re-registering
        await clock.advance(QUARANTINE + 1)
        assert await gc.gc_once() == 1
        await wait_for_async("pod of the deleted node deleted",
                             lambda: gc.pods.get("default", "on-n1") is None)
        await informers.stop()


async def test_terminated_pods_beyond_the_threshold_go_oldest_first(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        clock = FakeClock()
        informers = Informers(c, clock=clock)
        gc = PodGCController(ControllerContext(c, informers, clock,
                                               ControllerOptions(terminated_pod_gc_threshold=1)))
        informers.start()
        for name in ("first", "second"):
            created = await c.create(PODS, "default", pod(name))
            done = {**created, "status": {**created["status"], "phase": "Succeeded"}}
            await c.update(PODS, done, subresource="status")
        await wait_for_async("both pods Succeeded in the informer",
                             lambda: len([p for p in gc.pods.list()
                                          if p["status"].get("phase") == "Succeeded"]) == 2)
        assert await gc.gc_once() == 1
        await wait_for_async("one pod left", lambda: len(gc.pods) == 1)
        assert gc.pods.keys() == ["default/second"]
        await informers.stop()
