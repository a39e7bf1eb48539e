"""The ReplicaSet and ReplicationController controllers over a real registry, in process.

No node agent runs here: where a test needs running, ready pods, a stand-in
kubelet (:func:`run_pod`) binds them and writes their status as a kubelet would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeling.api import errors
from kubeling.client.informer import Informers
from kubeling.client.inprocess import InProcessClient
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.replicaset import (
    ReplicaController,
    ReplicaSetController,
    ReplicationControllerController,
)
from kubeling.utils.clock import REAL, Clock, FakeClock, rfc3339
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

PODS = kind("", "pods")
RS = kind("apps", "replicasets")
RC = kind("", "replicationcontrollers")
EVENTS = kind("", "events")
NS = "default"

Obj = dict[str, Any]


def template(labels: dict[str, str]) -> Obj:
    return {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}


def replicaset(name: str, replicas: int, *, min_ready: int = 0,
               labels: dict[str, str] | None = None, owner: Obj | None = None) -> Obj:
    labels = labels or {"app": name}
    meta: Obj = {"name": name, "namespace": NS}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": labels}, "template": template(labels)}}


def bare_pod(name: str, labels: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}


@dataclass
class Env:
    c: InProcessClient
    ctrl: ReplicaController
    clock: Clock

    async def pods(self, **labels: str) -> list[Obj]:
        sel = ",".join(f"{k}={v}" for k, v in labels.items())
        items = (await self.c.list(PODS, NS, label_selector=sel)).items
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    async def owned(self, owner_kind: Any, name: str) -> list[Obj]:
        uid = (await self.c.get(owner_kind, NS, name))["metadata"]["uid"]
        return [p for p in await self.pods()
                if any(r.get("uid") == uid and r.get("controller")
                       for r in p["metadata"].get("ownerReferences") or ())]

    async def wait_owned(self, owner_kind: Any, name: str, count: int) -> list[Obj]:
        async def check() -> list[Obj] | None:
            pods = await self.owned(owner_kind, name)
            return pods if len(pods) == count else None
        found = await wait_for_async(f"{count} pods of {name}", check)
        assert isinstance(found, list)
        return found

    async def status(self, owner_kind: Any, name: str) -> Obj:
        return (await self.c.get(owner_kind, NS, name)).get("status") or {}

    async def events(self, name: str) -> list[tuple[str, str, str]]:
        await self.ctrl.recorder.flush()
        items = (await self.c.list(EVENTS, NS)).items
        return [(e["type"], e["reason"], e["message"]) for e in items
                if e["involvedObject"]["name"] == name]


@asynccontextmanager
async def running(tmp_path: Path, cls: type[ReplicaController] = ReplicaSetController, *,
                  clock: Clock = REAL, wrap: Any = None) -> AsyncIterator[Env]:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        api = wrap(c) if wrap is not None else c
        infs = Informers(api, clock=clock)
        ctrl = cls(ControllerContext(api, infs, clock))
        infs.start()
        task = spawn(ctrl.run(workers=2), name="test-replicaset-controller")
        await infs.wait_synced()
        try:
            yield Env(c, ctrl, clock)
        finally:
            task.cancel()
            await infs.stop()


async def run_pod(env: Env, pod: Obj, *, node: str = "node-a", ready: bool = True) -> None:
    """What a kubelet does: the pod runs on ``node`` and reports Ready since now."""
    meta = pod["metadata"]
    if not (pod.get("spec") or {}).get("nodeName"):
        await env.c.bind(NS, meta["name"], node)
    fresh = dict(await env.c.get(PODS, NS, meta["name"]))
    now = rfc3339(env.clock.now())
    fresh["status"] = {**(fresh.get("status") or {}), "phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}]}
    await env.c.update(PODS, fresh, subresource="status")


async def test_scale_up_then_down_keeps_the_running_pod(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        await env.c.create(RS, NS, replicaset("web", 3))
        pods = await env.wait_owned(RS, "web", 3)
        assert all(p["metadata"]["name"].startswith("web-") for p in pods)
        assert all(p["metadata"]["labels"] == {"app": "web"} for p in pods)
        keeper = pods[1]
        await run_pod(env, keeper)
        await wait_for_async("status of 3 replicas, 1 ready",
                             lambda: _status_is(env, RS, "web", replicas=3, readyReplicas=1))

        await env.c.patch(RS, NS, "web", {"spec": {"replicas": 1}})
        left = await env.wait_owned(RS, "web", 1)
        assert left[0]["metadata"]["name"] == keeper["metadata"]["name"]
        await wait_for_async("status of 1 replica", lambda: _status_is(
            env, RS, "web", replicas=1, fullyLabeledReplicas=1, readyReplicas=1,
            availableReplicas=1, observedGeneration=2))

        events = await env.events("web")
        created = sorted(m for _, r, m in events if r == "SuccessfulCreate")
        assert created == sorted(f"Created pod: {p['metadata']['name']}" for p in pods)
        deleted = sorted(m for _, r, m in events if r == "SuccessfulDelete")
        assert deleted == sorted(f"Deleted pod: {p['metadata']['name']}" for p in pods
                                 if p is not keeper)


async def _status_is(env: Env, owner_kind: Any, name: str, **want: int) -> bool:
    status = await env.status(owner_kind, name)
    return all(int(status.get(k) or 0) == v for k, v in want.items())


async def test_a_deleted_pod_is_replaced(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        await env.c.create(RS, NS, replicaset("web", 2))
        before = await env.wait_owned(RS, "web", 2)
        victim = before[0]["metadata"]["name"]
        await env.c.delete(PODS, NS, victim)
        async def replaced() -> bool:
            names = {p["metadata"]["name"] for p in await env.owned(RS, "web")}
            return len(names) == 2 and victim not in names
        await wait_for_async("a replacement pod", replaced)


async def test_a_terminating_pod_is_replaced_at_once(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        await env.c.create(RS, NS, replicaset("web", 1))
        [pod] = await env.wait_owned(RS, "web", 1)
        await run_pod(env, pod)
        await env.c.delete(PODS, NS, pod["metadata"]["name"])  # graceful: 30 s on a node
        gone = await env.c.get(PODS, NS, pod["metadata"]["name"])
        assert gone["metadata"].get("deletionTimestamp")
        [new] = await env.wait_owned(RS, "web", 1)
        assert new["metadata"]["name"] != pod["metadata"]["name"]


async def test_adopts_an_orphan_and_releases_a_relabelled_pod(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        await env.c.create(PODS, NS, bare_pod("orphan", {"app": "web"}))
        await env.c.create(PODS, NS, bare_pod("stranger", {"app": "other"}))
        await env.c.create(RS, NS, replicaset("web", 2))
        pods = await env.wait_owned(RS, "web", 2)
        assert "orphan" in {p["metadata"]["name"] for p in pods}
        assert len(await env.pods(app="web")) == 2  # one adopted, only one created
        stranger = await env.c.get(PODS, NS, "stranger")
        assert not stranger["metadata"].get("ownerReferences")

        await env.c.patch(PODS, NS, "orphan", {"metadata": {"labels": {"app": "away"}}})
        async def released() -> bool:
            pod = await env.c.get(PODS, NS, "orphan")
            return not pod["metadata"].get("ownerReferences")
        await wait_for_async("the relabelled pod released", released)
        after = await env.wait_owned(RS, "web", 2)
        assert "orphan" not in {p["metadata"]["name"] for p in after}


async def test_a_deployment_replicaset_adopts_only_pods_matching_its_hash(tmp_path: Path) -> None:
    deploy_ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                  "uid": "0d9c4e52-0000-4000-8000-000000000001", "controller": True,
                  "blockOwnerDeletion": True}
    async with running(tmp_path) as env:
        await env.c.create(PODS, NS, bare_pod("old-hash", {"app": "web",
                                                           "pod-template-hash": "aaa"}))
        await env.c.create(PODS, NS, bare_pod("same-hash", {"app": "web",
                                                            "pod-template-hash": "bbb"}))
        labels = {"app": "web", "pod-template-hash": "bbb"}
        await env.c.create(RS, NS, replicaset("web-bbb", 2, labels=labels, owner=deploy_ref))
        pods = await env.wait_owned(RS, "web-bbb", 2)
        assert "same-hash" in {p["metadata"]["name"] for p in pods}
        assert all(p["metadata"]["labels"]["pod-template-hash"] == "bbb" for p in pods)
        old = await env.c.get(PODS, NS, "old-hash")
        assert not old["metadata"].get("ownerReferences")


async def test_scale_down_prefers_the_node_crowded_by_sibling_replicasets(
        tmp_path: Path) -> None:
    deploy_ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                  "uid": "0d9c4e52-0000-4000-8000-000000000002", "controller": True,
                  "blockOwnerDeletion": True}
    async with running(tmp_path) as env:
        old_labels = {"app": "web", "pod-template-hash": "old"}
        await env.c.create(RS, NS, replicaset("web-old", 2, labels=old_labels, owner=deploy_ref))
        for p in await env.wait_owned(RS, "web-old", 2):
            await run_pod(env, p, node="node-a")
        new_labels = {"app": "web", "pod-template-hash": "new"}
        await env.c.create(RS, NS, replicaset("web-new", 3, labels=new_labels, owner=deploy_ref))
        new = await env.wait_owned(RS, "web-new", 3)
        for p, node in zip(new, ("node-b", "node-a", "node-c"), strict=True):
            await run_pod(env, p, node=node)
        await wait_for_async("3 ready new pods", lambda: _status_is(
            env, RS, "web-new", readyReplicas=3))
        await env.c.patch(RS, NS, "web-new", {"spec": {"replicas": 2}})
        left = {p["spec"]["nodeName"] for p in await env.wait_owned(RS, "web-new", 2)}
        assert left == {"node-b", "node-c"}


async def test_min_ready_seconds_counts_available_pods_later(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(tmp_path, clock=clock) as env:
        await env.c.create(RS, NS, replicaset("web", 2, min_ready=10))
        pods = await env.wait_owned(RS, "web", 2)
        for p in pods:
            await run_pod(env, p)
        await wait_for_async("2 ready, none available yet", lambda: _status_is(
            env, RS, "web", replicas=2, readyReplicas=2, availableReplicas=0))
        await clock.advance(5)
        assert (await env.status(RS, "web")).get("availableReplicas") is None
        await clock.advance(6)
        await wait_for_async("2 available after minReadySeconds", lambda: _status_is(
            env, RS, "web", availableReplicas=2))


class FailingCreates:
    """The in-process client, except that creating pods fails while ``failing`` is set."""

    def __init__(self, inner: InProcessClient) -> None:
        self.inner = inner
        self.failing = True
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, kind: Any, namespace: str | None, obj: Obj) -> Obj:
        if kind.kind == "Pod":
            self.attempts += 1
            if self.failing:
                raise errors.StatusError(403, "Forbidden",
                                         'pods "web-x" is forbidden: exceeded quota: compute')
        return await self.inner.create(kind, namespace, obj)


async def test_a_failed_create_is_an_event_and_a_condition(tmp_path: Path) -> None:
    wrapped: list[FailingCreates] = []

    def wrap(c: InProcessClient) -> FailingCreates:
        wrapped.append(FailingCreates(c))
        return wrapped[0]

    clock = FakeClock()  # back-off retries wait for the test to move time
    async with running(tmp_path, wrap=wrap, clock=clock) as env:
        api = wrapped[0]
        await env.c.create(RS, NS, replicaset("web", 5))

        async def failure() -> Obj | None:
            conds = (await env.status(RS, "web")).get("conditions") or []
            return next((c for c in conds if c["type"] == "ReplicaFailure"), None)
        cond = await wait_for_async("the ReplicaFailure condition", failure)
        assert isinstance(cond, dict)
        assert (cond["status"], cond["reason"]) == ("True", "FailedCreate")
        assert cond["message"] == 'pods "web-x" is forbidden: exceeded quota: compute'
        await wait_for_async("the controller idle", lambda: env.ctrl.queue.processing == 0
                             and len(env.ctrl.queue) == 0)
        # slow start: one attempt per sync (the first, and the one its status write caused)
        assert api.attempts == 2
        events = await env.events("web")
        assert ("Warning", "FailedCreate",
                'Error creating: pods "web-x" is forbidden: exceeded quota: compute') in events

        api.failing = False
        await clock.advance(1)  # the back-off retry
        await env.wait_owned(RS, "web", 5)
        assert api.attempts == 7
        await wait_for_async("the condition removed", lambda: _no_failure(env))


async def _no_failure(env: Env) -> bool:
    return not (await env.status(RS, "web")).get("conditions")


async def test_expectations_prevent_double_creation_while_the_informer_lags(
        tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        infs = Informers(c)
        ctrl = ReplicaSetController(ControllerContext(c, infs))
        infs.start()
        await infs.wait_synced()
        await ctrl.pods.stop()  # the pod cache now lags: it never sees the new pods
        await c.create(RS, NS, replicaset("web", 3))
        await wait_for_async("the replicaset in the cache", lambda: ctrl.owners.get(NS, "web"))
        await ctrl.sync(f"{NS}/web")
        await wait_for_async("the status write in the cache", lambda: (
            ctrl.owners.get(NS, "web") or {}).get("status", {}).get("observedGeneration"))
        await ctrl.sync(f"{NS}/web")
        assert len((await c.list(PODS, NS)).items) == 3
        assert not ctrl.expectations.satisfied(f"{NS}/web")
        ctrl.pods.start()  # the informer catches up and observes the three creations
        await wait_for_async("creations observed",
                             lambda: ctrl.expectations.satisfied(f"{NS}/web"))
        await ctrl.sync(f"{NS}/web")
        assert len((await c.list(PODS, NS)).items) == 3
        await infs.stop()


async def test_replication_controller_scales_and_replaces(tmp_path: Path) -> None:
    rc = {"apiVersion": "v1", "kind": "ReplicationController",
          "metadata": {"name": "nginx", "namespace": NS},
          "spec": {"replicas": 3, "selector": {"app": "nginx"},
                   "template": template({"app": "nginx", "extra": "yes"})}}
    async with running(tmp_path, ReplicationControllerController) as env:
        await env.c.create(RC, NS, rc)
        pods = await env.wait_owned(RC, "nginx", 3)
        ref = pods[0]["metadata"]["ownerReferences"][0]
        assert (ref["apiVersion"], ref["kind"], ref["name"]) == ("v1", "ReplicationController",
                                                                 "nginx")
        await env.c.delete(PODS, NS, pods[0]["metadata"]["name"])
        async def replaced() -> bool:
            names = {p["metadata"]["name"] for p in await env.owned(RC, "nginx")}
            return len(names) == 3 and pods[0]["metadata"]["name"] not in names
        await wait_for_async("a replacement pod", replaced)
        await env.c.patch(RC, NS, "nginx", {"spec": {"replicas": 1}})
        await env.wait_owned(RC, "nginx", 1)
        await wait_for_async("status of 1 replica", lambda: _status_is(
            env, RC, "nginx", replicas=1, fullyLabeledReplicas=1, observedGeneration=2))
        events = await env.events("nginx")
        assert sum(1 for _, r, _ in events if r == "SuccessfulCreate") == 4
        assert sum(1 for _, r, _ in events if r == "SuccessfulDelete") == 2
