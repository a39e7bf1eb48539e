"""Host-gw routes: which routes the Nodes ask for, and what a sync adds, fixes and removes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kubeling.client.interface import Obj
from kubeling.kubelet.routes import RouteError, Routes, desired_routes
from kubeling.utils.clock import FakeClock
from tests.unit.kubelet_fakes import fake_context


def node(name: str, cidr: str | None, ip: str | None, *, cidrs: list[str] | None = None
         ) -> Obj:
    spec: Obj = {}
    if cidr:
        spec["podCIDR"] = cidr
        spec["podCIDRs"] = cidrs or [cidr]
    addrs = [{"type": "Hostname", "address": name}]
    if ip:
        addrs.insert(0, {"type": "InternalIP", "address": ip})
    return {"metadata": {"name": name}, "spec": spec, "status": {"addresses": addrs}}


class FakeNodes:
    def __init__(self) -> None:
        self.items: dict[str, Obj] = {}
        self.handlers: dict[str, Any] = {}

    def list(self) -> list[Obj]:
        return list(self.items.values())

    def add_handlers(self, **handlers: Any) -> None:
        self.handlers = handlers

    async def wait_synced(self) -> None:
        return None

    def put(self, obj: Obj) -> None:
        old = self.items.get(obj["metadata"]["name"])
        self.items[obj["metadata"]["name"]] = obj
        if old is None:
            self.handlers["add"](obj)
        else:
            self.handlers["update"](old, obj)

    def drop(self, name: str) -> None:
        self.handlers["delete"](self.items.pop(name))


class FakeInformers:
    def __init__(self, nodes: FakeNodes) -> None:
        self.nodes = nodes

    def informer(self, *args: Any, **kwargs: Any) -> FakeNodes:
        return self.nodes


class FakeTable:
    def __init__(self, routes: dict[str, str] | None = None) -> None:
        self.routes = dict(routes or {})
        self.ops: list[tuple[str, ...]] = []
        self.refuse: set[str] = set()
        self.synced = asyncio.Event()

    async def list(self) -> dict[str, str]:
        self.synced.set()
        return dict(self.routes)

    async def replace(self, dst: str, via: str) -> None:
        if dst in self.refuse:
            raise RouteError(f"ip route replace {dst}: Nexthop has invalid gateway")
        self.ops.append(("replace", dst, via))
        self.routes[dst] = via

    async def delete(self, dst: str) -> None:
        self.ops.append(("delete", dst))
        del self.routes[dst]


class FakeNat:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def set(self, own: str, others: list[str]) -> None:
        self.calls.append((own, others))


def routes(tmp_path: Path, table: FakeTable, nat: FakeNat | None = None
           ) -> tuple[Routes, FakeNodes]:
    ctx, _, _ = fake_context(tmp_path, FakeClock())  # node "n1", node_ip 192.168.1.2
    nodes = FakeNodes()
    ctx.informers = FakeInformers(nodes)  # type: ignore[assignment]
    return Routes(ctx, table=table, nat=nat or FakeNat(), resync=3600), nodes


def test_desired_routes_other_nodes_with_cidr_and_internal_ip() -> None:
    nodes = [node("n1", "10.42.0.0/24", "192.168.1.2"),  # ourselves
             node("n2", "10.42.1.0/24", "192.168.1.3"),
             node("n3", None, "192.168.1.4"),  # no CIDR yet
             node("n4", "10.42.3.0/24", None),  # no address
             node("n5", "10.42.4.5/24", "192.168.1.6",
                  cidrs=["10.42.4.5/24", "fd42:0:0:4::/64"]),  # v6 CIDR, no v6 address
             node("n6", "10.42.5.0/24", "not-an-ip")]
    assert desired_routes(nodes, "n1", "192.168.1.2") == {
        "10.42.1.0/24": "192.168.1.3", "10.42.4.0/24": "192.168.1.6"}


async def test_sync_adds_fixes_and_removes_only_ours(tmp_path: Path) -> None:
    table = FakeTable({"10.42.9.0/24": "192.168.1.99",  # a node that is gone
                       "10.42.2.0/24": "192.168.1.50"})  # a node whose address changed
    nat = FakeNat()
    r, nodes = routes(tmp_path, table, nat)
    nodes.items = {n["metadata"]["name"]: n for n in (
        node("n1", "10.42.0.0/24", "192.168.1.2"), node("n2", "10.42.1.0/24", "192.168.1.3"),
        node("n3", "10.42.2.0/24", "192.168.1.4"))}
    await r.sync()
    # Our pods' traffic to the other nodes' pods keeps its source address.
    assert nat.calls == [("10.42.0.0/24", ["10.42.1.0/24", "10.42.2.0/24"])]
    assert table.ops == [("replace", "10.42.1.0/24", "192.168.1.3"),
                         ("replace", "10.42.2.0/24", "192.168.1.4"),
                         ("delete", "10.42.9.0/24")]
    table.ops.clear()
    await r.sync()
    assert table.ops == []  # nothing to do


async def test_one_refused_route_does_not_stop_the_others(tmp_path: Path) -> None:
    table = FakeTable()
    table.refuse.add("10.42.1.0/24")
    r, nodes = routes(tmp_path, table)
    nodes.items = {n["metadata"]["name"]: n for n in (
        node("n2", "10.42.1.0/24", "10.9.9.9"), node("n3", "10.42.2.0/24", "192.168.1.4"))}
    with pytest.raises(RouteError, match="invalid gateway"):
        await r.sync()
    assert table.routes == {"10.42.2.0/24": "192.168.1.4"}


async def test_started_routes_follow_node_changes(tmp_path: Path) -> None:
    table = FakeTable()
    r, nodes = routes(tmp_path, table)
    r.start()
    try:
        async def until(what: Any) -> None:
            async def poll() -> None:
                while not what():
                    await asyncio.sleep(0.001)
            await asyncio.wait_for(poll(), 5)

        await until(lambda: r.syncs == 1)
        nodes.put(node("n2", None, "192.168.1.3"))
        nodes.put(node("n2", "10.42.1.0/24", "192.168.1.3"))  # the CIDR is allocated
        await until(lambda: table.routes == {"10.42.1.0/24": "192.168.1.3"})
        before = r.syncs
        # A status change that leaves the CIDR and addresses alone does not sync.
        same = node("n2", "10.42.1.0/24", "192.168.1.3")
        same["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        nodes.put(same)
        await asyncio.sleep(0.01)
        assert r.syncs == before
        nodes.drop("n2")
        await until(lambda: table.routes == {})
    finally:
        await r.stop()
