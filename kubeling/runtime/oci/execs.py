"""Processes run in a running container with ``runc exec``.

runc exec joins the container's namespaces and cgroup and runs the command
with the container's own environment, working directory and user; its exit
code is the command's. runc stays the command's parent and passes its stdio
through (or, with ``-t``, copies between its own terminal and a new one in the
container, resizing it on SIGWINCH), so an ``ExecSession`` around the runc
process serves exec exactly as for host processes.

Killing runc alone would leave the command running in the container: runc
writes the command's host pid to a file (``--pid-file``), and a session that
is closed or timed out kills that pid too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from kubeling.runtime.process.sessions import ExecSession
from kubeling.runtime.protocol import ExecResult, RuntimeFailure

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def resolve(argv0: str, path: str, root: str, cwd: str) -> str | None:
    """Where ``argv0`` is inside the container whose root is ``root`` (``/proc/<pid>/root``)."""
    if "/" in argv0:
        target = argv0 if argv0.startswith("/") else os.path.join(cwd, argv0)
        return target if os.access(root + target, os.X_OK) else None
    for entry in path.split(":"):
        candidate = os.path.join(entry or cwd, argv0)
        full = root + candidate
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return candidate
    return None


def check_command(command: Sequence[str], pid: int, env: dict[str, str], cwd: str) -> None:
    if not command:
        raise RuntimeFailure("ExecError", "no command to exec")
    if resolve(command[0], env.get("PATH", DEFAULT_PATH), f"/proc/{pid}/root", cwd) is None:
        raise RuntimeFailure("ExecError",
                             f'exec: "{command[0]}": executable file not found in $PATH')


def pid_file(directory: Path) -> Path:
    return directory / f"exec-{secrets.token_hex(6)}.pid"


def kill_exec(path: Path) -> None:
    """SIGKILL the exec'd command whose host pid runc wrote to ``path``; forget the file."""
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    if pid > 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        path.unlink()


def runner_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", DEFAULT_PATH)}


class RuncExecSession(ExecSession):
    """An ExecSession whose process is ``runc exec``; closing it kills the command inside."""

    def __init__(self, *, tty: bool, stdin: bool, pid_path: Path,
                 size: tuple[int, int] | None = None) -> None:
        super().__init__(tty=tty, stdin=stdin, raw=True, size=size)
        self.pid_path = pid_path

    async def close(self) -> None:
        if not self.finished:
            kill_exec(self.pid_path)
        await super().close()
        with contextlib.suppress(OSError):
            self.pid_path.unlink()

    async def resize(self, width: int, height: int) -> None:
        """Size our terminal; runc copies it to the container's on SIGWINCH. A SIGWINCH that
        comes before runc listens is lost, so once runc has started the command (it wrote
        the pid file: it listens by then) it is told again."""
        await super().resize(width, height)
        proc = self._proc
        if not self.tty or proc is None:
            return
        deadline = time.monotonic() + 5
        while not self.pid_path.exists() and proc.returncode is None \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGWINCH)

    async def wait(self) -> int:
        code = await super().wait()
        with contextlib.suppress(OSError):
            self.pid_path.unlink()
        return code


async def exec_sync(argv: list[str], pid_path: Path, cwd: str, timeout: float) -> ExecResult:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=runner_env(), cwd=cwd, start_new_session=True)
    collect = asyncio.ensure_future(proc.communicate())
    try:
        out, err = await asyncio.wait_for(asyncio.shield(collect), timeout)
    except TimeoutError:
        deadline = time.monotonic() + 2
        while not pid_path.exists() and time.monotonic() < deadline and proc.returncode is None:
            await asyncio.sleep(0.01)
        kill_exec(pid_path)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)
        collect.cancel()
        return ExecResult(exit_code=137, stdout=b"", stderr=b"", timed_out=True)
    with contextlib.suppress(OSError):
        pid_path.unlink()
    code = proc.returncode or 0
    return ExecResult(exit_code=128 - code if code < 0 else code, stdout=out, stderr=err)
