"""Persistent network namespaces, one per pod sandbox, as files.

A network namespace lives as long as a process is in it or a file is bound to
it. The pod's namespace must outlive its pause process (a pause restart, an
agent restart, a CNI DEL after the pause died), so it is bind-mounted on a
file ``<netns dir>/<sandbox id>``, as ``ip netns add`` does under /run/netns.

It is made without a child process: a throwaway thread unshares its own
network namespace (the network namespace is per thread), binds
``/proc/thread-self/ns/net`` on the file, and steps back into the agent's
namespace before it ends.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def is_netns(path: Path | str) -> bool:
    """True when ``path`` is a bound network namespace (a mount point on its directory)."""
    p = Path(path)
    try:
        return p.stat().st_dev != p.parent.stat().st_dev
    except OSError:
        return False


def _bind_new_netns(target: Path) -> None:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            _check(_libc.mount(b"/proc/thread-self/ns/net", os.fsencode(target), b"none",
                               MS_BIND, None), f"bind-mounting a netns on {target}")
        finally:
            # Back to the agent's namespace; if this failed the thread ends here anyway.
            _libc.setns(own, CLONE_NEWNET)
    finally:
        os.close(own)


def create(path: Path) -> str:
    """A new network namespace bound at ``path`` (the existing one when already there)."""
    if is_netns(path):
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    os.close(fd)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            _bind_new_netns(path)
        except BaseException as exc:
            failure.append(exc)

    t = threading.Thread(target=work, name="netns-create", daemon=True)
    t.start()
    t.join()
    if failure:
        path.unlink(missing_ok=True)
        raise failure[0]
    return str(path)


def remove(path: Path | str) -> None:
    """Unbind and delete ``path``; nothing to do when it is gone or not bound."""
    p = Path(path)
    while is_netns(p):  # a file bound twice needs two unmounts
        if _libc.umount2(os.fsencode(p), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                break
            raise OSError(err, f"unmounting {p}: {os.strerror(err)}")
    try:
        p.unlink()
    except FileNotFoundError:
        pass
