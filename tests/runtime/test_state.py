"""Conformance: mounts, adoption by a new runtime over the same directory, removal leaving
nothing, stats and images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubeling.runtime import open_runtime
from kubeling.runtime.protocol import ContainerState, Mount, SandboxState
from tests.runtime.conftest import (
    Harness,
    eventually,
    log_bytes,
    log_entries,
    read_until,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"


@needs_root
async def test_mounts_at_their_container_paths(rt: Harness, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("from the host\n")
    config_file = tmp_path / "settings.conf"
    config_file.write_text("key=value\n")
    target = f"/kubeling-rt-mount-{os.getpid()}"
    mounts = (Mount(container_path=f"{target}/rw", host_path=str(data)),
              Mount(container_path=f"{target}/ro.conf", host_path=str(config_file),
                    read_only=True))
    cid, config = await rt.run(
        "sh", "-c", f"cat {target}/rw/hello.txt {target}/ro.conf; echo new > {target}/rw/new;"
        f" echo x >> {target}/ro.conf || echo read-only; sleep 30", mounts=mounts)
    await eventually("the container's output",
                     lambda: log_bytes(config.log_path).count(b"\n") >= 3)
    lines = [c for *_, c in log_entries(config.log_path)]
    assert lines[:2] == [b"from the host", b"key=value"]
    assert b"read-only" in lines
    assert (data / "new").read_text() == "new\n"
    assert config_file.read_text() == "key=value\n"
    result = await rt.runtime.exec_sync(cid, ["cat", f"{target}/rw/hello.txt"], timeout=10)
    assert result.stdout == b"from the host\n"
    await rt.runtime.remove_container(cid)
    assert not os.path.exists(target)


async def test_mounts_without_root_are_reachable(rt: Harness, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("hi\n")
    cid, config = await rt.run(
        "sh", "-c", "cat data/hello.txt 2>/dev/null || cat /data/hello.txt",
        mounts=(Mount(container_path="/data", host_path=str(data)),))
    assert (await rt.exited(cid)).exit_code == 0
    assert [c for *_, c in log_entries(config.log_path)] == [b"hi"]


async def test_a_new_runtime_adopts_running_containers(rt: Harness) -> None:
    cid, config = await rt.run("cat", stdin=True)
    first = await rt.wait_state(cid, ContainerState.RUNNING)
    sandbox = await rt.runtime.pod_sandbox_status(first.sandbox_id)
    await rt.runtime.close()

    again = open_runtime(rt.name, rt.options)
    rt.runtime = again
    [adopted_box] = await again.list_pod_sandboxes()
    assert adopted_box == sandbox
    [adopted] = await again.list_containers()
    assert adopted == first
    assert adopted.labels == config.labels and adopted.annotations == config.annotations
    result = await again.exec_sync(cid, ["echo", "inside"], timeout=10)
    assert result.stdout == b"inside\n"
    session = await again.attach(cid, tty=False, stdin=True)
    await session.write(b"still here\n")
    await read_until(session, b"still here")
    await session.close()
    await again.stop_container(cid, 5)
    status = await again.container_status(cid)
    assert status.state == ContainerState.EXITED and not _alive(first.pid)


async def test_remove_leaves_no_process_and_no_directory(rt: Harness) -> None:
    cid, config = await rt.run("sh", "-c", "sleep 300 & sleep 300")
    status = await rt.wait_state(cid, ContainerState.RUNNING)
    sid = status.sandbox_id
    before = set(os.listdir(rt.root))
    await rt.runtime.remove_pod_sandbox(sid)
    rt.sandboxes.remove(sid)
    assert not _alive(status.pid)
    assert await rt.runtime.list_containers() == []
    assert await rt.runtime.list_pod_sandboxes() == []
    leftovers = [p for p in Path(rt.root).rglob("*") if sid in str(p) or cid in str(p)]
    assert leftovers == []
    assert set(os.listdir(rt.root)) == before
    assert os.path.exists(config.log_path)  # logs are the agent's to remove


async def test_stop_sandbox_stops_its_containers(rt: Harness) -> None:
    cid, _ = await rt.run("sleep", "300")
    status = await rt.wait_state(cid, ContainerState.RUNNING)
    await rt.runtime.stop_pod_sandbox(status.sandbox_id)
    assert (await rt.runtime.container_status(cid)).state == ContainerState.EXITED
    box = await rt.runtime.pod_sandbox_status(status.sandbox_id)
    assert box.state == SandboxState.NOTREADY


async def test_stats_of_a_busy_container(rt: Harness) -> None:
    cid, _ = await rt.run("sh", "-c", "while :; do :; done")
    await rt.wait_state(cid, ContainerState.RUNNING)

    async def busy() -> object:
        stats = await rt.runtime.container_stats(cid)
        return stats if stats and stats.cpu_usage_core_ns > 50_000_000 else None

    stats = await eventually("CPU use to show", busy)
    assert stats.memory_working_set_bytes > 0  # type: ignore[attr-defined]
    assert cid in {s.container_id for s in await rt.runtime.list_container_stats()}
    await rt.runtime.stop_container(cid, 0)
    assert await rt.runtime.container_stats(cid) is None


async def test_images_pull_list_status_remove(rt: Harness) -> None:
    image = rt.pullable
    ref = await rt.runtime.pull_image(image)
    assert ref
    assert await rt.runtime.pull_image(image) == ref  # pulled again: the same image
    info = await rt.runtime.image_status(image)
    assert info is not None and info.id == ref
    assert ref in {i.id for i in await rt.runtime.list_images()}
    await rt.runtime.remove_image(image)
    assert await rt.runtime.image_status(image) is None
    await rt.runtime.remove_image(image)
