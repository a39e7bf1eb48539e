"""The endpoint controllers over a real registry (in process, no HTTP): Endpoints and
EndpointSlices following pods, mirroring of selectorless Endpoints, and the service LB."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kubeling.api import errors
from kubeling.api.jsoncopy import json_copy
from kubeling.client.informer import Informers
from kubeling.client.inprocess import InProcessClient
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.manager import build
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, node, running_registry
from tests.cluster import wait_for_async

PODS = kind("", "pods")
SVC = kind("", "services")
EP = kind("", "endpoints")
SLICES = kind("discovery.k8s.io", "endpointslices")
NODES = kind("", "nodes")
Obj = dict[str, Any]
NAMES = ["endpoint", "endpointslice", "endpointslicemirroring", "servicelb"]


@asynccontextmanager
async def controllers(tmp_path: Path) -> AsyncIterator[InProcessClient]:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "endpoint-test")
        informers = Informers(c)
        ctx = ControllerContext(client=c, informers=informers)
        ctrls = build(ctx, NAMES)
        informers.start()
        for ctrl in ctrls:
            spawn(ctrl.run(), name=f"test-{ctrl.name}")
        yield c


async def add_pod(c: InProcessClient, name: str, ip: str, *, ready: bool = True,
                  labels: dict[str, str] | None = None) -> None:
    await c.create(PODS, "default", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [
            {"name": "c", "image": "busybox", "ports": [{"name": "http",
                                                         "containerPort": 8080}]}]}})
    await set_ready(c, name, ready, ip)


async def set_ready(c: InProcessClient, name: str, ready: bool, ip: str = "") -> None:
    pod = json_copy(await c.get(PODS, "default", name))  # what a client returns is shared
    ip = ip or pod["status"]["podIP"]
    pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                     "conditions": [{"type": "Ready", "status": str(ready)}]}
    await c.update(PODS, pod, subresource="status")


async def get(c: InProcessClient, k: Any, name: str, ns: str | None = "default") -> Obj | None:
    try:
        return await c.get(k, ns, name)
    except errors.StatusError as exc:
        if exc.code == 404:
            return None
        raise


async def slices_of(c: InProcessClient, svc: str) -> list[Obj]:
    res = await c.list(SLICES, "default", label_selector=f"kubernetes.io/service-name={svc}")
    return res.items


def ready_map(slices: list[Obj]) -> dict[str, bool]:
    return {e["targetRef"]["name"]: e["conditions"]["ready"]
            for s in slices for e in s.get("endpoints") or []}


async def test_endpoints_and_slices_follow_pod_readiness(tmp_path: Path) -> None:
    async with controllers(tmp_path) as c:
        await c.create(SVC, "default", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
        for i in range(3):
            await add_pod(c, f"web-{i}", f"10.42.0.{i + 2}")
        await add_pod(c, "other", "10.42.0.9", labels={"app": "other"})

        async def three_ready() -> bool:
            ep = await get(c, EP, "web")
            return bool(ep and len((ep.get("subsets") or [{}])[0].get("addresses") or []) == 3)

        await wait_for_async("3 ready addresses", three_ready, timeout=5)
        ep = await get(c, EP, "web")
        assert ep is not None
        assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]
        await wait_for_async("3 ready slice endpoints", lambda: slices_of(c, "web"), timeout=5)
        (sl,) = await slices_of(c, "web")
        assert sl["metadata"]["name"].startswith("web-")
        assert sl["metadata"]["ownerReferences"][0]["kind"] == "Service"
        assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]

        started = time.monotonic()
        await set_ready(c, "web-1", False)

        async def moved() -> bool:
            ep = await get(c, EP, "web")
            not_ready = [a["ip"] for s in (ep or {}).get("subsets") or []
                         for a in s.get("notReadyAddresses") or []]
            return not_ready == ["10.42.0.3"] and \
                ready_map(await slices_of(c, "web")).get("web-1") is False
        await wait_for_async("web-1 not ready in Endpoints and slices", moved, timeout=5)
        assert time.monotonic() - started < 5
        # nothing to change: no write
        (sl,) = await slices_of(c, "web")
        rv = sl["metadata"]["resourceVersion"]
        pod = json_copy(await c.get(PODS, "default", "web-0"))
        pod["metadata"].setdefault("annotations", {})["touched"] = "yes"
        await c.update(PODS, pod)
        await add_pod(c, "other-2", "10.42.0.10", labels={"app": "other"})
        await wait_for_async("the other pod seen", lambda: get(c, PODS, "other-2"))
        (sl,) = await slices_of(c, "web")
        assert sl["metadata"]["resourceVersion"] == rv
        # a terminating pod stays in the slice (not ready, terminating) but leaves Endpoints
        await c.patch(PODS, "default", "web-0", {"metadata": {"finalizers": ["test/hold"]}})
        await c.delete(PODS, "default", "web-0", options={"gracePeriodSeconds": 0})

        async def terminating() -> bool:
            eps = [e for s in await slices_of(c, "web") for e in s.get("endpoints") or []
                   if e["targetRef"]["name"] == "web-0"]
            ep = await get(c, EP, "web")
            ips = [a["ip"] for s in (ep or {}).get("subsets") or []
                   for a in s.get("addresses") or []]
            return bool(eps) and eps[0]["conditions"] == {
                "ready": False, "serving": True, "terminating": True} and ips == ["10.42.0.4"]
        await wait_for_async("web-0 terminating", terminating, timeout=5)
        await c.patch(PODS, "default", "web-0", {"metadata": {"finalizers": None}})
        # the Service goes: its Endpoints and slices go too
        await c.delete(SVC, "default", "web")

        async def gone() -> bool:
            return await get(c, EP, "web") is None and not await slices_of(c, "web")
        await wait_for_async("Endpoints and slices of web gone", gone, timeout=5)


async def test_publish_not_ready_and_placeholder(tmp_path: Path) -> None:
    async with controllers(tmp_path) as c:
        await c.create(SVC, "default", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"},
                     "publishNotReadyAddresses": True, "ports": [{"port": 5432}]}})

        async def placeholder() -> bool:
            s = await slices_of(c, "db")
            return len(s) == 1 and not s[0].get("endpoints")
        await wait_for_async("an empty placeholder slice", placeholder, timeout=5)
        (ph,) = await slices_of(c, "db")
        assert ph["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
        await add_pod(c, "db-0", "10.42.0.20", ready=False, labels={"app": "db"})

        async def published() -> bool:
            ep = await get(c, EP, "db")
            s = await slices_of(c, "db")
            addrs = (ep or {}).get("subsets", [{}])[0].get("addresses") or []
            return len(addrs) == 1 and ready_map(s) == {"db-0": True}
        await wait_for_async("the unready pod published as ready", published, timeout=5)
        (sl,) = await slices_of(c, "db")
        assert sl["metadata"]["name"] == ph["metadata"]["name"]  # the placeholder, reused


async def test_selectorless_endpoints_are_mirrored(tmp_path: Path) -> None:
    async with controllers(tmp_path) as c:
        await c.create(SVC, "default", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
            "spec": {"ports": [{"name": "http", "port": 80}]}})
        await c.create(EP, "default", {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "ext", "labels": {"owner": "me"}},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}],
                         "ports": [{"name": "http", "port": 8080}]}]})
        await wait_for_async("a mirrored slice", lambda: slices_of(c, "ext"), timeout=5)
        (sl,) = await slices_of(c, "ext")
        assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
            "endpointslicemirroring-controller.k8s.io"
        assert sl["metadata"]["labels"]["owner"] == "me"
        assert sl["endpoints"][0]["addresses"] == ["192.0.2.1"]
        assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        await c.patch(EP, "default", "ext", {"metadata": {"labels": {
            "endpointslice.kubernetes.io/skip-mirror": "true"}}})

        async def none() -> bool:
            return not await slices_of(c, "ext")
        await wait_for_async("the mirrored slice gone on skip-mirror", none, timeout=5)
        # the kubernetes Service's Endpoints are never mirrored by the controller
        assert all(s["metadata"]["labels"].get("endpointslice.kubernetes.io/managed-by") !=
                   "endpointslicemirroring-controller.k8s.io"
                   for s in await slices_of(c, "kubernetes"))


async def test_load_balancer_ingress_follows_the_nodes(tmp_path: Path) -> None:
    async with controllers(tmp_path) as c:
        for name, addrs in (("n1", [{"type": "InternalIP", "address": "192.0.2.11"}]),
                            ("n2", [{"type": "InternalIP", "address": "192.0.2.12"},
                                    {"type": "ExternalIP", "address": "198.51.100.2"}])):
            made = json_copy(await c.create(NODES, None, node(name)))
            made["status"]["addresses"] = addrs
            await c.update(NODES, made, subresource="status")
        await c.create(SVC, "default", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "ports": [{"port": 80}]}})

        async def ingress() -> list[str]:
            s = await c.get(SVC, "default", "lb")
            return [i["ip"] for i in ((s.get("status") or {}).get("loadBalancer") or {})
                    .get("ingress") or []]

        async def both() -> bool:
            return await ingress() == ["192.0.2.11", "198.51.100.2"]
        await wait_for_async("both nodes' addresses", both, timeout=5)
        s = await c.get(SVC, "default", "lb")
        assert s["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP"
        n2 = json_copy(await c.get(NODES, None, "n2"))
        n2["status"]["conditions"][0]["status"] = "False"
        await c.update(NODES, n2, subresource="status")

        async def one() -> bool:
            return await ingress() == ["192.0.2.11"]
        await wait_for_async("only the Ready node", one, timeout=5)
        await c.patch(SVC, "default", "lb", {"spec": {"type": "ClusterIP"}})

        async def cleared() -> bool:
            return await ingress() == []
        await wait_for_async("the ingress cleared", cleared, timeout=5)
