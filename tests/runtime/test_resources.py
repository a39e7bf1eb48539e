"""Resources on the OCI runtime, read back from the kernel: a memory limit that OOM-kills
(exit 137, reason OOMKilled, kept across a runtime restart), CFS quota and shares where the
kernel has them, usage from the container's cgroup, and no cgroup left once the container
and then the pod are removed.

The container's cgroup is where the runtime puts it: ``Cgroups(<runtime's parent>).path(
<sandbox's cgroup_parent>, <container id>)``. Each pod gets a parent of its own so that
parallel runs never share a cgroup. Pods use the host's network: cgroups do not depend on
the pod network, which has its own tests.
"""

from __future__ import annotations

import uuid

import pytest

from kubeling.runtime import open_runtime
from kubeling.runtime.oci.cgroups import Cgroups, shares_to_weight
from kubeling.runtime.protocol import (
    ContainerState,
    PodSandboxConfig,
    Resources,
)
from tests.cluster import require
from tests.runtime.conftest import IMAGE, RUNTIMES, Harness, eventually

MiB = 1 << 20
HOG = ("sh", "-c", "x=a; while :; do x=$x$x; done")


@pytest.fixture
def runtime_name() -> str:
    """Only the OCI runtime: the process runtime sets no cgroups."""
    for tool in RUNTIMES.get("oci", ("runc", "busybox")):
        require(tool)
    return "oci"


def cgroups(rt: Harness) -> Cgroups:
    return Cgroups(rt.options.cgroup_parent)


async def pod(rt: Harness, name: str) -> tuple[str, PodSandboxConfig, str]:
    """A sandbox under a cgroup parent of its own; its id, config and pod cgroup path."""
    parent = f"kubepods/burstable/pod{uuid.uuid4().hex}"
    config = rt.sandbox_config(name, cgroup_parent=parent, host_network=True)
    sid = await rt.runtime.run_pod_sandbox(config)
    rt.sandboxes.append(sid)
    await rt.ensure_image(IMAGE)
    return sid, config, cgroups(rt).path(parent)


async def container(rt: Harness, sid: str, sandbox: PodSandboxConfig, command: tuple[str, ...],
                    resources: Resources, name: str = "c") -> tuple[str, str]:
    """A started container; its id and cgroup path."""
    config = rt.container_config(sandbox, command, name=name, resources=resources)
    cid = await rt.runtime.create_container(sid, config, sandbox)
    await rt.runtime.start_container(cid)
    return cid, cgroups(rt).path(sandbox.cgroup_parent, cid)


async def test_memory_over_the_limit_is_oom_killed(rt: Harness) -> None:
    sid, sandbox, _ = await pod(rt, "oom")
    cid, _ = await container(rt, sid, sandbox, HOG, Resources(memory_limit=32 * MiB))
    status = await rt.exited(cid, timeout=60)
    assert (status.exit_code, status.reason) == (137, "OOMKilled"), status
    # the reason is on disk: a runtime started afresh over the same root says the same
    again = open_runtime(rt.name, rt.options)
    try:
        after = await again.container_status(cid)
        assert (after.exit_code, after.reason) == (137, "OOMKilled")
    finally:
        await again.close()


async def test_a_plain_kill_is_not_an_oom_kill(rt: Harness) -> None:
    sid, sandbox, _ = await pod(rt, "killed")
    cid, _ = await container(rt, sid, sandbox, ("sleep", "3600"),
                             Resources(memory_limit=32 * MiB))
    await rt.wait_state(cid, ContainerState.RUNNING)
    await rt.runtime.stop_container(cid, timeout=0)
    status = await rt.exited(cid)
    assert status.reason != "OOMKilled" and status.exit_code == 137, status


async def test_limits_reach_the_kernel(rt: Harness) -> None:
    cg = cgroups(rt)
    sid, sandbox, _ = await pod(rt, "limits")
    cid, path = await container(rt, sid, sandbox, ("sleep", "3600"), Resources(
        cpu_shares=512, cpu_quota=50_000, cpu_period=100_000, memory_limit=64 * MiB))
    await rt.wait_state(cid, ContainerState.RUNNING)
    assert cg.cpu_quota(path) == (50_000, 100_000)
    assert cg.cpu_shares(path) == (512 if cg.mode == "v1" else shares_to_weight(512))
    assert cg.memory_limit(path) == 64 * MiB
    # nothing asked, nothing set
    other, other_path = await container(rt, sid, sandbox, ("sleep", "3600"), Resources(),
                                        name="free")
    await rt.wait_state(other, ContainerState.RUNNING)
    quota = cg.cpu_quota(other_path)
    assert quota is not None and quota[0] == -1
    assert cg.memory_limit(other_path) == -1


async def test_stats_from_the_cgroup(rt: Harness) -> None:
    cg = cgroups(rt)
    sid, sandbox, _ = await pod(rt, "stats")
    # 4 MB held in a shell variable, then a busy loop (capped at a fifth of a CPU)
    busy = ("sh", "-c", "x=$(head -c 4000000 /dev/zero | tr '\\0' a); while :; do :; done")
    cid, path = await container(rt, sid, sandbox, busy, Resources(
        cpu_quota=20_000, cpu_period=100_000, memory_limit=128 * MiB))
    await rt.wait_state(cid, ContainerState.RUNNING)

    async def grown() -> object:
        stats = await rt.runtime.container_stats(cid)
        return (stats is not None and stats.cpu_usage_core_ns > 10_000_000
                and stats.memory_working_set_bytes > 4_000_000 and stats)

    await eventually("CPU and memory use in the stats", grown, timeout=30)
    stats = await rt.runtime.container_stats(cid)
    assert stats is not None and stats.container_id == cid and stats.processes >= 1
    raw = cg.stats(path)
    assert raw is not None and raw.cpu_usage_ns > 10_000_000 and raw.pids >= 1
    listed = {s.container_id for s in await rt.runtime.list_container_stats()}
    assert cid in listed


async def test_no_cgroup_left_after_removal(rt: Harness) -> None:
    cg = cgroups(rt)
    sid, sandbox, pod_path = await pod(rt, "gone")
    cid, path = await container(rt, sid, sandbox, ("sleep", "3600"),
                                Resources(cpu_shares=256, memory_limit=64 * MiB))
    await rt.wait_state(cid, ContainerState.RUNNING)
    assert cg.exists(path) and cg.exists(pod_path)
    assert cg.procs(pod_path)  # the pause process and the container's
    await rt.runtime.stop_container(cid, timeout=1)
    await rt.runtime.remove_container(cid)
    assert not cg.exists(path)
    assert cg.exists(pod_path)  # the sandbox still holds its pause process
    await rt.runtime.stop_pod_sandbox(sid)
    await rt.runtime.remove_pod_sandbox(sid)
    rt.sandboxes.remove(sid)
    assert not cg.exists(pod_path)
    assert cg.procs(pod_path) == []
