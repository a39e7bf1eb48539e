"""Pod sync decisions on a FakeClock against a fake runtime: restarts, back-off, init order,
liveness kills and the restart policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubeling.kubelet.interfaces import ProbeKind, ProbeResult
from kubeling.kubelet.status import StatusManager
from kubeling.kubelet.sync import PodSyncer
from kubeling.utils.clock import FakeClock
from tests.unit.kubelet_fakes import FakeProbes, FakeVolumes, ctr, fake_context, make_pod


def _syncer(tmp_path: Path) -> tuple[PodSyncer, Any, Any, FakeClock, FakeProbes]:
    clock = FakeClock()
    ctx, runtime, recorder = fake_context(tmp_path, clock)
    probes = FakeProbes()
    syncer = PodSyncer(ctx, volumes=FakeVolumes(), probes=probes, status=StatusManager(ctx))
    return syncer, runtime, recorder, clock, probes


def _state(syncer: PodSyncer, name: str = "c") -> dict[str, Any]:
    status = syncer.status.status_of("u1")
    assert status is not None
    for s in status.get("initContainerStatuses", []) + status["containerStatuses"]:
        if s["name"] == name:
            return dict(s)
    raise AssertionError(name)


async def test_crash_loop_back_off_doubles_to_five_minutes_then_resets(tmp_path: Path) -> None:
    syncer, runtime, recorder, clock, _ = _syncer(tmp_path)
    pod = make_pod([ctr("c")])
    await syncer.sync(pod)
    assert runtime.attempts("c") == [0]
    runtime.exit("c", 1)
    await syncer.sync(pod)  # the first restart is at once
    assert runtime.attempts("c") == [0, 1]
    for attempt, delay in enumerate([10, 20, 40, 80, 160, 300, 300], start=2):
        runtime.exit("c", 1)
        outcome = await syncer.sync(pod)
        state = _state(syncer)
        assert state["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        minutes, seconds = divmod(delay, 60)
        shown = f"{minutes}m{seconds}s" if minutes else f"{seconds}s"
        assert state["state"]["waiting"]["message"] == \
            f"back-off {shown} restarting failed container=c pod=p_ns(u1)"
        assert state["lastState"]["terminated"]["exitCode"] == 1
        assert state["restartCount"] == attempt - 1
        assert outcome.retry_in == delay
        await clock.advance(delay - 1)
        await syncer.sync(pod)
        assert runtime.running("c") is None, f"restarted before {delay}s"
        await clock.advance(1)
        await syncer.sync(pod)
        assert runtime.running("c") is not None, f"not restarted after {delay}s"
        assert _state(syncer)["restartCount"] == attempt
    assert ("Warning", "BackOff", "Back-off restarting failed container c in pod p_ns(u1)") \
        in recorder.events
    # Ten minutes of running resets the back-off: the next crash restarts at once.
    await clock.advance(601)
    runtime.exit("c", 1)
    await syncer.sync(pod)
    assert runtime.running("c") is not None
    runtime.exit("c", 1)
    await syncer.sync(pod)
    assert "back-off 10s" in _state(syncer)["state"]["waiting"]["message"]


async def test_restart_policies(tmp_path: Path) -> None:
    cases = [("Never", 0, "Succeeded", False), ("Never", 3, "Failed", False),
             ("OnFailure", 0, "Succeeded", False), ("OnFailure", 3, "Running", True),
             ("Always", 0, "Running", True)]
    for policy, code, phase, restarted in cases:
        syncer, runtime, _, _, _ = _syncer(tmp_path / f"{policy}{code}")
        pod = make_pod([ctr("c")], restart_policy=policy)
        await syncer.sync(pod)
        runtime.exit("c", code)
        outcome = await syncer.sync(pod)
        assert outcome.phase == phase, (policy, code)
        assert (runtime.running("c") is not None) == restarted, (policy, code)
        terminated = _state(syncer)["state"].get("terminated")
        if not restarted:
            assert terminated["exitCode"] == code
            assert terminated["reason"] == ("Completed" if code == 0 else "Error")


async def test_init_containers_run_one_at_a_time_in_order(tmp_path: Path) -> None:
    syncer, runtime, recorder, _, _ = _syncer(tmp_path)
    pod = make_pod([ctr("app")], init=[ctr("first"), ctr("second")])
    await syncer.sync(pod)
    assert runtime.running("first") and not runtime.attempts("second")
    status = syncer.status.status_of("u1")
    assert status is not None and status["phase"] == "Pending"
    assert _state(syncer, "app")["state"]["waiting"]["reason"] == "PodInitializing"
    init = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert init["reason"] == "ContainersNotInitialized"
    assert init["message"] == "containers with incomplete status: [first second]"
    runtime.exit("first", 0)
    await syncer.sync(pod)
    assert runtime.running("second") and not runtime.attempts("app")
    runtime.exit("second", 0)
    await syncer.sync(pod)
    assert runtime.running("app")
    status = syncer.status.status_of("u1")
    assert status is not None and status["phase"] == "Running"
    assert [e[2] for e in recorder.events if e[1] == "Started"] == [
        "Started container first", "Started container second", "Started container app"]


async def test_a_failed_init_container_fails_a_never_pod_and_retries_otherwise(
        tmp_path: Path) -> None:
    syncer, runtime, _, _, _ = _syncer(tmp_path / "never")
    pod = make_pod([ctr("app")], init=[ctr("init")], restart_policy="Never")
    await syncer.sync(pod)
    runtime.exit("init", 2)
    assert (await syncer.sync(pod)).phase == "Failed"
    assert runtime.attempts("init") == [0] and not runtime.attempts("app")

    syncer, runtime, _, _, _ = _syncer(tmp_path / "always")
    pod = make_pod([ctr("app")], init=[ctr("init")])
    await syncer.sync(pod)
    runtime.exit("init", 2)
    assert (await syncer.sync(pod)).phase == "Pending"
    assert runtime.attempts("init") == [0, 1] and not runtime.attempts("app")


async def test_a_failed_liveness_probe_kills_and_restarts_the_container(tmp_path: Path) -> None:
    syncer, runtime, recorder, _, probes = _syncer(tmp_path)
    pod = make_pod([ctr("c")])
    pod["spec"]["terminationGracePeriodSeconds"] = 7
    await syncer.sync(pod)
    first = runtime.running("c")
    assert first is not None
    probes.results[(ProbeKind.LIVENESS, first.id)] = ProbeResult.FAILURE
    await syncer.sync(pod)
    assert (first.id, 7) in runtime.stops
    now = runtime.running("c")
    assert now is not None and now.id != first.id
    assert ("Normal", "Killing", "Container c failed liveness probe, will be restarted") \
        in recorder.events
    assert _state(syncer)["restartCount"] == 1
    assert _state(syncer)["lastState"]["terminated"]["exitCode"] == 137


async def test_readiness_feeds_ready_and_the_conditions(tmp_path: Path) -> None:
    syncer, runtime, _, _, probes = _syncer(tmp_path)
    pod = make_pod([ctr("c")])
    await syncer.sync(pod)
    c = runtime.running("c")
    assert c is not None
    probes.results[(ProbeKind.READINESS, c.id)] = ProbeResult.FAILURE
    await syncer.sync(pod)
    status = syncer.status.status_of("u1")
    assert status is not None
    ready = next(x for x in status["conditions"] if x["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ContainersNotReady", "containers with unready status: [c]")
    probes.results[(ProbeKind.READINESS, c.id)] = ProbeResult.SUCCESS
    await syncer.sync(pod)
    status = syncer.status.status_of("u1")
    assert status is not None
    assert next(x for x in status["conditions"] if x["type"] == "Ready")["status"] == "True"


async def test_terminate_stops_every_container_within_the_grace_period(tmp_path: Path) -> None:
    syncer, runtime, recorder, _, _ = _syncer(tmp_path)
    pod = make_pod([ctr("a"), ctr("b")])
    await syncer.sync(pod)
    state = await syncer.terminate(pod, 12)
    assert not state.running()
    assert sorted(t for _, t in runtime.stops) == [12, 12]
    assert {e[2] for e in recorder.events if e[1] == "Killing"} == {
        "Stopping container a", "Stopping container b"}
    assert all(sb.state.value == "SANDBOX_NOTREADY" for sb in state.sandboxes)


async def test_old_exited_containers_are_collected_keeping_the_last(tmp_path: Path) -> None:
    syncer, runtime, _, clock, _ = _syncer(tmp_path)
    pod = make_pod([ctr("c")])
    await syncer.sync(pod)
    for _ in range(3):
        runtime.exit("c", 1)
        await clock.advance(400)
        await syncer.sync(pod)
    assert len(runtime.containers) == 2  # the running one and the previous
