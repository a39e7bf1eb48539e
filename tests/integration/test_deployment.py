"""Deployments over a real registry: the Deployment and ReplicaSet controllers together, and a
stand-in kubelet that makes pods Running and Ready (a test double of the node)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.api import errors
from kubeling.api.jsoncopy import json_copy
from kubeling.client.informer import Informers, key_of
from kubeling.client.inprocess import InProcessClient
from kubeling.controllers.base import ControllerContext, ControllerOptions
from kubeling.controllers.deployment import DeploymentController
from kubeling.controllers.deployment.util import HASH_LABEL, REVISION
from kubeling.controllers.replicaset import ReplicaSetController
from kubeling.utils.clock import REAL, Clock, rfc3339
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

DEPLOY = kind("apps", "deployments")
RS = kind("apps", "replicasets")
PODS = kind("", "pods")
EVENTS = kind("", "events")
Obj = dict[str, Any]


def deployment(name: str = "web", *, replicas: int = 3, image: str = "nginx:1.26",
               strategy: Obj | None = None, **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": strategy or {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "nginx", "image": image}]}},
                     **spec}}


@dataclass
class StandInKubelet:
    """Marks every pod Running and Ready (while ``ready`` is set) and finishes deletions."""

    client: InProcessClient
    clock: Clock
    ready: bool = True
    seen: set[str] = field(default_factory=set)

    async def run(self, informers: Informers) -> None:
        inf = informers.informer(PODS)
        queue: asyncio.Queue[str] = asyncio.Queue()
        inf.add_handlers(add=lambda p: queue.put_nowait(key_of(p)),
                         update=lambda _o, p: queue.put_nowait(key_of(p)))
        while True:
            key = await queue.get()
            ns, _, name = key.partition("/")
            pod = inf.get(ns, name)
            if pod is None:
                continue
            try:
                await self._handle(pod)
            except errors.StatusError:
                queue.put_nowait(key)
                await asyncio.sleep(0.01)

    async def _handle(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            await self.client.delete(PODS, meta["namespace"], meta["name"],
                                     options={"gracePeriodSeconds": 0})
            return
        if not self.ready or (pod.get("status") or {}).get("phase") == "Running":
            return
        new = json_copy(pod)
        now = rfc3339(self.clock.now())
        new["status"] = {"phase": "Running", "startTime": now, "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]}
        await self.client.update(PODS, new, subresource="status")


@dataclass
class Env:
    client: InProcessClient
    informers: Informers
    kubelet: StandInKubelet
    deployments: DeploymentController

    async def deploy(self, name: str = "web") -> Obj:
        return await self.client.get(DEPLOY, "default", name)

    async def rss(self, name: str = "web") -> list[Obj]:
        items = (await self.client.list(RS, "default")).items
        return sorted((rs for rs in items if rs["metadata"]["name"].startswith(name + "-")),
                      key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))

    async def pods(self) -> list[Obj]:
        return (await self.client.list(PODS, "default")).items

    async def patch(self, patch: Obj, name: str = "web") -> Obj:
        return await self.client.patch(DEPLOY, "default", name, patch)

    async def rolled_out(self, name: str = "web") -> bool:
        d = await self.deploy(name)
        st = d.get("status") or {}
        want = d["spec"]["replicas"]
        return (st.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and st.get("updatedReplicas", 0) == want and st.get("replicas", 0) == want
                and st.get("availableReplicas", 0) == want)

    async def events(self, reason: str) -> list[str]:
        await self.deployments.recorder.flush()
        items = (await self.client.list(EVENTS, "default")).items
        return [e["message"] for e in sorted(items, key=lambda e: e["metadata"]["name"])
                if e["reason"] == reason]


@asynccontextmanager
async def cluster(tmp_path: Path, *, clock: Clock = REAL) -> AsyncIterator[Env]:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        infs = Informers(c, clock=clock)
        ctx = ControllerContext(c, infs, clock, ControllerOptions(workers=2))
        dc = DeploymentController(ctx)
        rsc = ReplicaSetController(ctx)
        kubelet = StandInKubelet(c, clock)
        infs.informer(PODS)
        infs.start()
        tasks = [spawn(dc.run(), name="test-deployment"), spawn(rsc.run(), name="test-rs"),
                 spawn(kubelet.run(infs), name="test-kubelet")]
        try:
            yield Env(c, infs, kubelet, dc)
        finally:
            for t in tasks:
                t.cancel()
            await infs.stop()


async def test_create_rolls_out_with_hash_named_replica_set(tmp_path: Path) -> None:
    async with cluster(tmp_path) as env:
        await env.client.create(DEPLOY, "default", deployment())
        await wait_for_async("rollout", env.rolled_out)
        d = await env.deploy()
        (rs,) = await env.rss()
        hash_ = rs["metadata"]["labels"][HASH_LABEL]
        assert rs["metadata"]["name"] == f"web-{hash_}"
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: hash_}
        assert rs["metadata"]["annotations"][REVISION] == "1"
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "4"
        assert d["metadata"]["annotations"][REVISION] == "1"
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert conds["Progressing"]["message"] == \
            f'ReplicaSet "web-{hash_}" has successfully progressed.'
        assert d["status"]["readyReplicas"] == 3
        pods = await env.pods()
        assert len(pods) == 3 and all(p["metadata"]["labels"][HASH_LABEL] == hash_ for p in pods)
        assert await env.events("ScalingReplicaSet") == \
            [f"Scaled up replica set web-{hash_} from 0 to 3"]


async def test_rolling_update_max_unavailable_zero_observed_event_by_event(
        tmp_path: Path) -> None:
    async with cluster(tmp_path) as env:
        strategy = {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        await env.client.create(DEPLOY, "default", deployment(replicas=4, strategy=strategy))
        await wait_for_async("first rollout", env.rolled_out)
        watcher = env.informers.informer(PODS)
        violations: list[str] = []
        peak = [0]

        def check(*_: Obj) -> None:
            live = [p for p in watcher.list("default")
                    if not p["metadata"].get("deletionTimestamp")]
            ready = [p for p in live if (p.get("status") or {}).get("phase") == "Running"]
            peak[0] = max(peak[0], len(live))
            if len(ready) < 4:
                violations.append(f"{len(ready)} ready pods")
            if len(live) > 5:
                violations.append(f"{len(live)} pods")

        watcher.add_handlers(add=check, update=check, delete=check)
        await env.patch({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"}]}}}})
        await wait_for_async("second rollout", env.rolled_out, timeout=20)
        old, new = await env.rss()
        assert old["spec"]["replicas"] == 0 and new["spec"]["replicas"] == 4
        assert new["metadata"]["annotations"][REVISION] == "2"
        await wait_for_async("old pods gone", lambda: _images(env, "nginx:1.27", 4))
        assert peak[0] == 5, "the surge pod was never observed"
        assert violations == []


async def _images(env: Env, image: str, n: int) -> bool:
    pods = await env.pods()
    return len(pods) == n and all(p["spec"]["containers"][0]["image"] == image for p in pods)


async def test_recreate_removes_every_old_pod_before_creating_new_ones(tmp_path: Path) -> None:
    async with cluster(tmp_path) as env:
        await env.client.create(DEPLOY, "default",
                                deployment(strategy={"type": "Recreate"}))
        await wait_for_async("first rollout", env.rolled_out)
        watcher = env.informers.informer(PODS)
        mixed: list[set[str]] = []

        def check(*_: Obj) -> None:
            images = {p["spec"]["containers"][0]["image"] for p in watcher.list("default")}
            if len(images) > 1:
                mixed.append(images)

        watcher.add_handlers(add=check, update=check, delete=check)
        await env.patch({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"}]}}}})
        await wait_for_async("second rollout", env.rolled_out)
        await wait_for_async("new pods only", lambda: _images(env, "nginx:1.27", 3))
        assert mixed == []
        old, new = await env.rss()
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)
        scaled = await env.events("ScalingReplicaSet")
        assert scaled[1:] == [f"Scaled down replica set {old['metadata']['name']} from 3 to 0",
                              f"Scaled up replica set {new['metadata']['name']} from 0 to 3"]


async def test_progress_deadline_exceeded_when_pods_never_become_ready(tmp_path: Path) -> None:
    async with cluster(tmp_path) as env:
        env.kubelet.ready = False
        await env.client.create(DEPLOY, "default",
                                deployment(replicas=2, progressDeadlineSeconds=1))

        async def timed_out() -> Obj | None:
            d = await env.deploy()
            for c in (d.get("status") or {}).get("conditions") or ():
                if c["type"] == "Progressing" and c["status"] == "False":
                    return c
            return None

        cond = await wait_for_async("ProgressDeadlineExceeded", timed_out, timeout=8)
        assert isinstance(cond, dict)
        (rs,) = await env.rss()
        assert cond["reason"] == "ProgressDeadlineExceeded"
        assert cond["message"] == \
            f'ReplicaSet "{rs["metadata"]["name"]}" has timed out progressing.'
        d = await env.deploy()
        avail = next(c for c in d["status"]["conditions"] if c["type"] == "Available")
        assert (avail["status"], avail["reason"]) == ("False", "MinimumReplicasUnavailable")
        assert d["status"]["unavailableReplicas"] == 2


async def test_undo_by_template_reuses_the_old_replica_set_as_a_new_revision(
        tmp_path: Path) -> None:
    async with cluster(tmp_path) as env:
        await env.client.create(DEPLOY, "default", deployment(replicas=2))
        await wait_for_async("first rollout", env.rolled_out)
        first = (await env.rss())[0]
        await env.patch({"metadata": {"annotations": {"kubernetes.io/change-cause": "v2"}},
                         "spec": {"template": {"spec": {"containers": [
                             {"name": "nginx", "image": "nginx:1.27"}]}}}})
        await wait_for_async("second rollout", env.rolled_out)
        # what `kubectl rollout undo` sends: the old revision's template, hash label removed
        template = json_copy(first["spec"]["template"])
        del template["metadata"]["labels"][HASH_LABEL]
        await env.client.patch(DEPLOY, "default", "web", [
            {"op": "replace", "path": "/spec/template", "value": template}], patch_type="json")
        await wait_for_async("rollback", env.rolled_out)
        await wait_for_async("two replica sets, first reused", lambda: _revisions(env, ["2", "3"]))
        rss = await env.rss()
        reused = rss[-1]
        assert reused["metadata"]["uid"] == first["metadata"]["uid"]
        assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] \
            == "1"
        assert rss[0]["metadata"]["annotations"]["kubernetes.io/change-cause"] == "v2"
        assert (await env.deploy())["metadata"]["annotations"][REVISION] == "3"
        await wait_for_async("old image gone", lambda: _images(env, "nginx:1.26", 2))


async def _revisions(env: Env, want: list[str]) -> bool:
    return [rs["metadata"]["annotations"][REVISION] for rs in await env.rss()] == want


async def test_paused_deployment_scales_but_does_not_roll_out(tmp_path: Path) -> None:
    async with cluster(tmp_path) as env:
        await env.client.create(DEPLOY, "default", deployment(replicas=2))
        await wait_for_async("first rollout", env.rolled_out)
        await env.patch({"spec": {"paused": True}})
        await env.patch({"spec": {"replicas": 4, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"}]}}}})

        async def paused_scaled() -> bool:
            d = await env.deploy()
            conds = {c["type"]: c for c in d["status"].get("conditions") or ()}
            return (d["status"].get("observedGeneration") == d["metadata"]["generation"]
                    and conds["Progressing"]["reason"] == "DeploymentPaused"
                    and await _images(env, "nginx:1.26", 4))

        await wait_for_async("paused deployment scaled to 4", paused_scaled)
        assert len(await env.rss()) == 1
        await env.patch({"spec": {"paused": False}})
        await wait_for_async("rollout after resume", env.rolled_out)
        await wait_for_async("new image", lambda: _images(env, "nginx:1.27", 4))
        assert len(await env.rss()) == 2


async def test_revision_history_limit_deletes_the_oldest_idle_replica_sets(
        tmp_path: Path) -> None:
    async with cluster(tmp_path) as env:
        await env.client.create(DEPLOY, "default",
                                deployment(replicas=1, revisionHistoryLimit=1))
        for i in range(7, 10):
            await wait_for_async("rollout", env.rolled_out)
            await env.patch({"spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": f"nginx:1.2{i}"}]}}}})
        await wait_for_async("last rollout", env.rolled_out)
        await wait_for_async("one old replica set kept", lambda: _revisions(env, ["3", "4"]))


async def test_scaling_mid_rollout_is_proportional(tmp_path: Path) -> None:
    async with cluster(tmp_path) as env:
        env.kubelet.ready = True
        strategy = {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 3}}
        await env.client.create(DEPLOY, "default", deployment(replicas=10, strategy=strategy))
        await wait_for_async("first rollout", env.rolled_out)
        env.kubelet.ready = False
        await env.patch({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"}]}}}})
        await wait_for_async("surge used", lambda: _sizes(env, [10, 3]))
        await env.patch({"spec": {"replicas": 20}})
        # 13 = 10 + 3 surge grows to 23 = 20 + 3 surge: 10*23/13 -> 18 and 3*23/13 -> 5
        await wait_for_async("proportional scale-up", lambda: _sizes(env, [18, 5]))
        scaled = await env.events("ScalingReplicaSet")
        for rs, (a, b) in zip(await env.rss(), [(10, 18), (3, 5)], strict=True):
            assert f"Scaled up replica set {rs['metadata']['name']} from {a} to {b}" in scaled


async def _sizes(env: Env, want: list[int]) -> bool:
    return [rs["spec"]["replicas"] for rs in await env.rss()] == want
