"""The per-container shim: the one process that stays with a container for its whole life.

A container must outlive the agent that started it (the agent restarts, or is
killed, and adopts its containers again), so something other than the agent
has to hold the container's stdio, write its log and collect its exit status,
as conmon or containerd-shim do. The process runtime starts one shim per
container, detached in its own session; the shim

- starts the container's process in its own session and process group, with
  the environment exactly as given (plus a default PATH when none is), its
  working directory, stdin as configured, a PTY when asked for, and, when the
  runtime asks for it (root), a private mount namespace in which each mount's
  host path is bound at its container path;
- is the child subreaper of everything the container forks, so a daemonising
  grandchild is still found (and killed when the container's main process
  ends, as the end of a PID namespace would);
- copies stdout and stderr into the CRI log file (``crilog``), rotating it;
  SIGUSR1 makes it reopen the file;
- serves attach on ``attach.sock`` in the container's directory: stdin
  forwarding, output fan-out to every attached client, TTY resize;
- records ``started.json`` (pid, start time) and ``exit.json`` (exit code,
  128+n for a signal, finish time, reason) in the container's directory, then
  exits.

Standard library only and small: it runs once per container. Attach frames,
both ways, are ``<1 byte type><4 bytes big-endian length><payload>``; the
client's first frame is ``h`` with a JSON hello ``{"stdin": bool}``; then the
client sends ``i`` (stdin bytes), ``c`` (close stdin) and ``r`` (resize,
``"<cols> <rows>"``), and the shim sends ``a`` (once, when the hello is taken:
output from then on reaches the client), ``o``/``e`` (stdout/stderr) and ``x``
(the exit code, when the container ends).

In OCI mode (the spec has ``oci``: runc binary, state root, bundle, id) the
shim does not start the process itself: it runs ``runc create`` with the
container's stdio as runc's own (or, with a TTY, receives the terminal's
master from runc over a console socket), then ``runc start``. runc exits and
the container's init, reparented to the shim, is the process it waits for;
a failed create or start is the container's ``StartError`` with runc's message.

Run as ``python shim.py <container dir> <ready fd>``; the spec is
``<container dir>/shim.json`` as the runtime wrote it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import time
from typing import Any

try:
    from kubeling.runtime import crilog
except ImportError:  # run as a script with the runtime package directory on sys.path
    import crilog  # type: ignore[no-redef]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
CLONE_NEWNS = 0x00020000
PR_SET_CHILD_SUBREAPER = 36
MAX_CLIENT_BUFFER = 4 * 1024 * 1024
DRAIN_SECONDS = 2.0


def frame(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack(">I", len(payload)) + payload


def write_json(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def start_error(err: OSError, argv0: str, stage: str) -> str:
    """What runc says when the container's process cannot be started."""
    if stage == "exec":
        if err.errno == errno.ENOENT and "/" not in argv0:
            return f'exec: "{argv0}": executable file not found in $PATH'
        if err.errno == errno.ENOENT:
            return f'exec: "{argv0}": stat {argv0}: no such file or directory'
        return f'exec: "{argv0}": {os.strerror(err.errno or 0).lower()}'
    return f"{stage}: {err}"


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, libc: Any, what: str) -> None:
    if result != 0:
        import ctypes

        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def private_mounts(mounts: list[list[Any]]) -> None:
    """In the child: a mount namespace of its own with each host path bound in place."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), libc, "unshare mount namespace")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), libc, "make / private")
    for host, target, read_only in mounts:
        if not os.path.lexists(target):
            if os.path.isdir(host):
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        _check(libc.mount(host.encode(), target.encode(), None, MS_BIND | MS_REC, None), libc,
               f"bind {host} at {target}")
        if read_only:
            _check(libc.mount(b"none", target.encode(), None,
                              MS_BIND | MS_REMOUNT | MS_RDONLY, None), libc,
                   f"make {target} read-only")


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = bytearray()
        self.hello = False
        self.stdin = False


class Shim:
    def __init__(self, directory: str, ready_fd: int) -> None:
        self.dir = directory
        self.ready_fd = ready_fd
        os.set_inheritable(ready_fd, False)
        with open(os.path.join(directory, "shim.json")) as f:
            self.spec: dict[str, Any] = json.load(f)
        self.tty = bool(self.spec.get("tty"))
        self.log = crilog.LogWriter(self.spec["log_path"],
                                    max_bytes=int(self.spec["log_max_bytes"]),
                                    max_files=int(self.spec["log_max_files"]))
        self.outputs: dict[int, int] = {}  # fd -> stream
        self.stdin_fd = -1
        self.master = -1
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.clients: dict[int, Client] = {}
        self.pid = 0
        self.status: int | None = None
        self.poll = select.poll()
        self.flags: set[int] = set()

    # ----- starting --------------------------------------------------------------------
    def run(self) -> int:
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for wake in (signal.SIGCHLD, signal.SIGUSR1):
            signal.signal(wake, lambda s, _f: self.flags.add(s))
        try:
            _check(_libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), None, "subreaper")
        except OSError as err:
            print(f"shim: cannot become a subreaper: {err}", file=sys.stderr)
        failure = self.spawn()
        if failure is not None:
            self.finish(128, "StartError", failure)
            return 0
        self.poll.register(wake_r, select.POLLIN)
        self.listener = self.listen()
        self.tell_ready(b"started\n")
        self.loop(wake_r)
        return 0

    def tell_ready(self, what: bytes) -> None:
        if self.ready_fd >= 0:
            try:
                os.write(self.ready_fd, what)
            finally:
                os.close(self.ready_fd)
                self.ready_fd = -1

    def spawn(self) -> str | None:
        if self.spec.get("oci"):
            return self.spawn_oci()
        spec = self.spec
        argv: list[str] = spec["argv"]
        env = dict(spec["env"])
        env.setdefault("PATH", DEFAULT_PATH)
        if self.tty:
            master, slave = os.openpty()
            self.master = master
            child_in = child_out = child_err = slave
            os.set_blocking(master, False)
            self.outputs[master] = 1
            if spec.get("stdin"):
                self.stdin_fd = master
            parent_ends = [slave]
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            self.outputs[out_r] = 1
            self.outputs[err_r] = 2
            if spec.get("stdin"):
                child_in, self.stdin_fd = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(self.stdin_fd, False)
            else:
                child_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            child_out, child_err = out_w, err_w
            parent_ends = [out_w, err_w, child_in]
        err_r2, err_w2 = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            stage = "setup"
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE,
                            signal.SIGCHLD, signal.SIGUSR1):
                    signal.signal(sig, signal.SIG_DFL)
                os.setsid()
                if self.tty:
                    fcntl.ioctl(child_in, termios.TIOCSCTTY, 0)
                os.dup2(child_in, 0)
                os.dup2(child_out, 1)
                os.dup2(child_err, 2)
                if spec.get("mounts") and spec.get("private_mounts"):
                    stage = "mount"
                    private_mounts(spec["mounts"])
                stage = "chdir"
                os.chdir(spec["cwd"])
                stage = "exec"
                os.execvpe(argv[0], argv, env)
            except OSError as err:
                os.write(err_w2, json.dumps(start_error(err, argv[0], stage)).encode())
            except BaseException as err:
                os.write(err_w2, json.dumps(f"{stage}: {err}").encode())
            finally:
                os._exit(127)
        self.pid = pid
        os.close(err_w2)
        for fd in parent_ends:
            os.close(fd)
        message = b""
        while chunk := os.read(err_r2, 4096):
            message += chunk
        os.close(err_r2)
        if message:
            os.waitpid(pid, 0)
            for fd in self.outputs:
                os.close(fd)
            self.outputs.clear()
            return str(json.loads(message.decode()))
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.poll.register(fd, select.POLLIN)
        write_json(os.path.join(self.dir, "started.json"),
                   {"pid": pid, "shim_pid": os.getpid(), "started_at": time.time()})
        return None

    # ----- OCI mode: runc create + start ------------------------------------------------
    def spawn_oci(self) -> str | None:
        """``runc create`` with the container's stdio (or, with a TTY, the terminal's master
        received over a console socket), then ``runc start``. runc's own process exits; its
        init, the container's pid 1, is reparented to this shim (a subreaper)."""
        oci = self.spec["oci"]
        runc = [oci["binary"], "--root", oci["root"], "--log",
                os.path.join(self.dir, "runc.log"), "--log-format", "json"]
        pid_file = os.path.join(self.dir, "init.pid")
        create = [*runc, "create", "--bundle", oci["bundle"], "--pid-file", pid_file]
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        console: socket.socket | None = None
        parent_ends: list[int] = []
        stdio = [null, null, null]
        if self.tty:
            console = self.console_socket()
            create += ["--console-socket", console.getsockname()]
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            self.outputs[out_r] = 1
            self.outputs[err_r] = 2
            parent_ends = [out_w, err_w]
            stdio = [null, out_w, err_w]
            if self.spec.get("stdin"):
                stdio[0], self.stdin_fd = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(self.stdin_fd, False)
                parent_ends.append(stdio[0])
        pid = self.run_child([*create, oci["id"]], stdio)
        for fd in parent_ends:
            os.close(fd)
        status: int | None = None
        if console is not None:
            master, status = self.receive_console(console, pid)
            if master >= 0:
                self.master = master
                os.set_blocking(master, False)
                self.outputs[master] = 1
                if self.spec.get("stdin"):
                    self.stdin_fd = master
        if status is None:
            status = os.waitpid(pid, 0)[1]
        failure = None
        if status != 0:
            failure = self.runc_error("create", status)
        elif self.tty and self.master < 0:
            failure = "create: runc sent no terminal"
        if failure is None:
            try:
                with open(pid_file) as f:
                    self.pid = int(f.read().strip())
            except (OSError, ValueError) as err:
                failure = f"create: no init pid: {err}"
        if failure is None:
            status = os.waitpid(self.run_child([*runc, "start", oci["id"]],
                                               [null, null, null]), 0)[1]
            if status != 0:
                failure = self.runc_error("start", status)
        if failure is not None:
            os.waitpid(self.run_child([*runc, "delete", "--force", oci["id"]],
                                      [null, null, null]), 0)
        os.close(null)
        if failure is not None:
            for fd in self.outputs:
                os.close(fd)
            self.outputs.clear()
            return failure
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.poll.register(fd, select.POLLIN)
        write_json(os.path.join(self.dir, "started.json"),
                   {"pid": self.pid, "shim_pid": os.getpid(), "started_at": time.time()})
        return None

    def console_socket(self) -> socket.socket:
        """A listening socket for runc to hand over the terminal's master. Its path goes
        through /proc so that it stays short whatever the container directory's length."""
        dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        path = f"/proc/{os.getpid()}/fd/{dir_fd}/console.sock"
        if os.path.lexists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(1)
        sock.settimeout(0.05)
        return sock

    def receive_console(self, sock: socket.socket, runc_pid: int) -> tuple[int, int | None]:
        """The master fd runc sends (-1 if none), and runc's wait status if it has already
        been reaped here (it ended without sending one)."""
        path = sock.getsockname()
        master, status = -1, None
        try:
            while True:
                try:
                    conn, _ = sock.accept()
                except TimeoutError:
                    done, ended = os.waitpid(runc_pid, os.WNOHANG)
                    if done:
                        status = ended
                        break
                    continue
                with conn:
                    conn.settimeout(10)
                    _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
                master = fds[0] if fds else -1
                break
        except OSError:
            pass
        finally:
            sock.close()
            if os.path.lexists(path):
                os.unlink(path)
            os.close(int(path.split("/")[4]))
        return master, status

    def run_child(self, argv: list[str], stdio: list[int]) -> int:
        pid = os.fork()
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE,
                            signal.SIGCHLD, signal.SIGUSR1):
                    signal.signal(sig, signal.SIG_DFL)
                os.setsid()
                for target, fd in enumerate(stdio):
                    os.dup2(fd, target)
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        return pid

    def runc_error(self, stage: str, status: int) -> str:
        """runc's last error message in its JSON log."""
        message = ""
        try:
            with open(os.path.join(self.dir, "runc.log"), "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                message = str(entry.get("msg", ""))
        return message or f"runc {stage} failed ({os.waitstatus_to_exitcode(status)})"

    def listen(self) -> socket.socket:
        dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            path = f"/proc/self/fd/{dir_fd}/attach.sock"
            if os.path.lexists(path):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            os.chmod(path, 0o600)
        finally:
            os.close(dir_fd)
        sock.listen(16)
        sock.setblocking(False)
        self.poll.register(sock.fileno(), select.POLLIN)
        return sock

    # ----- the loop --------------------------------------------------------------------
    def loop(self, wake_r: int) -> None:
        deadline: float | None = None
        while True:
            if self.status is not None:
                if deadline is None:
                    self.kill_descendants()
                    deadline = time.monotonic() + DRAIN_SECONDS
                if not self.outputs or time.monotonic() >= deadline:
                    break
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                events = self.poll.poll(None if timeout is None else int(timeout * 1000) + 1)
            except InterruptedError:
                events = []
            for fd, event in events:
                if fd == wake_r:
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                elif fd in self.outputs:
                    self.read_output(fd)
                elif fd == self.listener.fileno():
                    self.accept()
                elif fd in self.clients:
                    self.client_event(self.clients[fd], event)
                elif fd == self.stdin_fd:
                    self.flush_stdin()
            self.handle_signals()
        assert self.status is not None
        code = os.waitstatus_to_exitcode(self.status)
        if code < 0:
            code = 128 - code
        self.finish(code, "Completed" if code == 0 else "Error", "")

    def handle_signals(self) -> None:
        if signal.SIGUSR1 in self.flags:
            self.flags.discard(signal.SIGUSR1)
            self.log.reopen()
        if signal.SIGCHLD in self.flags:
            self.flags.discard(signal.SIGCHLD)
            self.reap()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status

    def kill_descendants(self) -> None:
        """The main process ended: nothing it started may outlive it."""
        for _ in range(50):
            pids = descendants(os.getpid())
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
            self.reap()

    def read_output(self, fd: int) -> None:
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the PTY's other side is gone
            data = b""
        if not data:
            self.log.close_stream(stream)
            self.poll.unregister(fd)
            del self.outputs[fd]
            if fd != self.stdin_fd:
                os.close(fd)
            return
        self.log.write(stream, data)
        message = frame(b"o" if stream == 1 else b"e", data)
        for client in list(self.clients.values()):
            if client.hello:
                self.send(client, message)

    def finish(self, code: int, reason: str, message: str) -> None:
        self.log.close()
        write_json(os.path.join(self.dir, "exit.json"),
                   {"exit_code": code, "finished_at": time.time(), "reason": reason,
                    "message": message})
        self.tell_ready(b"exited\n")
        for client in list(self.clients.values()):
            self.send(client, frame(b"x", str(code).encode()))
            client.sock.setblocking(True)
            try:
                client.sock.settimeout(1.0)
                client.sock.sendall(client.outbuf)
            except OSError:
                pass
            client.sock.close()

    # ----- attach ----------------------------------------------------------------------
    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self.clients[sock.fileno()] = Client(sock)
        self.poll.register(sock.fileno(), select.POLLIN)

    def drop(self, client: Client) -> None:
        fd = client.sock.fileno()
        self.poll.unregister(fd)
        del self.clients[fd]
        client.sock.close()
        if client.stdin:
            self.client_closed_stdin(client)

    def send(self, client: Client, data: bytes) -> None:
        client.outbuf += data
        self.flush_client(client)

    def flush_client(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.outbuf)
            del client.outbuf[:sent]
        except BlockingIOError:
            pass
        except OSError:
            client.outbuf.clear()
        if len(client.outbuf) > MAX_CLIENT_BUFFER:
            self.drop(client)
            return
        if client.sock.fileno() in self.clients:
            mask = select.POLLIN | (select.POLLOUT if client.outbuf else 0)
            self.poll.modify(client.sock.fileno(), mask)

    def client_event(self, client: Client, event: int) -> None:
        if event & select.POLLOUT:
            self.flush_client(client)
        if not event & (select.POLLIN | select.POLLHUP | select.POLLERR):
            return
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        client.inbuf += data
        while len(client.inbuf) >= 5:
            (size,) = struct.unpack(">I", client.inbuf[1:5])
            if len(client.inbuf) < 5 + size:
                break
            kind, payload = client.inbuf[:1], client.inbuf[5:5 + size]
            client.inbuf = client.inbuf[5 + size:]
            self.client_frame(client, kind, payload)

    def client_frame(self, client: Client, kind: bytes, payload: bytes) -> None:
        if kind == b"h":
            hello = json.loads(payload or b"{}")
            client.hello = True
            client.stdin = bool(hello.get("stdin")) and self.stdin_fd >= 0
            self.send(client, frame(b"a", b""))  # attached: output from now on reaches it
        elif kind == b"i" and client.stdin and not self.stdin_closing:
            self.stdin_buf += payload
            self.flush_stdin()
        elif kind == b"c" and client.stdin:
            self.client_closed_stdin(client)
            client.stdin = False
        elif kind == b"r" and self.tty:
            cols, rows = (int(x) for x in payload.split())
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", rows, cols, 0, 0))
            except OSError:
                pass

    def client_closed_stdin(self, client: Client) -> None:
        if not self.spec.get("stdin_once") or self.stdin_fd < 0:
            return
        if self.tty:
            self.stdin_buf += b"\x04"
            self.flush_stdin()
        else:
            self.stdin_closing = True
            self.flush_stdin()

    def flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd < 0:
            return
        try:
            while self.stdin_buf:
                sent = os.write(fd, self.stdin_buf)
                del self.stdin_buf[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self.stdin_buf.clear()
        registered = fd in self.outputs
        if self.stdin_buf:
            mask = select.POLLOUT | (select.POLLIN if registered else 0)
            self._set_mask(fd, mask)
        elif not registered:
            self._set_mask(fd, 0)
            if self.stdin_closing:
                os.close(fd)
                self.stdin_fd = -1
        elif registered:
            self.poll.modify(fd, select.POLLIN)

    def _set_mask(self, fd: int, mask: int) -> None:
        try:
            if mask:
                self.poll.modify(fd, mask)
            else:
                self.poll.unregister(fd)
        except (FileNotFoundError, KeyError):
            if mask:
                self.poll.register(fd, mask)


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if fields[0] == b"Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def main(argv: list[str]) -> int:
    directory, ready = argv[1], int(argv[2])
    if os.fork():
        os._exit(0)
    return Shim(directory, ready).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
