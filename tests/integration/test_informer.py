"""Informers over the in-process client: list, watch, indexes, handlers, relist on 410."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kubeling.api.selectors import parse_label_selector
from kubeling.client.informer import NODE_INDEX, OWNER_INDEX, Informers
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

CM = kind("", "configmaps")
PODS = kind("", "pods")


def cm(name: str, ns: str = "default", **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": {"a": "1"}}


async def test_list_then_watch_with_handlers(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        await c.create(CM, "default", cm("before", app="web"))
        infs = Informers(c)
        inf = infs.informer(CM)
        seen: list[tuple[str, str]] = []
        inf.add_handlers(add=lambda o: seen.append(("add", o["metadata"]["name"])),
                         update=lambda a, b: seen.append(("update", b["metadata"]["name"])),
                         delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
        infs.start()
        await infs.wait_synced()
        assert inf.get("default", "before") is not None
        await c.create(CM, "default", cm("after", app="db"))
        obj = dict(await c.get(CM, "default", "after"))
        obj["data"] = {"a": "2"}
        await c.update(CM, obj)
        await c.delete(CM, "default", "before")
        await wait_for_async("four events", lambda: len(seen) >= 4)
        assert seen == [("add", "before"), ("add", "after"), ("update", "after"),
                        ("delete", "before")]
        assert [o["metadata"]["name"] for o in inf.list("default")] == ["after"]
        assert inf.list(selector=parse_label_selector("app=db"))[0]["data"] == {"a": "2"}
        assert inf.list(selector=parse_label_selector("app=web")) == []
        await infs.stop()


async def test_indexes_by_node_and_owner(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        infs = Informers(c)
        inf = infs.informer(PODS)
        infs.start()
        await infs.wait_synced()
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": "default", "ownerReferences": [
                   {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-1"}]},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        await c.create(PODS, "default", pod)
        await c.bind("default", "p", "node-a")
        await wait_for_async("bound pod in the index", lambda: inf.by_index(NODE_INDEX, "node-a"))
        assert inf.by_index(OWNER_INDEX, "u-1")[0]["spec"]["nodeName"] == "node-a"
        await infs.stop()


async def test_relist_after_gone_reports_what_was_missed(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        for n in ("a", "b"):
            await c.create(CM, "default", cm(n))
        infs = Informers(c)
        inf = infs.informer(CM)
        deleted: list[str] = []
        inf.add_handlers(delete=lambda o: deleted.append(o["metadata"]["name"]))
        await inf._relist()  # the informer has listed but not watched yet
        await c.delete(CM, "default", "a")
        await c.create(CM, "default", cm("c"))
        await inf._relist()  # what run() does after a 410
        assert deleted == ["a"]
        assert sorted(inf.keys()) == ["default/b", "default/c"]
        await asyncio.sleep(0)
