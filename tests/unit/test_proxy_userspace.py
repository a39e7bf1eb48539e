"""The userspace proxy relaying real TCP to two local HTTP servers, driven by ServiceProxy.

No nft and no root: ``mode="userspace"`` listens on the Service's node port and
relays each connection to an endpoint. The API is an in-memory fake client
(list + watch of Services and EndpointSlices), enough for the proxy's informers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubeling.api import kinds
from kubeling.client.interface import ListResult, Obj, WatchEvent
from kubeling.proxy import ServiceProxy
from tests.cluster import free_port, wait_for_async


class FakeApi:
    """Objects by resource; watchers get every later change."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Obj]] = {}
        self.rv = 1
        self.watchers: list[tuple[str, asyncio.Queue[WatchEvent]]] = []

    def _put(self, kind: kinds.Kind, obj: Obj, event: str) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
        store = self.objects.setdefault(kind.resource, {})
        if event == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj
        for resource, q in self.watchers:
            if resource == kind.resource:
                q.put_nowait(WatchEvent(event, obj))

    def apply(self, kind: kinds.Kind, obj: Obj) -> None:
        key = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
        known = key in self.objects.get(kind.resource, {})
        self._put(kind, obj, "MODIFIED" if known else "ADDED")

    def remove(self, kind: kinds.Kind, obj: Obj) -> None:
        self._put(kind, obj, "DELETED")

    async def list(self, kind: kinds.Kind, namespace: str | None = None,
                   **_: Any) -> ListResult:
        return ListResult(list(self.objects.get(kind.resource, {}).values()), str(self.rv))

    async def watch(self, kind: kinds.Kind, namespace: str | None = None,
                    **_: Any) -> AsyncIterator[WatchEvent]:
        q: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self.watchers.append((kind.resource, q))
        try:
            while True:
                yield await q.get()
        finally:
            self.watchers.remove((kind.resource, q))

    async def close(self) -> None:
        pass


def _kind(group: str, resource: str) -> kinds.Kind:
    kind = kinds.by_resource(group, resource)
    assert kind is not None
    return kind


SERVICE = _kind("", "services")
SLICE = _kind("discovery.k8s.io", "endpointslices")


async def http_server(name: str) -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n" + name.encode())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def get(port: int) -> str:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused"
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    try:
        data = await reader.read()
    except ConnectionResetError:
        data = b""
    writer.close()
    return data.split(b"\r\n\r\n", 1)[-1].decode() if data else "closed"


def service(node_port: int, **spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.20", **spec,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "nodePort": node_port}]}}


def eslice(ports: list[int]) -> Obj:
    return {"metadata": {"name": "web-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": ports[0] if ports else 1, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]
            if ports else []}


@pytest.fixture
async def servers() -> AsyncIterator[list[int]]:
    started = [await http_server(n) for n in ("A", "B")]
    yield [port for _, port in started]
    for s, _ in started:
        s.close()


async def test_userspace_relays_node_port_to_endpoints(servers: list[int]) -> None:
    api = FakeApi()
    node_port = free_port()
    api.apply(SERVICE, service(node_port))
    # two slices: the same address, two target ports (as two pods of the process runtime)
    api.apply(SLICE, eslice([servers[0]]))
    second = eslice([servers[1]])
    second["metadata"]["name"] = "web-y"
    api.apply(SLICE, second)
    proxy = ServiceProxy(api, node_name="n1", node_ips=["127.0.0.1"],  # type: ignore[arg-type]
                         mode="userspace")
    await proxy.start()
    try:
        assert proxy.mode == "userspace" and proxy.healthy
        got = [await get(node_port) for _ in range(6)]
        assert sorted(set(got)) == ["A", "B"]  # round robin over both

        api.apply(SERVICE, service(node_port, sessionAffinity="ClientIP"))

        async def sticky() -> bool:
            return len({await get(node_port) for _ in range(6)}) == 1
        await wait_for_async("ClientIP affinity", sticky)

        api.remove(SLICE, second)

        async def only_a() -> bool:
            return {await get(node_port) for _ in range(4)} == {"A"}
        await wait_for_async("endpoint B to be out", only_a)

        api.apply(SLICE, eslice([]))

        async def closed() -> bool:
            return await get(node_port) == "closed"
        await wait_for_async("no endpoints: connections closed at once", closed)

        api.remove(SERVICE, service(node_port))

        async def unbound() -> bool:
            return await get(node_port) == "refused"
        await wait_for_async("the node port to be released", unbound)
    finally:
        await proxy.stop()


async def test_changes_are_coalesced_into_few_syncs(servers: list[int]) -> None:
    api = FakeApi()
    proxy = ServiceProxy(api, node_name="n1", node_ips=["127.0.0.1"],  # type: ignore[arg-type]
                         mode="userspace", min_sync_period=0.2)
    seen: list[set[str]] = []
    proxy.listeners.append(lambda keys, full: seen.append(keys))
    await proxy.start()
    try:
        assert proxy.full_syncs == 1
        for i in range(20):
            svc = service(free_port())
            svc["metadata"]["name"] = f"s{i}"
            api.apply(SERVICE, svc)
            await asyncio.sleep(0)

        async def all_synced() -> bool:
            return len(set().union(*seen[1:])) == 20 if len(seen) > 1 else False
        await wait_for_async("20 Services programmed", all_synced)
        assert len(seen) <= 4  # 20 changes, a handful of syncs
        assert proxy.backend is not None and proxy.backend.counts()[0] == 20
    finally:
        await proxy.stop()
