"""Streams into a container: exec (a process the caller starts) and attach (the shim's socket).

Both are ``StreamSession``s: output as (stream, bytes) chunks ending with
(0, b""), stdin, resize, the exit code. An exec'd process is a child of the
agent in its own session (with a PTY as its controlling terminal when ``tty``),
killed with its process group when the session is closed before it ends. An
attach is a client of the container's shim (see ``kubeling.runtime.shim`` for
the frames); closing it leaves the container running.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import struct
import termios
import tty as tty_module
from collections.abc import Callable
from pathlib import Path

from kubeling.runtime.protocol import STDERR, STDOUT, RuntimeFailure
from kubeling.utils.tasks import spawn

_END = (0, b"")


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def set_winsize(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _controlling_tty(slave: int) -> Callable[[], None]:
    """A new session whose controlling terminal is ``slave``. The ioctl names the terminal's
    own descriptor: under uvloop the child's stdio is not yet in place when this runs."""
    def setup() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    return setup


class ExecSession:
    """A command run in a container's context, its stdio wired to this session."""

    def __init__(self, *, tty: bool, stdin: bool, raw: bool = False,
                 size: tuple[int, int] | None = None) -> None:
        self.tty = tty
        self._size = size  # the terminal's (columns, rows) before the command starts
        self._raw = raw  # the TTY only relays another one (runc exec -t): no echo, no editing
        self._want_stdin = stdin
        self._queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._open: set[int] = set()
        self._stdin_fd = -1
        self._master = -1
        self._proc: asyncio.subprocess.Process | None = None
        self._done = False

    async def start(self, argv: list[str], *, env: dict[str, str], cwd: str) -> None:
        loop = asyncio.get_running_loop()
        child_fds: list[int] = []
        preexec: Callable[[], None] | None = None
        if self.tty:
            master, slave = os.openpty()
            if self._raw:
                tty_module.setraw(slave)
            if self._size is not None:
                set_winsize(master, *self._size)
            self._master = master
            stdin_child = stdout_child = stderr_child = slave
            child_fds.append(slave)
            preexec = _controlling_tty(slave)
            self._watch(loop, master, STDOUT)
            if self._want_stdin:
                self._stdin_fd = master
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            stdout_child, stderr_child = out_w, err_w
            child_fds += [out_w, err_w]
            self._watch(loop, out_r, STDOUT)
            self._watch(loop, err_r, STDERR)
            if self._want_stdin:
                in_r, self._stdin_fd = os.pipe()
                stdin_child = in_r
                child_fds.append(in_r)
            else:
                stdin_child = os.open(os.devnull, os.O_RDONLY)
                child_fds.append(stdin_child)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=stdin_child, stdout=stdout_child, stderr=stderr_child, env=env,
                cwd=cwd, start_new_session=not self.tty,
                preexec_fn=preexec)
        except OSError:
            await self.close()
            raise
        finally:
            for fd in child_fds:
                os.close(fd)

    def _watch(self, loop: asyncio.AbstractEventLoop, fd: int, stream: int) -> None:
        os.set_blocking(fd, False)
        self._open.add(fd)
        loop.add_reader(fd, self._readable, loop, fd, stream)

    def _readable(self, loop: asyncio.AbstractEventLoop, fd: int, stream: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._queue.put_nowait((stream, data))
            return
        loop.remove_reader(fd)
        self._open.discard(fd)
        if fd != self._stdin_fd:
            os.close(fd)
        if not self._open:
            self._queue.put_nowait(_END)

    async def read(self) -> tuple[int, bytes]:
        if self._done:
            return _END
        item = await self._queue.get()
        if item == _END:
            self._done = True
        return item

    async def write(self, data: bytes) -> None:
        if self._stdin_fd < 0 or not data:
            return
        await _write_all(self._stdin_fd, data)

    async def close_stdin(self) -> None:
        if self._stdin_fd < 0:
            return
        if self.tty:
            await _write_all(self._stdin_fd, b"\x04")
            return
        os.close(self._stdin_fd)
        self._stdin_fd = -1

    async def resize(self, width: int, height: int) -> None:
        if self._master >= 0:
            with contextlib.suppress(OSError):
                set_winsize(self._master, width, height)

    async def wait(self) -> int:
        assert self._proc is not None
        return exit_code(await self._proc.wait())

    async def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        loop = asyncio.get_running_loop()
        for fd in list(self._open):
            loop.remove_reader(fd)
            self._open.discard(fd)
            if fd != self._stdin_fd:
                os.close(fd)
        if self._stdin_fd >= 0:
            os.close(self._stdin_fd)
            self._stdin_fd = -1
        if not self._done:
            self._queue.put_nowait(_END)

    @property
    def finished(self) -> bool:
        return self._proc is None or self._proc.returncode is not None


async def _write_all(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            sent = os.write(fd, view)
            view = view[sent:]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
        except BrokenPipeError:
            return


def frame(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack(">I", len(payload)) + payload


class AttachSession:
    """A client of a container's shim: its stdio from now on, and its exit code."""

    def __init__(self, directory: Path, *, tty: bool, stdin: bool) -> None:
        self.tty = tty
        self._dir = directory
        self._stdin = stdin
        self._queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._exit: asyncio.Future[int] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._done = False
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                f"/proc/self/fd/{dir_fd}/attach.sock")
        except OSError as err:
            raise RuntimeFailure("ContainerNotRunning",
                                 f"cannot attach: the container is not running ({err})") from err
        finally:
            os.close(dir_fd)
        self._exit = asyncio.get_running_loop().create_future()
        self._attached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writer.write(frame(b"h", json.dumps({"stdin": self._stdin}).encode()))
        await self._writer.drain()
        self._task = spawn(self._pump(), name=f"attach {self._dir.name[:12]}")
        # Attached once the shim has taken the hello; a shim older than that answer is
        # given a moment instead.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._attached), 1.0)

    async def _pump(self) -> None:
        assert self._reader is not None and self._exit is not None
        try:
            while True:
                head = await self._reader.readexactly(5)
                payload = await self._reader.readexactly(struct.unpack(">I", head[1:])[0])
                kind = head[:1]
                if kind == b"o":
                    self._queue.put_nowait((STDOUT, payload))
                elif kind == b"e":
                    self._queue.put_nowait((STDERR, payload))
                elif kind == b"a" and not self._attached.done():
                    self._attached.set_result(None)
                elif kind == b"x" and not self._exit.done():
                    self._exit.set_result(int(payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._queue.put_nowait(_END)
            if not self._attached.done():
                self._attached.set_result(None)
            if not self._exit.done():
                self._exit.set_result(self._recorded_exit())

    def _recorded_exit(self) -> int:
        try:
            with open(self._dir / "exit.json") as f:
                return int(json.load(f)["exit_code"])
        except (OSError, ValueError, KeyError):
            return -1

    async def read(self) -> tuple[int, bytes]:
        if self._done:
            return _END
        item = await self._queue.get()
        if item == _END:
            self._done = True
        return item

    async def _send(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            return
        with contextlib.suppress(ConnectionError):
            self._writer.write(data)
            await self._writer.drain()

    async def write(self, data: bytes) -> None:
        if self._stdin and data:
            await self._send(frame(b"i", data))

    async def close_stdin(self) -> None:
        if self._stdin:
            await self._send(frame(b"c", b""))

    async def resize(self, width: int, height: int) -> None:
        if self.tty:
            await self._send(frame(b"r", f"{width} {height}".encode()))

    async def wait(self) -> int:
        assert self._exit is not None
        return await asyncio.shield(self._exit)

    async def close(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class ExecSessions:
    """The exec sessions a runtime has running, by container: ended with their container
    (a stop) or with the runtime (``close``)."""

    def __init__(self) -> None:
        self._by_container: dict[str, set[ExecSession]] = {}

    def add(self, container_id: str, session: ExecSession) -> None:
        sessions = self._by_container.setdefault(container_id, set())
        sessions.difference_update([s for s in sessions if s.finished])
        sessions.add(session)

    async def close(self, container_id: str) -> None:
        for session in list(self._by_container.pop(container_id, ())):
            await session.close()

    async def close_all(self) -> None:
        for container_id in list(self._by_container):
            await self.close(container_id)
