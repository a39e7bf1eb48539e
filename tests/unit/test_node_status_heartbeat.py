"""The heartbeat against a real registry on a fake clock: registering, adopting, the Lease,
status written on change and at least every report interval, node events."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informers
from kubeling.client.interface import Obj
from kubeling.client.leader import micro_time
from kubeling.kubelet import node
from kubeling.kubelet.context import KubeletContext, KubeletOptions
from kubeling.kubelet.heartbeat import Heartbeat
from kubeling.runtime.protocol import ImageInfo, RuntimeFailure, RuntimeVersion
from kubeling.utils.clock import FakeClock, parse_rfc3339
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

NODES = kind("", "nodes")
LEASES = kind("coordination.k8s.io", "leases")
EVENTS = kind("", "events")
GI = 1024 ** 3


class FakeRuntime:
    name = "process"

    def __init__(self) -> None:
        self.down = False

    async def version(self) -> RuntimeVersion:
        if self.down:
            raise RuntimeFailure("Unavailable", "runtime not answering")
        return RuntimeVersion("process", "0.1.0")

    async def list_images(self) -> list[ImageInfo]:
        return [ImageInfo(id="sha256:1", repo_tags=("busybox:latest",), size=4096)]


class Objects:
    """The agent's informer view of its node: here, the node as last written."""

    beat: Heartbeat | None = None

    def node(self) -> Obj | None:
        return self.beat.last_node if self.beat is not None else None


class Machine:
    def __init__(self) -> None:
        self.memory_available = 8 * GI

    def __call__(self, _root: Path) -> node.Reading:
        return node.Reading(memory_total=16 * GI, memory_available=self.memory_available,
                            disk_total=100 * GI, disk_available=50 * GI, pid_max=100_000,
                            pids=100)


def make(registry, tmp_path: Path, clock: FakeClock, **opts: object
         ) -> tuple[Heartbeat, FakeRuntime, Machine, EventRecorder]:
    c = client(registry, "kubelet")
    options = KubeletOptions(node_name="n1", root_dir=tmp_path).replace(**opts)
    runtime = FakeRuntime()
    objects = Objects()
    recorder = EventRecorder(c, "kubelet", host="n1", clock=clock)
    ctx = KubeletContext(client=c, informers=Informers(c, clock=clock),
                         runtime=runtime,  # type: ignore[arg-type]
                         options=options, recorder=recorder,
                         objects=objects,  # type: ignore[arg-type]
                         clock=clock, node_ip="10.9.8.7")
    machine = Machine()
    beat = Heartbeat(ctx, kubelet_port=10250, reader=machine)
    objects.beat = beat
    return beat, runtime, machine, recorder


def conds(n: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in n["status"]["conditions"]}


async def reasons(registry) -> list[str]:
    events = await client(registry).list(EVENTS, "default")
    return [e["reason"] for e in events.items]


async def test_register_creates_the_node_and_records_the_kubelets_events(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_registry(tmp_path) as registry:
        beat, _, _, recorder = make(registry, tmp_path, clock, control_plane=True,
                                    register_with_taints=[{"key": "k", "effect": "NoSchedule"}])
        created = await beat.register()
        n = await client(registry).get(NODES, None, "n1")
        assert n["metadata"]["uid"] == created["metadata"]["uid"] == beat.node_uid
        assert n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
        assert n["spec"]["taints"] == [{"key": "k", "effect": "NoSchedule"}]
        assert {"type": "InternalIP", "address": "10.9.8.7"} in n["status"]["addresses"]
        assert n["status"]["nodeInfo"]["containerRuntimeVersion"] == "process://0.1.0"
        assert n["status"]["images"] == [{"names": ["busybox:latest"], "sizeBytes": 4096}]
        assert conds(n)["Ready"]["status"] == "True"
        await recorder.flush()
        got = await reasons(registry)
        for reason in ("Starting", "NodeHasSufficientMemory", "NodeHasNoDiskPressure",
                       "NodeHasSufficientPID", "NodeReady"):
            assert reason in got


async def test_a_restarted_agent_adopts_its_node(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_registry(tmp_path) as registry:
        first, _, _, _ = make(registry, tmp_path, clock)
        old = await first.register()
        await clock.advance(30)
        second, _, _, _ = make(registry, tmp_path, clock, node_labels={"disk": "ssd"})
        second.port = 4321
        adopted = await second.register()
        assert adopted["metadata"]["uid"] == old["metadata"]["uid"]
        n = await client(registry).get(NODES, None, "n1")
        assert n["metadata"]["labels"]["disk"] == "ssd"
        assert n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 4321
        # Still Ready since the first registration: the transition time is kept.
        ready = conds(n)["Ready"]
        assert ready["lastTransitionTime"] == conds(old)["Ready"]["lastTransitionTime"]
        assert parse_rfc3339(ready["lastHeartbeatTime"]) == pytest.approx(clock.now(), abs=1)


async def test_the_lease_is_owned_by_the_node_and_renewed_every_interval(tmp_path: Path
                                                                        ) -> None:
    clock = FakeClock()
    async with running_registry(tmp_path) as registry:
        beat, _, _, _ = make(registry, tmp_path, clock, lease_interval=10.0,
                             lease_duration=40)
        await beat.register()
        beat.start()
        try:
            await wait_for_async("the first renewal", lambda: beat.renewals >= 1)
            lease = await client(registry).get(LEASES, "kube-node-lease", "n1")
            assert lease["spec"]["holderIdentity"] == "n1"
            assert lease["spec"]["leaseDurationSeconds"] == 40
            assert lease["spec"]["renewTime"] == micro_time(clock.now())
            assert lease["metadata"]["ownerReferences"][0]["uid"] == beat.node_uid
            await clock.advance(9)
            assert beat.renewals == 1
            await clock.advance(1)
            await wait_for_async("the second renewal", lambda: beat.renewals >= 2)
            lease = await client(registry).get(LEASES, "kube-node-lease", "n1")
            assert lease["spec"]["renewTime"] == micro_time(clock.now())
            # Someone deletes the Lease: the next renewal makes it again.
            await client(registry).delete(LEASES, "kube-node-lease", "n1")
            await clock.advance(10)
            await wait_for_async("the third renewal", lambda: beat.renewals >= 3)
            assert await client(registry).get(LEASES, "kube-node-lease", "n1")
        finally:
            await beat.stop()


async def test_status_written_on_change_and_at_least_every_report_interval(tmp_path: Path
                                                                          ) -> None:
    clock = FakeClock()
    async with running_registry(tmp_path) as registry:
        beat, runtime, machine, recorder = make(
            registry, tmp_path, clock, status_update_interval=10.0,
            status_report_interval=60.0, lease_interval=1000.0)
        await beat.register()
        writes = beat.status_writes
        beat.start()
        try:
            for i in range(1, 5):  # nothing changes: measured every 10 s, not written
                await clock.advance(10)
                await wait_for_async(f"status pass {i}", lambda i=i: beat.status_checks >= i)
            assert beat.status_writes == writes
            # Memory runs low: written at the next pass, with the event.
            machine.memory_available = 50 * 1024 * 1024
            await clock.advance(10)
            await wait_for_async("status pass 5", lambda: beat.status_checks >= 5)
            assert beat.status_writes == writes + 1
            n = await client(registry).get(NODES, None, "n1")
            assert conds(n)["MemoryPressure"]["status"] == "True"
            assert conds(n)["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
            await recorder.flush()
            assert "NodeHasInsufficientMemory" in await reasons(registry)
            # Unchanged again: the next write is a full report interval after the last.
            for i in range(6, 11):
                await clock.advance(10)
                await wait_for_async(f"status pass {i}", lambda i=i: beat.status_checks >= i)
            assert beat.status_writes == writes + 1
            await clock.advance(10)
            await wait_for_async("status pass 11", lambda: beat.status_checks >= 11)
            assert beat.status_writes == writes + 2
            n = await client(registry).get(NODES, None, "n1")
            assert parse_rfc3339(conds(n)["Ready"]["lastHeartbeatTime"]) == \
                pytest.approx(clock.now(), abs=1)
            # The runtime stops answering: NotReady at once.
            runtime.down = True
            await clock.advance(10)
            await wait_for_async("status pass 12", lambda: beat.status_checks >= 12)
            n = await client(registry).get(NODES, None, "n1")
            ready = conds(n)["Ready"]
            assert (ready["status"], ready["reason"], ready["message"]) == (
                "False", "KubeletNotReady", "container runtime is down")
            await recorder.flush()
            assert "NodeNotReady" in await reasons(registry)
        finally:
            await beat.stop()


async def test_a_deleted_node_is_registered_again(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_registry(tmp_path) as registry:
        beat, _, _, _ = make(registry, tmp_path, clock)
        first = await beat.register()
        await client(registry).delete(NODES, None, "n1")
        beat.last_node = None  # what the informer shows once the deletion reaches it
        assert await beat.update_status()
        n = await client(registry).get(NODES, None, "n1")
        assert n["metadata"]["uid"] != first["metadata"]["uid"]
        assert beat.node_uid == n["metadata"]["uid"]
