"""Connecting to localhost inside a pod's network namespace (CRI PortForward), for both
runtimes (the process runtime's pods share the host's namespace: ``netns`` None).

``kubectl port-forward`` reaches a port on the pod's own loopback, so a server
bound to 127.0.0.1 in the pod answers too: the connection must be made from
inside the pod's network namespace. A socket belongs to the namespace it was
created in, so a short-lived thread enters the namespace (``setns(2)`` through
libc: Python 3.11 has no ``os.setns``), creates and connects the socket,
and ends; the connected socket then serves the event loop in the agent's own
namespace. A fresh thread (not the shared pool) is used so a thread left in
the wrong namespace can never run other work.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import socket
import threading

from kubeling.runtime.protocol import RuntimeFailure

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0

_libc: ctypes.CDLL | None = None


class ForwardError(Exception):
    """The connection could not be made; the message says why, as the kubelet words it."""


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _dial(port: int) -> socket.socket:
    """127.0.0.1, then ::1, as the kubelet's runtimes try them."""
    errors: list[str] = []
    for family, host, label in ((socket.AF_INET, "127.0.0.1", "IPv4: dial tcp4"),
                                (socket.AF_INET6, "::1", "IPv6 dial tcp6")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect((host, port))
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            shown = f"[{host}]" if ":" in host else host
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            errors.append(f"{label} {shown}:{port}: connect: {reason}")
    raise ForwardError(" ".join(errors))


def connect_sync(port: int, netns: str | None) -> socket.socket:
    """A connected non-blocking socket to localhost:port in ``netns`` (None: this one)."""
    if not netns:
        return _dial(port)
    result: list[socket.socket] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            failure.append(ForwardError(f"cannot open network namespace {netns!r}: "
                                        f"{exc.strerror}"))
            return
        try:
            _setns(target)
        except OSError as exc:
            failure.append(ForwardError(f"cannot enter network namespace {netns!r}: "
                                        f"{exc.strerror}"))
            return
        finally:
            os.close(target)
        # This thread now lives in the pod's namespace; it ends right after, never
        # returning to a pool.
        try:
            result.append(_dial(port))
        except ForwardError as exc:
            failure.append(ForwardError(
                f"failed to execute portforward in network namespace {netns!r}: failed to "
                f"connect to localhost:{port} inside namespace {netns!r}, {exc}"))
        except BaseException as exc:  # handed to the waiting caller
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"netns-connect-{port}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def open_connection(port: int, netns: str | None,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio streams over a connection made by ``connect_sync``; RuntimeFailure
    (reason PortForwardError, the kubelet's wording) when it cannot be made."""
    if not 0 < port < 65536:
        raise RuntimeFailure("PortForwardError", f"invalid port {port}")
    try:
        sock = await asyncio.to_thread(connect_sync, port, netns)
    except ForwardError as exc:
        raise RuntimeFailure("PortForwardError", str(exc)) from None
    try:
        return await asyncio.open_connection(sock=sock)
    except OSError as exc:
        sock.close()
        raise RuntimeFailure("PortForwardError",
                             f"{errno.errorcode.get(exc.errno or 0, '')} {exc}") from exc
