"""The few filesystem operations volumes need beyond plain files: tmpfs mounts and removal
that stays inside one filesystem.

A memory-backed emptyDir is a tmpfs mounted on the volume's directory (root
only). Tearing a pod's volumes down must never reach through a mount or a
symlink into what is not the pod's (a hostPath, a PV, a bind mount someone left
behind): removal unmounts what is mounted below the pod's volumes directory,
never follows symlinks, and skips any directory on another device.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("kubeling.kubelet.volumes")

MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def can_mount() -> bool:
    return os.geteuid() == 0


def _unescape(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees."""
    found: list[tuple[str, str]] = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if not sep or len(fields) < 5:
            continue
        found.append((_unescape(fields[4]), tail.split(" ", 1)[0]))
    return found


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    root = os.path.realpath(path)
    below = [m for m, _ in mount_points() if m == root or m.startswith(root.rstrip("/") + "/")]
    return sorted(set(below), key=lambda m: m.count("/"), reverse=True)


def is_mount_point(path: Path) -> bool:
    return os.path.realpath(path) in {m for m, _ in mount_points()}


def mount_tmpfs(path: Path, size_bytes: int = 0, *, mode: int = 0o777) -> None:
    options = f"mode={mode:04o}" + (f",size={size_bytes}" if size_bytes > 0 else "")
    rc = _lib().mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV,
                      options.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {path}: {os.strerror(err)}")


def unmount(path: str) -> bool:
    rc = _lib().umount2(os.fsencode(path), MNT_DETACH)
    if rc != 0:
        err = ctypes.get_errno()
        log.warning("cannot unmount %s: %s", path, os.strerror(err))
        return False
    return True


def remove_tree(path: Path) -> None:
    """Remove ``path`` and what is below it on its own filesystem, unmounting first
    what is mounted below it. Symlinks are removed, never followed. Missing is fine."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(top.st_mode):
        os.unlink(path)
        return
    if can_mount():
        for point in mounts_under(path):
            unmount(point)
    _remove(str(path), top.st_dev)


def _remove(path: str, device: int) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if st.st_dev != device:
        log.warning("not removing %s: another filesystem is mounted there", path)
        return
    try:
        entries = os.listdir(path)
    except PermissionError:
        os.chmod(path, 0o700)
        entries = os.listdir(path)
    for name in entries:
        child = os.path.join(path, name)
        try:
            _remove(child, device)
        except PermissionError:
            os.chmod(path, 0o700)
            _remove(child, device)
    try:
        os.rmdir(path)
    except OSError as e:
        log.warning("cannot remove %s: %s", path, e)
