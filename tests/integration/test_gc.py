"""The garbage collector over a real registry: background, foreground and orphan deletion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kubeling.api import errors
from kubeling.api.jsoncopy import json_copy
from kubeling.client.informer import Informers
from kubeling.client.inprocess import InProcessClient
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.garbagecollector import GarbageCollector
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

CM = kind("", "configmaps")
PODS = kind("", "pods")
RS = kind("apps", "replicasets")


def ref(owner: dict[str, Any], *, block: bool = False) -> dict[str, Any]:
    out = {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
           "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}
    if block:
        out["blockOwnerDeletion"] = True
    return out


def cm(name: str, *owners: dict[str, Any], finalizers: list[str] | None = None
       ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def replicaset(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def pod(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "ownerReferences": [{**ref(owner, block=True), "controller": True}]},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


@asynccontextmanager
async def collector(tmp_path: Path) -> AsyncIterator[tuple[InProcessClient, GarbageCollector]]:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        infs = Informers(c)
        gc = GarbageCollector(ControllerContext(c, infs))
        infs.start()
        spawn(gc.run(), name="gc-under-test")
        await infs.wait_synced()
        yield client(reg, "user"), gc
        await infs.stop()


async def gone(c: InProcessClient, k: Any, name: str) -> bool:
    try:
        await c.get(k, "default", name)
    except errors.StatusError as exc:
        return exc.code == 404
    return False


async def test_background_deletes_dependents_whose_owners_are_all_gone(tmp_path: Path) -> None:
    async with collector(tmp_path) as (c, gc):
        owner = await c.create(CM, "default", cm("owner"))
        other = await c.create(CM, "default", cm("other"))
        for n in ("dep-1", "dep-2"):
            await c.create(CM, "default", cm(n, ref(owner)))
        await c.create(CM, "default", cm("shared", ref(owner), ref(other)))
        await c.delete(CM, "default", "owner")
        for n in ("dep-1", "dep-2"):
            await wait_for_async(f"{n} to be collected", lambda n=n: gone(c, CM, n))

        async def shared_refs() -> list[str]:
            obj = await c.get(CM, "default", "shared")
            return [r["name"] for r in obj["metadata"].get("ownerReferences") or ()]

        await wait_for_async("the dangling reference to be dropped",
                             lambda: _equals(shared_refs(), ["other"]))
        assert not await gone(c, CM, "other")


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_an_object_whose_owner_never_existed_is_collected(tmp_path: Path) -> None:
    async with collector(tmp_path) as (c, gc):
        ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost",
                 "uid": "00000000-0000-0000-0000-000000000001"}
        await c.create(CM, "default", cm("orphaned", ghost))
        live = await c.create(CM, "default", cm("owner"))
        await c.create(CM, "default", cm("kept", ref(live)))
        await wait_for_async("the ghost's dependent to be collected",
                             lambda: gone(c, CM, "orphaned"))
        assert not await gone(c, CM, "kept")


async def test_foreground_waits_for_blocking_dependents(tmp_path: Path) -> None:
    async with collector(tmp_path) as (c, gc):
        rs = await c.create(RS, "default", replicaset("web"))
        for i in range(3):
            await c.create(PODS, "default", pod(f"web-{i}", rs))
        await c.create(CM, "default", cm("held", ref(rs, block=True),
                                         finalizers=["example.com/hold"]))
        await c.create(CM, "default", cm("loose", ref(rs)))
        await c.delete(RS, "default", "web", options={"propagationPolicy": "Foreground"})
        for i in range(3):
            await wait_for_async(f"pod web-{i} to go", lambda i=i: gone(c, PODS, f"web-{i}"))
        await wait_for_async("the non-blocking dependent to go", lambda: gone(c, CM, "loose"))

        async def held_terminating() -> bool:
            return bool((await c.get(CM, "default", "held"))["metadata"].get(
                "deletionTimestamp"))

        await wait_for_async("the held dependent to be terminating", held_terminating)
        owner = await c.get(RS, "default", "web")
        assert owner["metadata"]["finalizers"] == ["foregroundDeletion"]
        assert owner["metadata"].get("deletionTimestamp")
        held = json_copy(await c.get(CM, "default", "held"))
        held["metadata"]["finalizers"] = []
        await c.update(CM, held)
        await wait_for_async("the owner to go once nothing blocks it",
                             lambda: gone(c, RS, "web"))


async def test_orphan_keeps_dependents_and_drops_the_reference(tmp_path: Path) -> None:
    async with collector(tmp_path) as (c, gc):
        rs = await c.create(RS, "default", replicaset("web"))
        other = await c.create(CM, "default", cm("other"))
        await c.create(PODS, "default", pod("web-0", rs))
        await c.create(CM, "default", cm("two-owners", ref(rs), ref(other)))
        await c.delete(RS, "default", "web", options={"propagationPolicy": "Orphan"})
        await wait_for_async("the owner to go", lambda: gone(c, RS, "web"))
        p = await c.get(PODS, "default", "web-0")
        assert not p["metadata"].get("ownerReferences")
        two = await c.get(CM, "default", "two-owners")
        assert [r["name"] for r in two["metadata"]["ownerReferences"]] == ["other"]
        assert gc.deletions == 0
