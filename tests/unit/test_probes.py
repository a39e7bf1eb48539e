"""The probe manager on a fake clock: delays, periods, thresholds, restarts, startup gating."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from kubeling.client.interface import Obj
from kubeling.kubelet.context import CONTAINER_NAME, POD_UID, KubeletContext, KubeletOptions
from kubeling.kubelet.interfaces import ProbeKind, ProbeResult
from kubeling.kubelet.probes import PROBE_TOTAL, ProbeManager
from kubeling.runtime.protocol import ContainerState, ContainerStatus, ExecResult, NotFound
from kubeling.utils.clock import FakeClock, rfc3339
from kubeling.utils.metrics import REGISTRY
from kubeling.utils.tasks import cancel_all

LIVE, READY, START = ProbeKind.LIVENESS, ProbeKind.READINESS, ProbeKind.STARTUP
OK, FAIL, UNKNOWN = ProbeResult.SUCCESS, ProbeResult.FAILURE, ProbeResult.UNKNOWN


class FakeRuntime:
    """exec_sync answers from ``healthy``: command[0] is a probe's name."""

    name = "fake"

    def __init__(self) -> None:
        self.healthy: dict[str, bool] = {}
        self.calls: list[tuple[str, str]] = []
        self.owners: dict[str, tuple[str, str]] = {}  # container id → (pod uid, name)

    async def container_status(self, container_id: str) -> ContainerStatus:
        if container_id not in self.owners:
            raise NotFound(container_id)
        uid, name = self.owners[container_id]
        return ContainerStatus(id=container_id, sandbox_id="s", name=name, attempt=0,
                               state=ContainerState.RUNNING, image="i", image_ref="i",
                               created_at=0.0, labels={POD_UID: uid, CONTAINER_NAME: name})

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        self.calls.append((container_id, command[0]))
        if self.healthy.get(command[0], True):
            return ExecResult(0, b"", b"")
        return ExecResult(1, f"{command[0]} is down".encode(), b"")

    def count(self, probe: str) -> int:
        return sum(1 for _, p in self.calls if p == probe)


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        assert obj["kind"] == "Pod"
        self.events.append((type_, reason, message))

    def messages(self, reason: str = "Unhealthy") -> list[str]:
        return [m for _, r, m in self.events if r == reason]


class FakeStatus:
    def __init__(self) -> None:
        self.statuses: dict[str, Obj] = {}

    def status_of(self, pod_uid: str) -> Obj | None:
        return self.statuses.get(pod_uid)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime()
        self.recorder = FakeRecorder()
        self.status = FakeStatus()
        self.woken: list[str] = []
        ctx = KubeletContext(client=cast(Any, None), informers=cast(Any, None),
                             runtime=cast(Any, self.runtime),
                             options=KubeletOptions(node_name="n1", root_dir=tmp),
                             recorder=cast(Any, self.recorder), objects=cast(Any, None),
                             clock=self.clock)
        self.probes = ProbeManager(ctx, status=self.status, wake=self.woken.append)

    def run(self, cid: str, *, started: float | None = None, uid: str = "u1",
            name: str = "main") -> None:
        """The container ``cid`` is running (since now, or since ``started``)."""
        when = self.clock.now() if started is None else started
        self.status.statuses[uid] = {"phase": "Running", "podIP": "10.1.0.5",
                                     "containerStatuses": [{
                                         "name": name, "containerID": f"process://{cid}",
                                         "state": {"running": {"startedAt": rfc3339(when)}}}]}

    def exited(self, cid: str, *, uid: str = "u1", name: str = "main") -> None:
        self.status.statuses[uid] = {"phase": "Running", "containerStatuses": [{
            "name": name, "containerID": f"process://{cid}",
            "state": {"terminated": {"exitCode": 1}}}]}

    async def advance(self, seconds: float, step: float = 0.25) -> None:
        for _ in range(round(seconds / step)):
            await self.clock.advance(step)
            for _ in range(10):
                await asyncio.sleep(0)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await r.probes.stop()
    await cancel_all()


def pod(uid: str = "u1", restart: str = "Always", **probes: Obj) -> Obj:
    container: Obj = {"name": "main"}
    for field, spec in probes.items():
        container[field] = spec
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "uid": uid},
            "spec": {"restartPolicy": restart, "containers": [container]}}


def exec_probe(name: str, **fields: int) -> Obj:
    return {"exec": {"command": [name]}, **fields}


async def test_initial_results_per_kind_and_none_without_a_probe(rig: Rig) -> None:
    rig.probes.add_pod(pod(livenessProbe=exec_probe("live", initialDelaySeconds=100),
                           readinessProbe=exec_probe("ready", initialDelaySeconds=100)))
    rig.probes.start()
    assert rig.probes.result_for(READY, "u1", "main", "c1") is FAIL
    assert rig.probes.result_for(START, "u1", "main", "c1") is None
    rig.run("c1")
    assert rig.probes.result(READY, "c1") is FAIL  # known from the status before any probe
    await rig.advance(1)
    assert rig.probes.result(READY, "process://c1") is FAIL
    assert rig.probes.result(LIVE, "c1") is OK
    assert rig.probes.result(START, "c1") is None
    assert rig.runtime.calls == []


async def test_initial_delay_then_every_period(rig: Rig) -> None:
    rig.probes.add_pod(pod(readinessProbe=exec_probe("ready", initialDelaySeconds=5,
                                                     periodSeconds=10)))
    rig.probes.start()
    rig.run("c1")
    await rig.advance(4.75)
    assert rig.runtime.count("ready") == 0
    await rig.advance(0.5)
    assert rig.runtime.count("ready") == 1
    assert rig.probes.result(READY, "c1") is OK
    assert rig.woken == ["u1"]
    await rig.advance(9.5)
    assert rig.runtime.count("ready") == 1
    await rig.advance(0.5)
    assert rig.runtime.count("ready") == 2
    await rig.advance(30)
    assert rig.runtime.count("ready") == 5
    assert rig.woken == ["u1"]  # no change, no wake


async def test_liveness_failure_threshold_events_hold_and_restart(rig: Rig) -> None:
    rig.probes.add_pod(pod(livenessProbe=exec_probe("live", periodSeconds=2,
                                                    failureThreshold=3)))
    rig.probes.start()
    rig.runtime.healthy["live"] = False
    rig.run("c1")
    await rig.advance(0.5)
    assert rig.runtime.count("live") == 1
    await rig.advance(2)
    assert rig.probes.result(LIVE, "c1") is OK  # two failures: still below the threshold
    assert rig.woken == []
    await rig.advance(2)
    assert rig.runtime.count("live") == 3
    assert rig.probes.result(LIVE, "c1") is FAIL
    assert rig.woken == ["u1"]
    assert rig.recorder.messages() == ["Liveness probe failed: live is down"] * 3
    await rig.advance(10)
    assert rig.runtime.count("live") == 3  # on hold until the container is replaced
    rig.runtime.healthy["live"] = True
    rig.run("c2")
    await rig.advance(1)
    assert rig.probes.result(LIVE, "c2") is OK
    assert rig.probes.result(LIVE, "c1") is None  # the old run's result is gone
    assert rig.runtime.calls[-1] == ("c2", "live")


async def test_readiness_thresholds_flip_both_ways(rig: Rig) -> None:
    rig.probes.add_pod(pod(readinessProbe=exec_probe("ready", periodSeconds=1,
                                                     successThreshold=2,
                                                     failureThreshold=2)))
    rig.probes.start()
    rig.run("c1")
    await rig.advance(0.5)
    assert rig.probes.result(READY, "c1") is FAIL  # one success of two
    await rig.advance(1)
    assert rig.probes.result(READY, "c1") is OK
    rig.runtime.healthy["ready"] = False
    await rig.advance(1)
    assert rig.probes.result(READY, "c1") is OK
    await rig.advance(1)
    assert rig.probes.result(READY, "c1") is FAIL
    assert rig.woken == ["u1", "u1"]
    assert rig.recorder.messages() == ["Readiness probe failed: ready is down"] * 2
    rig.runtime.healthy["ready"] = True
    await rig.advance(2)
    assert rig.probes.result(READY, "c1") is OK  # readiness is never put on hold


async def test_startup_gates_liveness_and_readiness(rig: Rig) -> None:
    rig.probes.add_pod(pod(startupProbe=exec_probe("start", periodSeconds=1,
                                                   failureThreshold=30),
                           livenessProbe=exec_probe("live", periodSeconds=1),
                           readinessProbe=exec_probe("ready", periodSeconds=1)))
    rig.probes.start()
    rig.runtime.healthy["start"] = False
    rig.run("c1")
    await rig.advance(4.5)
    assert rig.runtime.count("start") == 5  # at 0, 1, 2, 3 and 4 seconds
    assert rig.runtime.count("live") == rig.runtime.count("ready") == 0
    assert rig.probes.result(START, "c1") is UNKNOWN
    assert rig.probes.result(READY, "c1") is FAIL
    rig.runtime.healthy["start"] = True
    await rig.advance(1)
    assert rig.probes.result(START, "c1") is OK
    await rig.advance(2)
    assert rig.runtime.count("start") == 6  # not probed again once it succeeded
    assert rig.runtime.count("live") >= 1 and rig.runtime.count("ready") >= 1
    assert rig.probes.result(READY, "c1") is OK


async def test_startup_failure_is_final_for_that_container(rig: Rig) -> None:
    rig.probes.add_pod(pod(startupProbe=exec_probe("start", periodSeconds=1,
                                                   failureThreshold=2)))
    rig.probes.start()
    rig.runtime.healthy["start"] = False
    rig.run("c1")
    await rig.advance(3)
    assert rig.probes.result(START, "c1") is FAIL
    assert rig.runtime.count("start") == 2
    assert rig.recorder.messages() == ["Startup probe failed: start is down"] * 2


async def test_terminated_container_under_never_stops_probing(rig: Rig) -> None:
    rig.probes.add_pod(pod(restart="Never", readinessProbe=exec_probe("ready",
                                                                     periodSeconds=1)))
    rig.probes.start()
    rig.run("c1")
    await rig.advance(2)
    assert rig.probes.result(READY, "c1") is OK
    rig.exited("c1")
    await rig.advance(2)
    assert rig.probes.result(READY, "c1") is FAIL
    calls = rig.runtime.count("ready")
    rig.run("c1")
    await rig.advance(3)
    assert rig.runtime.count("ready") == calls


async def test_remove_pod_stops_workers_and_forgets_results(rig: Rig) -> None:
    rig.probes.add_pod(pod(readinessProbe=exec_probe("ready", periodSeconds=1)))
    rig.probes.add_pod(pod(readinessProbe=exec_probe("ready", periodSeconds=1)))  # idempotent
    rig.probes.start()
    rig.run("c1")
    await rig.advance(1.5)
    assert rig.runtime.count("ready") == 2
    rig.probes.remove_pod("u1")
    await rig.advance(3)
    assert rig.runtime.count("ready") == 2
    assert rig.probes.result(READY, "c1") is None


async def test_errored_probe_keeps_its_result(rig: Rig) -> None:
    rig.probes.add_pod(pod(readinessProbe={"httpGet": {"port": "nope"}, "periodSeconds": 1}))
    rig.probes.start()
    rig.run("c1")
    await rig.advance(1.5)
    assert rig.probes.result(READY, "c1") is FAIL
    assert rig.recorder.messages()[0] == \
        "Readiness probe errored and resulted in unknown state: port nope not found"


async def test_an_unseen_id_is_guessed_then_learned_from_the_runtime(rig: Rig) -> None:
    rig.probes.add_pod(pod(readinessProbe=exec_probe("ready", initialDelaySeconds=60)))
    rig.probes.add_pod(pod(uid="u2"))  # no probes at all
    rig.probes.start()
    rig.runtime.owners.update({"c1": ("u1", "main"), "x2": ("u2", "main")})
    # The agent computes u1's first status with its new container before any worker saw it.
    assert rig.probes.result(READY, "c1") is FAIL
    await rig.advance(0.5)
    assert rig.woken == []  # the guess was right
    # u2's container has no readiness probe; the guess (a u1 worker still awaits) is wrong
    # until the runtime says whose container it is, and u2 is woken to correct it.
    rig.status.statuses["u1"] = {"phase": "Pending"}
    assert rig.probes.result(READY, "x2") is FAIL
    await rig.advance(0.5)
    assert rig.woken == ["u2"]
    assert rig.probes.result(READY, "x2") is None
    assert rig.probes.result_for(READY, "u2", "main", "x2") is None


async def test_an_unseen_id_answered_none_wakes_the_pod_once_known(rig: Rig) -> None:
    rig.probes.add_pod(pod(readinessProbe=exec_probe("ready", initialDelaySeconds=60)))
    rig.probes.start()
    rig.run("c1")
    await rig.advance(0.5)  # the worker is settled on a running c1
    assert rig.probes.result(READY, "c9") is None  # no worker awaits: guessed "no probe"
    rig.runtime.owners["c9"] = ("u1", "main")
    rig.run("c9")
    await rig.advance(0.5)
    assert rig.probes.result(READY, "c9") is FAIL
    assert "u1" in rig.woken


async def test_probe_total_metric(rig: Rig) -> None:
    labels = {"probe_type": "Liveness", "container": "main", "pod": "web",
              "namespace": "default"}

    def value(result: str) -> float:
        return REGISTRY.get_sample_value("prober_probe_total",
                                         {**labels, "result": result}) or 0.0

    before_ok, before_failed = value("successful"), value("failed")
    rig.probes.add_pod(pod(livenessProbe=exec_probe("live", periodSeconds=1)))
    rig.probes.start()
    rig.run("c1")
    await rig.advance(1.5)
    rig.runtime.healthy["live"] = False
    await rig.advance(1)
    assert value("successful") - before_ok == 2
    assert value("failed") - before_failed == 1
    assert PROBE_TOTAL is not None
