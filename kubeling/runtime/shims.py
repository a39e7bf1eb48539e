"""Starting a container's shim and waiting for what it reports.

The shim (``kubeling.runtime.shim``, for a host process or an OCI container) is
started detached in its own session, so that it outlives the agent; it tells over a pipe whether the
container started (b"started\n") or could not (b"exited\n", with the reason
in exit.json). After that, the shim's files are the only channel: a stop
waits for ``exit.json`` to appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from kubeling.runtime import shim
from kubeling.runtime.protocol import RuntimeFailure, StreamSession
from kubeling.runtime.shimfiles import read_json, running_pid

START_TIMEOUT = 30.0


async def launch(directory: Path) -> bytes:
    """Run the shim on ``directory`` (its shim.json is written); its first report."""
    ready_r, ready_w = os.pipe()
    log = os.open(directory / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-E", "-s", "-S", shim.__file__, str(directory),
            str(ready_w), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            pass_fds=(ready_w,), start_new_session=True, cwd=str(directory))
    except OSError as err:
        os.close(ready_r)
        raise RuntimeFailure("RunContainerError", f"cannot start the shim: {err}") from err
    finally:
        os.close(ready_w)
        os.close(log)
    try:
        await proc.wait()
        line = await asyncio.wait_for(_read_line(ready_r), START_TIMEOUT)
    except TimeoutError as err:
        raise RuntimeFailure("RunContainerError",
                             "the container's shim did not report a start") from err
    finally:
        os.close(ready_r)
    if not line:
        tail = (directory / "shim.log").read_text(errors="replace")[-2000:]
        raise RuntimeFailure("RunContainerError", f"the container's shim failed: {tail}")
    return line


async def wait_exit(directory: Path, timeout: float) -> bool:
    """Whether the container's exit.json appears within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if (directory / "exit.json").exists():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)


async def _read_line(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    data = b""
    while not data.endswith(b"\n"):
        ready = loop.create_future()
        loop.add_reader(fd, ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            continue
        if not chunk:
            break
        data += chunk
    return data



def _not_running(container_id: str) -> RuntimeFailure:
    return RuntimeFailure("ContainerNotRunning", f"container {container_id} is not running")


async def attach(directory: Path, container_id: str, *, tty: bool, stdin: bool,
                 wants_stdin: bool) -> StreamSession:
    """Connect to the running container's stdio through its shim's attach socket. ``tty``
    and ``stdin`` are what the container was created with; ``wants_stdin`` what the caller
    asks for."""
    from kubeling.runtime.process.sessions import AttachSession

    if running_pid(directory) == 0:
        raise _not_running(container_id)
    session = AttachSession(directory, tty=tty, stdin=wants_stdin and stdin)
    await session.connect()
    return session


def reopen_log(directory: Path, container_id: str) -> None:
    """Ask the shim to reopen the container's log file (after it was moved away)."""
    started = read_json(directory / "started.json")
    if started is None or (directory / "exit.json").exists():
        raise _not_running(container_id)
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(started["shim_pid"]), signal.SIGUSR1)
