"""A container's root filesystem: overlayfs over its image's unpacked layers.

Each container gets a writable ``upper`` and overlay's ``work`` directory of
its own, so containers of one image share the read-only layers and never see
each other's writes. The mount is made in the runtime's (the host's) mount
namespace, where it survives the agent, and removed with the container.

The whole option string must fit in one page (4096 bytes) for the kernel; the
image store keeps layer paths short for that reason. Mounting is one
``mount(2)`` call through ctypes: no util-linux process per container.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Sequence
from pathlib import Path

MNT_DETACH = 2
PAGE = 4096

_libc = ctypes.CDLL(None, use_errno=True)


def _error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def overlay_options(layers: Sequence[Path], upper: Path, work: Path) -> str:
    """``layers`` lowest first; overlay wants the topmost lower directory first."""
    lower = ":".join(str(p) for p in reversed(layers))
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def mount_overlay(layers: Sequence[Path], upper: Path, work: Path, target: Path) -> None:
    if not layers:
        raise OSError(0, "the image has no layers")
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    options = overlay_options(layers, upper, work)
    if len(options) >= PAGE:
        raise OSError(0, f"overlay options are {len(options)} bytes, over one page "
                         f"({len(layers)} layers)")
    if _libc.mount(b"overlay", str(target).encode(), b"overlay", 0, options.encode()) != 0:
        raise _error(f"mount overlay at {target}")


def unmount(target: Path) -> None:
    """Unmount ``target`` (every mount stacked there); not mounted is fine."""
    path = str(target).encode()
    for attempt in range(50):
        if not is_mounted(target):
            return
        flags = 0 if attempt < 5 else MNT_DETACH
        if _libc.umount2(path, flags) != 0:
            code = ctypes.get_errno()
            if code in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
                return
            if code != 16:  # EBUSY: retry, then detach
                raise _error(f"unmount {target}")
            time.sleep(0.02)


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, from /proc/self/mountinfo."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4:
                found.append(fields[4].encode().decode("unicode_escape"))
    return found


def is_mounted(target: Path) -> bool:
    wanted = os.path.realpath(target) if os.path.exists(target) else str(target)
    return wanted in mount_points()


def mounts_under(root: Path) -> list[str]:
    prefix = os.path.realpath(root).rstrip("/") + "/"
    return [m for m in mount_points() if m.startswith(prefix)]
