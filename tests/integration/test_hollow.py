"""Hollow nodes over the in-process client: registration, leases, pods run, end and go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client.inprocess import InProcessClient
from kubeling.hollow import EXIT_AFTER, EXIT_CODE, HollowNodes
from kubeling.utils.clock import FakeClock
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

NODES = kind("", "nodes")
PODS = kind("", "pods")
LEASES = kind("coordination.k8s.io", "leases")


@asynccontextmanager
async def hollow(tmp_path: Path, count: int = 3, **kw: Any
                 ) -> AsyncIterator[tuple[InProcessClient, HollowNodes, FakeClock]]:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "test")
        clock = FakeClock()
        nodes = HollowNodes(client(reg, "hollow"), count=count, clock=clock, **kw)
        await nodes.start()
        try:
            yield c, nodes, clock
        finally:
            await nodes.stop()


def pod(name: str, *, restart: str = "Always", notes: dict[str, str] | None = None,
        containers: int = 1) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": notes or {}},
            "spec": {"restartPolicy": restart,
                     "containers": [{"name": f"c{i}", "image": "nginx:1.26"}
                                    for i in range(containers)]}}


async def bound(c: InProcessClient, p: dict[str, Any], node: str) -> None:
    await c.create(PODS, "default", p)
    await c.bind("default", p["metadata"]["name"], node)


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {x["type"]: x["status"] for x in obj["status"].get("conditions") or ()}


async def phase(c: InProcessClient, name: str) -> str:
    return str((await c.get(PODS, "default", name))["status"].get("phase"))


async def test_nodes_register_ready_with_leases_owned_by_them(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=3, cpu="8", memory="16Gi", pods="50",
                      labels={"zone": "a"}) as (c, _, _):
        listed = (await c.list(NODES)).items
        assert sorted(n["metadata"]["name"] for n in listed) == [
            "hollow-node-0", "hollow-node-1", "hollow-node-2"]
        node = await c.get(NODES, None, "hollow-node-1")
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == "hollow-node-1"
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["type"] == "hollow" and labels["zone"] == "a"
        assert "kubernetes.io/arch" in labels
        assert node["status"]["allocatable"]["cpu"] == "8"
        assert node["status"]["capacity"]["pods"] == "50"
        assert conditions(node) == {"MemoryPressure": "False", "DiskPressure": "False",
                                    "PIDPressure": "False", "Ready": "True"}
        assert [a["type"] for a in node["status"]["addresses"]] == ["InternalIP", "Hostname"]
        assert node["status"]["nodeInfo"]["operatingSystem"] == "linux"
        lease = await c.get(LEASES, "kube-node-lease", "hollow-node-1")
        assert lease["spec"]["holderIdentity"] == "hollow-node-1"
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]


async def test_zones_label_nodes_round_robin(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=4, zones=3) as (c, _, _):
        zones = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                 for n in (await c.list(NODES)).items}
        assert zones == {"hollow-node-0": "zone-0", "hollow-node-1": "zone-1",
                         "hollow-node-2": "zone-2", "hollow-node-3": "zone-0"}


async def test_leases_renewed_until_the_node_is_killed(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=3, lease_interval=10.0) as (c, nodes, clock):
        async def renew_times() -> dict[str, str]:
            return {n: (await c.get(LEASES, "kube-node-lease", n))["spec"]["renewTime"]
                    for n in nodes.names}

        first = await renew_times()
        await clock.advance(10.0)
        await wait_for_async("every lease renewed", lambda: nodes.renewals >= 3)
        second = await renew_times()
        assert all(second[n] != first[n] for n in nodes.names)

        await nodes.kill("hollow-node-1")
        before = nodes.renewals
        await clock.advance(10.0)
        await wait_for_async("the two live leases renewed", lambda: nodes.renewals >= before + 2)
        await clock.advance(10.0)
        await wait_for_async("renewed again", lambda: nodes.renewals >= before + 4)
        third = await renew_times()
        assert third["hollow-node-1"] == second["hollow-node-1"]
        assert third["hollow-node-0"] != second["hollow-node-0"]
        assert nodes.renewals == before + 4


async def test_bound_pods_reported_running_and_ready(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=2) as (c, _, _):
        await bound(c, pod("web", containers=2), "hollow-node-0")
        await wait_for_async("pod running", lambda: _is(c, "web", "Running"))
        p = await c.get(PODS, "default", "web")
        st = p["status"]
        assert conditions(p) == {"PodReadyToStartContainers": "True", "Initialized": "True",
                                 "Ready": "True", "ContainersReady": "True",
                                 "PodScheduled": "True"}
        node = await c.get(NODES, None, "hollow-node-0")
        assert st["hostIP"] == node["status"]["addresses"][0]["address"]
        assert st["podIP"] and st["podIPs"] == [{"ip": st["podIP"]}]
        assert st["startTime"]
        assert [(s["name"], s["ready"], "running" in s["state"]) for s in
                st["containerStatuses"]] == [("c0", True, True), ("c1", True, True)]
        assert st["qosClass"] == "BestEffort"


async def test_pod_ip_comes_from_the_node_pod_cidr(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=1) as (c, _, _):
        node = await c.get(NODES, None, "hollow-node-0")
        node = {**node, "spec": {**node["spec"], "podCIDR": "10.42.7.0/24",
                                 "podCIDRs": ["10.42.7.0/24"]}}
        await c.update(NODES, node)
        await wait_for_async("the node informer sees the CIDR", lambda: _cidr_seen(c))
        await bound(c, pod("a"), "hollow-node-0")
        await wait_for_async("pod running", lambda: _is(c, "a", "Running"))
        ip = (await c.get(PODS, "default", "a"))["status"]["podIP"]
        assert ip.startswith("10.42.7.")


async def _cidr_seen(c: InProcessClient) -> bool:
    return bool((await c.get(NODES, None, "hollow-node-0"))["spec"].get("podCIDR"))


async def _is(c: InProcessClient, name: str, want: str) -> bool:
    return await phase(c, name) == want


async def test_pods_of_other_nodes_are_left_alone(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=1) as (c, nodes, _):
        await bound(c, pod("elsewhere"), "real-node")
        await bound(c, pod("here"), "hollow-node-0")
        await wait_for_async("own pod running", lambda: _is(c, "here", "Running"))
        assert await phase(c, "elsewhere") == "Pending"
        assert nodes.pod_updates == 1


async def test_exit_after_annotation_ends_the_pod(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=1) as (c, _, clock):
        await bound(c, pod("ok", restart="Never", notes={EXIT_AFTER: "5"}), "hollow-node-0")
        await bound(c, pod("bad", restart="Never", notes={EXIT_AFTER: "5", EXIT_CODE: "3"}),
                    "hollow-node-0")
        await bound(c, pod("forever", notes={EXIT_AFTER: "5"}), "hollow-node-0")
        for name in ("ok", "bad", "forever"):
            await wait_for_async(f"{name} running", lambda n=name: _is(c, n, "Running"))
        await clock.advance(6.0)
        await wait_for_async("ok succeeded", lambda: _is(c, "ok", "Succeeded"))
        await wait_for_async("bad failed", lambda: _is(c, "bad", "Failed"))
        ok = await c.get(PODS, "default", "ok")
        term = ok["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (0, "Completed")
        assert conditions(ok)["Ready"] == "False"
        bad = await c.get(PODS, "default", "bad")
        term = bad["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (3, "Error")
        assert await phase(c, "forever") == "Running"  # restartPolicy Always never ends


async def test_on_failure_restarts_the_container(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=1) as (c, _, clock):
        await bound(c, pod("flaky", restart="OnFailure",
                           notes={EXIT_AFTER: "5", EXIT_CODE: "1"}), "hollow-node-0")
        await wait_for_async("running", lambda: _is(c, "flaky", "Running"))
        await clock.advance(6.0)
        await wait_for_async("one restart", lambda: _restarts(c, "flaky", 1))
        p = await c.get(PODS, "default", "flaky")
        cs = p["status"]["containerStatuses"][0]
        assert cs["lastState"]["terminated"]["exitCode"] == 1
        assert p["status"]["phase"] == "Running"


async def _restarts(c: InProcessClient, name: str, n: int) -> bool:
    p = await c.get(PODS, "default", name)
    return any(s.get("restartCount") == n for s in p["status"].get("containerStatuses") or ())


async def test_pod_being_deleted_is_removed_at_once(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=1) as (c, _, _):
        await bound(c, pod("doomed"), "hollow-node-0")
        await wait_for_async("running", lambda: _is(c, "doomed", "Running"))
        deleted = await c.delete(PODS, "default", "doomed")
        assert deleted["metadata"]["deletionTimestamp"]  # graceful: the kubelet finishes it
        await wait_for_async("pod gone", lambda: _gone(c, "doomed"))


async def _gone(c: InProcessClient, name: str) -> bool:
    try:
        await c.get(PODS, "default", name)
    except StatusError as exc:
        return exc.code == 404
    return False


async def test_killed_node_leaves_its_pods_alone(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=2) as (c, nodes, _):
        await nodes.kill("hollow-node-1")
        await bound(c, pod("stuck"), "hollow-node-1")
        await bound(c, pod("fine"), "hollow-node-0")
        await wait_for_async("live node's pod running", lambda: _is(c, "fine", "Running"))
        assert await phase(c, "stuck") == "Pending"


async def test_node_marked_not_ready_is_set_ready_again(tmp_path: Path) -> None:
    async with hollow(tmp_path, count=1) as (c, _, _):
        node = await c.get(NODES, None, "hollow-node-0")
        conds = [dict(x, status="Unknown", reason="NodeStatusUnknown") if x["type"] == "Ready"
                 else x for x in node["status"]["conditions"]]
        await c.patch(NODES, None, "hollow-node-0", {"status": {"conditions": conds}},
                      subresource="status")
        await wait_for_async("Ready again", lambda: _ready(c))


async def _ready(c: InProcessClient) -> bool:
    return conditions(await c.get(NODES, None, "hollow-node-0"))["Ready"] == "True"
