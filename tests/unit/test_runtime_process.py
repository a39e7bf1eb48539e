"""The process runtime's own promises beyond the conformance suite: mounts without root,
containers outliving a SIGKILLed agent, log reopening, the shim's detachment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from kubeling.runtime import RuntimeOptions
from kubeling.runtime.process import ProcessRuntime
from kubeling.runtime.protocol import (
    ContainerConfig,
    ContainerState,
    Mount,
    PodSandboxConfig,
)

SANDBOX = PodSandboxConfig(uid="u", namespace="ns", name="p", labels={"k": "v"})


def config(tmp: Path, *command: str, **kw: object) -> ContainerConfig:
    return ContainerConfig(name="c", attempt=0, image="host", command=command,
                           log_path=str(tmp / "logs" / "c.log"), **kw)  # type: ignore[arg-type]


async def wait_state(rt: ProcessRuntime, cid: str, state: ContainerState) -> None:
    deadline = time.monotonic() + 10
    while (await rt.container_status(cid)).state != state:
        assert time.monotonic() < deadline, f"container never reached {state}"
        await asyncio.sleep(0.02)


async def test_without_root_mounts_are_symlinks_in_the_containers_directory(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "f").write_text("content\n")
    rt = ProcessRuntime(RuntimeOptions(root_dir=tmp_path / "rt"))
    rt.privileged = False
    sid = await rt.run_pod_sandbox(SANDBOX)
    mounts = (Mount(container_path="/etc/config", host_path=str(data)),)
    # its own directory holds a symlink at the container path
    cid = await rt.create_container(sid, config(
        tmp_path, "sh", "-c", "cat etc/config/sub/f", mounts=mounts), SANDBOX)
    await rt.start_container(cid)
    await wait_state(rt, cid, ContainerState.EXITED)
    # a working dir under a mount's container path is the mounted host path
    cid2 = await rt.create_container(sid, config(
        tmp_path, "sh", "-c", "cat f; pwd", mounts=mounts, working_dir="/etc/config/sub"),
        SANDBOX)
    await rt.start_container(cid2)
    await wait_state(rt, cid2, ContainerState.EXITED)
    lines = (tmp_path / "logs" / "c.log").read_bytes().splitlines()
    assert [line.split(b" ", 3)[3] for line in lines] == [
        b"content", b"content", str(data / "sub").encode()]
    await rt.remove_pod_sandbox(sid)
    assert data.exists() and not os.path.islink(data)


AGENT = """
import asyncio, sys
from pathlib import Path
from kubeling.runtime import RuntimeOptions
from kubeling.runtime.process import ProcessRuntime
from kubeling.runtime.protocol import ContainerConfig, PodSandboxConfig

async def main() -> None:
    rt = ProcessRuntime(RuntimeOptions(root_dir=Path(sys.argv[1])))
    sandbox = PodSandboxConfig(uid="u", namespace="ns", name="p")
    sid = await rt.run_pod_sandbox(sandbox)
    cid = await rt.create_container(sid, ContainerConfig(
        name="c", attempt=0, image="host", log_path=sys.argv[2],
        command=("sh", "-c", "while :; do echo tick; sleep 0.1; done")), sandbox)
    await rt.start_container(cid)
    print(cid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_containers_outlive_a_killed_agent(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT, str(tmp_path / "rt"), str(log),
        stdout=asyncio.subprocess.PIPE)
    try:
        assert agent.stdout is not None
        cid = (await asyncio.wait_for(agent.stdout.readline(), 20)).decode().strip()
    finally:
        agent.send_signal(signal.SIGKILL)
        await agent.wait()
    rt = ProcessRuntime(RuntimeOptions(root_dir=tmp_path / "rt"))
    status = await rt.container_status(cid)
    assert status.state == ContainerState.RUNNING
    size = log.stat().st_size
    deadline = time.monotonic() + 5
    while log.stat().st_size == size:
        assert time.monotonic() < deadline, "the container stopped logging"
        await asyncio.sleep(0.05)
    # the agent rotates the file away; the shim reopens it when told
    log.rename(tmp_path / "c.log.old")
    await rt.reopen_container_log(cid)
    deadline = time.monotonic() + 5
    while not log.exists() or log.stat().st_size == 0:
        assert time.monotonic() < deadline, "the shim did not reopen the log"
        await asyncio.sleep(0.05)
    await rt.remove_pod_sandbox(status.sandbox_id)
    assert not os.path.exists(f"/proc/{status.pid}")
