"""The OCI runtime's cgroups module over fake v1 (hybrid) and v2 trees, and once over the
host's real cgroups (as root): what runc is asked for, and what is read back."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from kubeling.runtime.oci import cgroups as cgmod
from kubeling.runtime.oci.cgroups import (
    Cgroups,
    CgroupStats,
    detect_mode,
    pod_cgroup_parent,
    shares_to_weight,
)
from kubeling.runtime.protocol import Resources

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real cgroups)")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v1_tree(tmp_path: Path, *, combined: bool = True, memsw: bool = True) -> Path:
    """A hybrid layout: cpu and cpuacct sharing one mount (with symlinks), memory, pids,
    cpuset, a named hierarchy and the empty unified tree."""
    root = tmp_path / "cg"
    if combined:
        (root / "cpu,cpuacct").mkdir(parents=True)
        (root / "cpu").symlink_to("cpu,cpuacct")
        (root / "cpuacct").symlink_to("cpu,cpuacct")
    else:
        for name in ("cpu", "cpuacct"):
            (root / name).mkdir(parents=True)
    for name in ("memory", "pids", "cpuset", "systemd", "unified"):
        (root / name).mkdir(parents=True, exist_ok=True)
    if memsw:
        write(root / "memory" / "memory.memsw.limit_in_bytes", "9223372036854771712\n")
    write(root / "cpuset" / "cpuset.cpus", "0-3\n")
    write(root / "cpuset" / "cpuset.mems", "0\n")
    return root


def v2_tree(tmp_path: Path) -> Path:
    root = tmp_path / "cg2"
    write(root / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    write(root / "cgroup.subtree_control", "")
    return root


# ----- mode, paths, resources ---------------------------------------------------------------


def test_mode_of_fake_trees(tmp_path: Path) -> None:
    assert detect_mode(v1_tree(tmp_path)) == "v1"
    assert detect_mode(v2_tree(tmp_path)) == "v2"
    assert Cgroups(root=v2_tree(tmp_path)).mode == "v2"
    with pytest.raises(ValueError):
        Cgroups(root=tmp_path, mode="v3")


def test_mode_of_the_host_follows_its_mount() -> None:
    root = Path("/sys/fs/cgroup")
    fstype = cgmod._mount_fstype(root)
    if fstype is None:
        pytest.skip("no cgroup mount on this machine")
    assert detect_mode(root) == ("v2" if fstype == "cgroup2" else "v1")


def test_paths(tmp_path: Path) -> None:
    cg = Cgroups("kubeling", root=v1_tree(tmp_path))
    assert cg.path("kubepods/burstable/podabc", "c1") == "/kubeling/kubepods/burstable/podabc/c1"
    assert cg.path("/kubepods/", "pause") == "/kubeling/kubepods/pause"
    assert Cgroups("/node-a/", root=cg.root).path("x") == "/node-a/x"
    with pytest.raises(ValueError):
        cg.path("kubepods", "../escape")
    with pytest.raises(ValueError):
        cg.stats("/")
    assert pod_cgroup_parent("Guaranteed", "u1") == "kubepods/podu1"
    assert pod_cgroup_parent("Burstable", "u1") == "kubepods/burstable/podu1"
    assert pod_cgroup_parent("BestEffort", "u1") == "kubepods/besteffort/podu1"
    with pytest.raises(ValueError):
        pod_cgroup_parent("Platinum", "u1")


def test_linux_resources_only_what_is_set(tmp_path: Path) -> None:
    cg = Cgroups(root=v1_tree(tmp_path))
    assert cg.linux_resources(Resources()) == {}
    assert cg.linux_resources(Resources(cpu_shares=512)) == {"cpu": {"shares": 512}}
    assert cg.linux_resources(Resources(cpu_quota=50_000, cpu_period=100_000)) == {
        "cpu": {"quota": 50_000, "period": 100_000}}
    assert cg.linux_resources(Resources(memory_limit=32 << 20)) == {
        "memory": {"limit": 32 << 20, "swap": 32 << 20}}
    # The kernel's bounds: shares 2..262144, a quota of at least 1 ms.
    assert cg.linux_resources(Resources(cpu_shares=1, cpu_quota=10, cpu_period=0)) == {
        "cpu": {"shares": 2, "quota": 1000, "period": 100_000}}
    assert cg.linux_resources(Resources(cpu_shares=10**7))["cpu"]["shares"] == 262144


def test_no_swap_limit_where_swap_is_not_accounted(tmp_path: Path) -> None:
    cg = Cgroups(root=v1_tree(tmp_path, memsw=False))
    assert cg.linux_resources(Resources(memory_limit=1 << 20)) == {"memory": {"limit": 1 << 20}}
    v2 = Cgroups(root=v2_tree(tmp_path))
    assert "swap" not in v2.linux_resources(Resources(memory_limit=1 << 20))["memory"]
    write(v2.root / "kubeling" / "memory.swap.max", "max\n")
    assert v2.linux_resources(Resources(memory_limit=1 << 20))["memory"]["swap"] == 1 << 20


def test_shares_to_weight_as_runc() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39


# ----- reading v1 ---------------------------------------------------------------------------


def fill_v1(root: Path, rel: str) -> None:
    write(root / "cpuacct" / rel / "cpuacct.usage", "123456789\n")
    write(root / "cpu" / rel / "cpu.cfs_quota_us", "50000\n")
    write(root / "cpu" / rel / "cpu.cfs_period_us", "100000\n")
    write(root / "cpu" / rel / "cpu.shares", "512\n")
    write(root / "memory" / rel / "memory.usage_in_bytes", "10485760\n")
    write(root / "memory" / rel / "memory.limit_in_bytes", "33554432\n")
    write(root / "memory" / rel / "memory.stat",
          "cache 4096\nrss 2000\ntotal_inactive_file 1048576\ntotal_rss 4194304\n")
    write(root / "memory" / rel / "memory.oom_control",
          "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    write(root / "pids" / rel / "pids.current", "3\n")


@pytest.mark.parametrize("combined", [True, False])
def test_v1_reads(tmp_path: Path, combined: bool) -> None:
    root = v1_tree(tmp_path, combined=combined)
    cg = Cgroups(root=root)
    assert cg.mode == "v1"
    path = cg.path("pod1", "c1")
    assert cg.stats(path) is None and not cg.exists(path)
    fill_v1(root, path.strip("/"))
    assert cg.exists(path)
    assert cg.stats(path) == CgroupStats(cpu_usage_ns=123456789, memory_working_set=9437184,
                                         memory_rss=4194304, pids=3)
    assert cg.oom_killed(path)
    assert cg.cpu_quota(path) == (50_000, 100_000)
    assert cg.cpu_shares(path) == 512
    assert cg.memory_limit(path) == 32 << 20


def test_v1_unlimited_and_no_oom(tmp_path: Path) -> None:
    root = v1_tree(tmp_path)
    cg = Cgroups(root=root)
    rel = "kubeling/c"
    fill_v1(root, rel)
    write(root / "cpu" / rel / "cpu.cfs_quota_us", "-1\n")
    write(root / "memory" / rel / "memory.limit_in_bytes", "9223372036854771712\n")
    write(root / "memory" / rel / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")
    # inactive file pages above usage: the working set stays 0
    write(root / "memory" / rel / "memory.usage_in_bytes", "1000\n")
    assert cg.cpu_quota("/" + rel) == (-1, 100_000)
    assert cg.memory_limit("/" + rel) == -1
    assert not cg.oom_killed("/" + rel)
    stats = cg.stats("/" + rel)
    assert stats is not None and stats.memory_working_set == 0


def test_v1_pids_fall_back_to_cgroup_procs(tmp_path: Path) -> None:
    root = v1_tree(tmp_path)
    cg = Cgroups(root=root)
    rel = "kubeling/pod"
    fill_v1(root, rel)
    (root / "pids" / rel / "pids.current").unlink()
    write(root / "memory" / rel / "cgroup.procs", "10\n11\n")
    write(root / "memory" / rel / "c1" / "cgroup.procs", "12\n10\n")
    assert cg.procs("/" + rel) == [10, 11, 12]
    stats = cg.stats("/" + rel)
    assert stats is not None and stats.pids == 3


# ----- reading v2 ---------------------------------------------------------------------------


def test_v2_reads(tmp_path: Path) -> None:
    root = v2_tree(tmp_path)
    cg = Cgroups(root=root)
    path = cg.path("pod1", "c1")
    assert cg.stats(path) is None
    d = root / path.strip("/")
    write(d / "cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n")
    write(d / "memory.current", "8388608\n")
    write(d / "memory.stat", "anon 3145728\nfile 2097152\ninactive_file 1048576\n")
    write(d / "pids.current", "2\n")
    write(d / "memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    write(d / "cpu.max", "50000 100000\n")
    write(d / "cpu.weight", "20\n")
    write(d / "memory.max", "33554432\n")
    assert cg.stats(path) == CgroupStats(cpu_usage_ns=2_500_000, memory_working_set=7340032,
                                         memory_rss=3145728, pids=2)
    assert cg.oom_killed(path)
    assert cg.cpu_quota(path) == (50_000, 100_000)
    assert cg.cpu_shares(path) == 20
    assert cg.memory_limit(path) == 32 << 20
    write(d / "cpu.max", "max 100000\n")
    write(d / "memory.max", "max\n")
    write(d / "memory.events", "oom 1\noom_kill 0\n")
    assert cg.cpu_quota(path) == (-1, 100_000)
    assert cg.memory_limit(path) == -1
    assert not cg.oom_killed(path)


def test_v2_ensure_parent_enables_controllers(tmp_path: Path) -> None:
    root = v2_tree(tmp_path)
    cg = Cgroups("kubeling/node1", root=root)
    cg.ensure_parent()
    assert (root / "kubeling" / "node1").is_dir()
    # a regular file keeps the last write: the controllers asked of the root
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    # the new levels have no cgroup.controllers in a fake tree: nothing to enable there
    assert not (root / "kubeling" / "cgroup.subtree_control").exists()
    write(root / "cgroup.subtree_control", "cpu memory pids\n")
    cg.ensure_parent()  # already enabled: nothing written
    assert (root / "cgroup.subtree_control").read_text() == "cpu memory pids\n"


# ----- v1 parent and removal ----------------------------------------------------------------


def test_v1_ensure_parent_in_each_hierarchy(tmp_path: Path) -> None:
    root = v1_tree(tmp_path)
    write(root / "cpuset" / "kubeling" / "cpuset.cpus", "")  # a new cpuset: empty
    write(root / "cpuset" / "kubeling" / "cpuset.mems", "\n")
    cg = Cgroups("kubeling/node", root=root)
    cg.ensure_parent()
    for name in ("cpu,cpuacct", "memory", "pids", "cpuset", "systemd"):
        assert (root / name / "kubeling" / "node").is_dir(), name
    assert not (root / "unified" / "kubeling").exists()
    assert (root / "cpuset" / "kubeling" / "cpuset.cpus").read_text() == "0-3"
    assert (root / "cpuset" / "kubeling" / "cpuset.mems").read_text() == "0"
    cg.ensure_parent()  # again: fine


def test_remove_deepest_first_everywhere_and_idempotent(tmp_path: Path) -> None:
    root = v1_tree(tmp_path)
    cg = Cgroups(root=root)
    pod = cg.path("kubepods", "burstable", "podu")
    for name in ("cpu,cpuacct", "memory", "pids", "systemd", "unified"):
        (root / name / pod.strip("/") / "c1").mkdir(parents=True)
        (root / name / pod.strip("/") / "pause" / "nested").mkdir(parents=True)
    (root / "memory" / "kubeling" / "kubepods" / "burstable" / "podother").mkdir()
    cg.remove(pod)
    for name in ("cpu,cpuacct", "memory", "pids", "systemd", "unified"):
        assert not (root / name / pod.strip("/")).exists(), name
    assert (root / "memory" / "kubeling" / "kubepods" / "burstable" / "podother").is_dir()
    assert not cg.exists(pod)
    cg.remove(pod)  # gone already


def test_remove_retries_a_busy_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    root = v1_tree(tmp_path)
    cg = Cgroups(root=root)
    (root / "memory" / "kubeling" / "c").mkdir(parents=True)
    (root / "pids" / "kubeling" / "c").mkdir(parents=True)
    real_rmdir = os.rmdir
    busy = {"memory": 3, "pids": 10**6}
    monkeypatch.setattr(cgmod, "REMOVE_PAUSE", 0.001)

    def rmdir(path: str | Path) -> None:
        for name in busy:
            if f"/{name}/" in str(path) and busy[name] > 0:
                busy[name] -= 1
                raise OSError(errno.EBUSY, "Device or resource busy")
        real_rmdir(path)

    monkeypatch.setattr(cgmod.os, "rmdir", rmdir)
    cg.remove("/kubeling/c")
    assert not (root / "memory" / "kubeling" / "c").exists()  # busy a moment, then gone
    assert (root / "pids" / "kubeling" / "c").exists()  # busy for good: left, logged
    assert "still busy" in caplog.text


# ----- the host's cgroups -------------------------------------------------------------------


@root_only
def test_real_cgroup_with_a_process(tmp_path: Path) -> None:
    parent = f"kubeling-test-{os.getpid()}"
    cg = Cgroups(parent)
    path = cg.path("pod", "c")
    if cg.mode == "v1":
        for name in ("cpu", "cpuacct", "memory", "pids"):
            base = cg.controller_dir(name)
            assert base is not None
            (base / path.strip("/")).mkdir(parents=True, exist_ok=True)
        member = cg.controller_dir("memory")
    else:
        cg.ensure_parent()
        (cg.root / parent / "pod").mkdir(exist_ok=True)
        cg._enable_subtree(cg.root / parent / "pod")
        (cg.root / path.strip("/")).mkdir()
        member = cg.root
    assert member is not None
    proc = subprocess.Popen(["sleep", "60"])
    try:
        (member / path.strip("/") / "cgroup.procs").write_text(str(proc.pid))
        if cg.mode == "v1":
            (cg.controller_dir("pids") / path.strip("/") /  # type: ignore[operator]
             "cgroup.procs").write_text(str(proc.pid))
        assert cg.procs(path) == [proc.pid]
        assert cg.procs(cg.path("pod")) == [proc.pid]
        stats = cg.stats(path)
        assert stats is not None and stats.pids == 1 and stats.memory_working_set >= 0
        assert cg.cpu_quota(path) == (-1, 100_000)
        assert cg.memory_limit(path) == -1
        assert not cg.oom_killed(path)
    finally:
        proc.kill()
        proc.wait()
        # the dead process leaves the cgroup; remove() waits out the moment it stays busy
        deadline = time.monotonic() + 5
        while cg.procs(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        cg.remove("/" + parent)
    assert not cg.exists("/" + parent)
    assert cg.stats(path) is None


@root_only
def test_real_cgroup2_tree(tmp_path: Path) -> None:
    """The v2 code on a real cgroup2 mount: the host's own when it is v2, else hybrid's
    ``unified`` tree (without controllers: CPU time still counts, the rest reads as 0)."""
    root = Path("/sys/fs/cgroup")
    if detect_mode(root) != "v2":
        root = root / "unified"
        if cgmod._mount_fstype(root) != "cgroup2":
            pytest.skip("no cgroup2 mount")
    parent = f"kubeling-test2-{os.getpid()}"
    cg = Cgroups(parent, root=root)
    assert cg.mode == "v2"
    cg.ensure_parent()
    path = cg.path("c")
    (root / path.strip("/")).mkdir()
    proc = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        (root / path.strip("/") / "cgroup.procs").write_text(str(proc.pid))
        assert cg.procs(path) == [proc.pid]
        deadline = time.monotonic() + 10
        while True:
            stats = cg.stats(path)
            assert stats is not None and stats.pids == 1
            if stats.cpu_usage_ns > 1_000_000 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert stats.cpu_usage_ns > 1_000_000
        assert not cg.oom_killed(path)
    finally:
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while cg.procs(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        cg.remove("/" + parent)
    assert not cg.exists("/" + parent) and cg.stats(path) is None
