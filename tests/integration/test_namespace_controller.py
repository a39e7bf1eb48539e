"""The namespace and service account controllers over a real registry."""

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
from kubeling.controllers.namespace import NamespaceController
from kubeling.controllers.serviceaccount import ServiceAccountController
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

NS = kind("", "namespaces")
CM = kind("", "configmaps")
PODS = kind("", "pods")
SA = kind("", "serviceaccounts")


@asynccontextmanager
async def controllers(tmp_path: Path) -> AsyncIterator[InProcessClient]:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        infs = Informers(c)
        ctx = ControllerContext(c, infs)
        built = [NamespaceController(ctx), ServiceAccountController(ctx)]
        infs.start()
        for ctl in built:
            spawn(ctl.run(), name=f"{ctl.name}-under-test")
        await infs.wait_synced()
        yield client(reg, "user")
        await infs.stop()


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


async def exists(c: InProcessClient, k: Any, ns: str | None, name: str) -> bool:
    try:
        await c.get(k, ns, name)
    except errors.StatusError as exc:
        if exc.code == 404:
            return False
        raise
    return True


async def test_deleting_a_namespace_empties_it_then_removes_it(tmp_path: Path) -> None:
    async with controllers(tmp_path) as c:
        await c.create(NS, None, namespace("work"))
        for i in range(3):
            await c.create(CM, "work", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": f"cm-{i}"}})
        await c.create(CM, "work", {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "held",
                                                 "finalizers": ["example.com/hold"]}})
        await c.create(PODS, "work", {"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": "p"},
                                      "spec": {"containers": [{"name": "c", "image": "x"}]}})
        await c.delete(NS, None, "work")
        ns = await c.get(NS, None, "work")
        assert ns["status"]["phase"] == "Terminating"

        async def finalizers_condition() -> str:
            conds = (await c.get(NS, None, "work")).get("status", {}).get("conditions") or []
            return next((x["message"] for x in conds
                         if x["type"] == "NamespaceFinalizersRemaining"
                         and x["status"] == "True"), "")

        message = await wait_for_async("the finalizers condition", finalizers_condition)
        assert message == "Some finalizers are remaining: example.com/hold in 1 resource instances"
        items = (await c.list(CM, "work")).items
        assert [o["metadata"]["name"] for o in items] == ["held"]
        assert not await exists(c, PODS, "work", "p")
        assert await exists(c, NS, None, "work")
        held = json_copy(items[0])
        held["metadata"]["finalizers"] = []
        await c.update(CM, held)
        await wait_for_async("the namespace to go", lambda: _not(exists(c, NS, None, "work")))


async def _not(aw: Any) -> bool:
    return not await aw


async def test_default_service_account_appears_and_comes_back(tmp_path: Path) -> None:
    async with controllers(tmp_path) as c:
        await c.create(NS, None, namespace("team"))
        await wait_for_async("default SA in team", lambda: exists(c, SA, "team", "default"))
        await wait_for_async("default SA in default", lambda: exists(c, SA, "default", "default"))
        await c.delete(SA, "team", "default")
        await wait_for_async("default SA to come back", lambda: exists(c, SA, "team", "default"))
