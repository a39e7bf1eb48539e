"""The DaemonSet controller over a real registry.

A stand-in for the scheduler and the node agents (the test's ``fake_nodes``
task) binds each daemon pod to the node it is pinned to, reports it Running
and Ready, and finishes the deletion of terminating pods, as a kubelet would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.api import errors
from kubeling.api.jsoncopy import json_copy
from kubeling.client.informer import Informers
from kubeling.client.inprocess import InProcessClient
from kubeling.controllers import daemonset_util as du
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.daemonset import DaemonSetController
from kubeling.utils.clock import REAL, rfc3339
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, node, running_registry
from tests.cluster import wait_for_async

DS = kind("apps", "daemonsets")
PODS = kind("", "pods")
NODES = kind("", "nodes")
REVISIONS = kind("apps", "controllerrevisions")


@dataclass
class Env:
    c: InProcessClient
    ds: DaemonSetController
    unavailable_seen: list[int] = field(default_factory=list)

    async def pods(self) -> list[dict[str, Any]]:
        return (await self.c.list(PODS, "default", label_selector="app=agent")).items

    async def by_node(self) -> dict[str, dict[str, Any]]:
        return {du.target_node(p) or "": p for p in await self.pods()
                if not p["metadata"].get("deletionTimestamp")}

    async def status(self) -> dict[str, Any]:
        return (await self.c.get(DS, "default", "agent")).get("status") or {}

    async def update(self, **changes: Any) -> None:
        ds = json_copy(await self.c.get(DS, "default", "agent"))
        for k, v in changes.items():
            ds["spec"][k] = v
        await self.c.update(DS, ds)

    async def set_image(self, image: str) -> None:
        ds = json_copy(await self.c.get(DS, "default", "agent"))
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = image
        await self.c.update(DS, ds)


async def fake_nodes(e: Env) -> None:
    """Bind, run and finish deleting daemon pods, and note how many nodes lack a ready pod."""
    while True:
        for p in await e.pods():
            meta = p["metadata"]
            try:
                if meta.get("deletionTimestamp"):
                    await e.c.delete(PODS, "default", meta["name"],
                                     options={"gracePeriodSeconds": 0})
                elif not p["spec"].get("nodeName"):
                    await e.c.bind("default", meta["name"], du.target_node(p) or "")
                elif (p.get("status") or {}).get("phase") != "Running":
                    p = json_copy(p)
                    p["status"] = {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True",
                         "lastTransitionTime": rfc3339(REAL.now())}]}
                    await e.c.update(PODS, p, subresource="status")
            except errors.StatusError:
                pass
        nodes = {n["metadata"]["name"] for n in (await e.c.list(NODES)).items}
        ready = {du.target_node(p) for p in await e.pods()
                 if du.is_ready(p) and not p["metadata"].get("deletionTimestamp")}
        e.unavailable_seen.append(len(nodes - ready))
        await asyncio.sleep(0.02)


@asynccontextmanager
async def env(tmp_path: Path, nodes: int = 3) -> AsyncIterator[Env]:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "daemonset-test")
        for i in range(nodes):
            await c.create(NODES, None, node(f"node-{i}"))
        informers = Informers(c)
        ctrl = DaemonSetController(ControllerContext(c, informers))
        informers.start()
        e = Env(c, ctrl)
        tasks = [spawn(ctrl.run(2), name="test-ds"), spawn(fake_nodes(e), name="test-nodes")]
        try:
            yield e
        finally:
            for t in tasks:
                t.cancel()
            await informers.stop()


def daemonset(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "a", "image": "agent:1"}]}},
                     **spec}}


async def until(what: str, fn: Any, timeout: float = 10.0) -> Any:
    return await wait_for_async(what, fn, timeout=timeout)


async def _status_is(e: Env, **want: int) -> bool:
    s = await e.status()
    return all(s.get(k, 0) == v for k, v in want.items())


async def test_one_pod_per_node_following_nodes(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(DS, "default", daemonset())
        await until("three ready pods", lambda: _status_is(
            e, desiredNumberScheduled=3, currentNumberScheduled=3, numberReady=3,
            numberAvailable=3, updatedNumberScheduled=3, numberMisscheduled=0))
        pods = await e.by_node()
        assert sorted(pods) == ["node-0", "node-1", "node-2"]
        pod = pods["node-1"]
        assert pod["spec"]["nodeName"] == "node-1"
        assert pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]
        keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
        assert {("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/unschedulable", "NoSchedule")} <= keys
        assert pod["metadata"]["labels"]["controller-revision-hash"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
        status = await e.status()
        assert status["observedGeneration"] == 1

        await e.c.create(NODES, None, node("node-3"))
        await until("a pod on the new node", lambda: _status_is(
            e, desiredNumberScheduled=4, numberReady=4))
        await e.c.delete(NODES, None, "node-0")
        await until("the pod of the deleted node gone", lambda: _nodes_are(
            e, ["node-1", "node-2", "node-3"]))
        await until("status follows", lambda: _status_is(
            e, desiredNumberScheduled=3, numberReady=3))


async def _nodes_are(e: Env, names: list[str]) -> bool:
    return sorted(du.target_node(p) or "" for p in await e.pods()) == names


async def test_node_selector_and_taints(tmp_path: Path) -> None:
    async with env(tmp_path, nodes=0) as e:
        await e.c.create(NODES, None, node("plain"))
        await e.c.create(NODES, None, node("gpu", labels={"gpu": "yes"}))
        await e.c.create(NODES, None, node("tainted-gpu", labels={"gpu": "yes"}, taints=[
            {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]))
        await e.c.create(NODES, None, node("cordoned-gpu", labels={"gpu": "yes"}, taints=[
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]))
        tmpl = daemonset()["spec"]["template"]
        tmpl["spec"]["nodeSelector"] = {"gpu": "yes"}
        await e.c.create(DS, "default", daemonset(template=tmpl))
        await until("pods on eligible nodes", lambda: _nodes_are(e, ["cordoned-gpu", "gpu"]))
        await until("desired 2", lambda: _status_is(e, desiredNumberScheduled=2, numberReady=2))
        # a NoExecute taint the pod does not tolerate evicts it
        n = json_copy(await e.c.get(NODES, None, "gpu"))
        n["spec"]["taints"] = [{"key": "maintenance", "effect": "NoExecute"}]
        await e.c.update(NODES, n)
        await until("the pod leaves the NoExecute node", lambda: _nodes_are(e, ["cordoned-gpu"]))
        await until("desired 1", lambda: _status_is(e, desiredNumberScheduled=1))


async def test_rolling_update_max_unavailable(tmp_path: Path) -> None:
    async with env(tmp_path, nodes=4) as e:
        await e.c.create(DS, "default", daemonset())
        await until("four ready", lambda: _status_is(e, numberAvailable=4))
        first = {p["metadata"]["labels"]["controller-revision-hash"] for p in await e.pods()}
        e.unavailable_seen.clear()
        await e.set_image("agent:2")
        await until("all updated and available", lambda: _status_is(
            e, updatedNumberScheduled=4, numberAvailable=4, observedGeneration=2), timeout=20)
        await until("old pods gone", lambda: _images(e, {"agent:2"}))
        hashes = {p["metadata"]["labels"]["controller-revision-hash"] for p in await e.pods()}
        assert len(hashes) == 1 and hashes != first
        assert max(e.unavailable_seen) <= 1, e.unavailable_seen
        revisions = (await e.c.list(REVISIONS, "default")).items
        assert sorted(r["revision"] for r in revisions) == [1, 2]
        assert {r["metadata"]["labels"]["controller-revision-hash"] for r in revisions} == \
            first | hashes


async def test_rolling_update_with_surge_keeps_every_node_served(tmp_path: Path) -> None:
    async with env(tmp_path, nodes=3) as e:
        await e.c.create(DS, "default", daemonset(updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
        await until("three ready", lambda: _status_is(e, numberAvailable=3))
        await asyncio.sleep(0.1)
        e.unavailable_seen.clear()
        await e.set_image("agent:2")
        await until("all updated", lambda: _status_is(
            e, updatedNumberScheduled=3, numberAvailable=3), timeout=20)
        await until("old pods gone", lambda: _images(e, {"agent:2"}))
        assert max(e.unavailable_seen) == 0, e.unavailable_seen


async def test_on_delete_waits_for_the_user(tmp_path: Path) -> None:
    async with env(tmp_path, nodes=2) as e:
        await e.c.create(DS, "default", daemonset(updateStrategy={"type": "OnDelete"}))
        await until("two ready", lambda: _status_is(e, numberAvailable=2))
        await e.set_image("agent:2")
        await until("observed", lambda: _status_is(e, observedGeneration=2,
                                                   updatedNumberScheduled=0))
        await asyncio.sleep(0.2)
        assert await _images(e, {"agent:1"})
        victim = (await e.by_node())["node-0"]
        await e.c.delete(PODS, "default", victim["metadata"]["name"])
        await until("node-0 runs the new template", lambda: _image_on(e, "node-0", "agent:2"))
        assert await _image_on(e, "node-1", "agent:1")


async def _images(e: Env, images: set[str]) -> bool:
    return {p["spec"]["containers"][0]["image"] for p in await e.pods()} == images


async def _image_on(e: Env, node_name: str, image: str) -> bool:
    pod = (await e.by_node()).get(node_name)
    return pod is not None and pod["spec"]["containers"][0]["image"] == image
