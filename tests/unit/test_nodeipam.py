"""Node IPAM: ranges cut from the cluster CIDR, never given twice, freed with their node."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.api import errors
from kubeling.client.informer import Informers
from kubeling.controllers.base import ControllerContext, ControllerOptions
from kubeling.controllers.nodeipam import CidrFull, CidrSet, NodeIpamController
from kubeling.utils.tasks import cancel_all


def test_ranges_are_cut_in_order_and_never_twice() -> None:
    s = CidrSet("10.42.0.0/16", 24)
    assert s.size == 256
    got = [s.allocate() for _ in range(256)]
    assert got[:3] == ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"]
    assert got[-1] == "10.42.255.0/24"
    assert len(set(got)) == 256
    with pytest.raises(CidrFull):
        s.allocate()


def test_occupied_ranges_are_skipped_and_released_ones_come_back_last() -> None:
    s = CidrSet("10.42.0.0/16", 24)
    assert s.occupy("10.42.0.0/24")
    assert s.occupy("10.42.1.0/24")
    assert not s.occupy("192.168.0.0/24")
    assert not s.occupy("10.42.3.0/25")
    assert s.allocate() == "10.42.2.0/24"
    s.release("10.42.0.0/24")
    assert s.allocate() == "10.42.3.0/24"


def test_ipv6_and_a_bad_mask() -> None:
    s = CidrSet("fd00:10::/56", 64)
    assert s.allocate() == "fd00:10::/64"
    assert s.allocate() == "fd00:10:0:1::/64"
    with pytest.raises(ValueError):
        CidrSet("10.42.0.0/16", 8)


class FakeClient:
    """Records node patches; the test plays the informer by handing nodes to the handlers."""

    def __init__(self) -> None:
        self.patches: dict[str, Any] = {}
        self.events: list[tuple[str, str]] = []

    async def patch(self, kind: Any, namespace: str | None, name: str, patch: Any,
                    **_: Any) -> dict[str, Any]:
        self.patches[name] = patch
        return {}

    async def create(self, kind: Any, namespace: str | None, obj: Any) -> Any:
        self.events.append((obj["reason"], obj["message"]))
        return obj


def node(name: str, cidr: str = "") -> dict[str, Any]:
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": spec}


def controller(client: FakeClient, cidr: str, mask: int) -> NodeIpamController:
    opts = ControllerOptions(cluster_cidr=cidr, node_cidr_mask_size=mask)
    return NodeIpamController(ControllerContext(client, Informers(client),  # type: ignore[arg-type]
                                                options=opts))


async def test_controller_rebuilds_the_used_set_and_gives_unique_ranges() -> None:
    client = FakeClient()
    ctl = controller(client, "10.42.0.0/16", 24)
    existing = [node("a", "10.42.0.0/24"), node("b", "10.42.2.0/24")]
    new = [node("c"), node("d"), node("e")]
    for n in existing + new:
        ctl.nodes._store(n["metadata"]["name"], n)
        ctl.node_seen(n)
    for n in new:
        await ctl.sync(n["metadata"]["name"])
    given = {name: p["spec"]["podCIDRs"] for name, p in client.patches.items()}
    assert given == {"c": ["10.42.1.0/24"], "d": ["10.42.3.0/24"], "e": ["10.42.4.0/24"]}
    assert client.patches["c"]["spec"]["podCIDR"] == "10.42.1.0/24"
    # A sync before the informer shows the range again does not give a second one.
    await ctl.sync("c")
    assert client.patches["c"]["spec"]["podCIDRs"] == ["10.42.1.0/24"]
    assert len(ctl.cidrs) == 5
    ctl.node_gone(node("a", "10.42.0.0/24"))
    assert len(ctl.cidrs) == 4


async def test_a_full_cluster_cidr_is_reported_and_retried() -> None:
    client = FakeClient()
    ctl = controller(client, "10.42.0.0/24", 25)
    for name in ("a", "b", "c"):
        ctl.nodes._store(name, node(name))
    await ctl.sync("a")
    await ctl.sync("b")
    with pytest.raises(errors.StatusError):
        await ctl.sync("c")
    await ctl.recorder.flush()
    assert client.events == [("CIDRNotAvailable", "Node c status is now: CIDRNotAvailable")]
    ctl.node_gone(node("a", "10.42.0.0/25"))
    await ctl.sync("c")
    assert client.patches["c"]["spec"]["podCIDR"] == "10.42.0.0/25"
    await cancel_all()  # the event recorder's writer task
