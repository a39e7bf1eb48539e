"""Finding and killing a container's whole process tree, and measuring it.

A container here is a process group and session started by its shim, plus
anything it forked: children that changed session, and daemons whose parent
exited (the shim is their subreaper, so they stay below it). Killing a
container kills all of them; its stats add them all up.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def tree(pid: int, shim_pid: int, *, thorough: bool = True) -> set[int]:
    """Every live process of the container: below the shim, below the main process, and
    (``thorough``) in the main process's group or session."""
    found: set[int] = set()
    for root in (shim_pid, pid):
        if root <= 0:
            continue
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(root)
            if root == pid:
                found.add(pid)
            found.update(child.pid for child in proc.children(recursive=True))
    if pid > 0 and thorough:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            other = int(name)
            with contextlib.suppress(OSError):
                if os.getpgid(other) == pid or os.getsid(other) == pid:
                    found.add(other)
    found.discard(shim_pid)
    found.discard(os.getpid())
    return found


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_tree(pid: int, shim_pid: int) -> None:
    """SIGKILL the main process's group and every process of the container."""
    if pid > 0:
        signal_group(pid, signal.SIGKILL)
    for other in tree(pid, shim_pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(other, signal.SIGKILL)


def usage(pid: int, shim_pid: int) -> tuple[int, int, int]:
    """(cumulative CPU ns, resident bytes, process count) over the container's processes."""
    cpu = 0.0
    rss = 0
    count = 0
    for member in tree(pid, shim_pid, thorough=False):
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(member)
            with proc.oneshot():
                times = proc.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
                rss += proc.memory_info().rss
            count += 1
    return int(cpu * 1e9), rss, count
