"""What an OCI node leaves on the host, found and swept.

Containers outlive their agent by design, so an end-to-end test that stops a
server must end its containers itself; and "nothing is left after a pod is
deleted" is a claim about the host, checked here by looking at the host: the
mount table, the network namespace files, the veths, the cgroup trees and the
process table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.cluster import kill_containers

CGROUP_ROOT = Path("/sys/fs/cgroup")


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    found = []
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def cgroup_dirs(parent: str) -> list[str]:
    """Every cgroup directory below ``/<parent>`` in every hierarchy (v1 and v2)."""
    found = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.is_dir() else []:
        base = hierarchy / parent
        if hierarchy.is_symlink() or not base.is_dir():
            continue
        for dirpath, dirnames, _files in os.walk(base):
            found += [os.path.join(dirpath, d) for d in dirnames]
    return found


def processes_under(root: Path) -> list[str]:
    """Processes whose command line names ``root`` (shims, runc, pause) or that run in a
    mount namespace rooted under it (containers)."""
    import psutil

    prefix = str(root.resolve())
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        try:
            rootfs = os.readlink(f"/proc/{proc.info['pid']}/root")
        except OSError:
            rootfs = "/"
        if prefix in cmd or rootfs.startswith(prefix):
            found.append(f"{proc.info['pid']} {cmd or rootfs}")
    return found


def veths(bridge: str) -> list[str]:
    """Interfaces enslaved to ``bridge`` (the host ends of pods' veths)."""
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                         text=True)
    return [line.split(":")[1].strip() for line in out.stdout.splitlines() if ":" in line]


def leftovers(root: Path, cgroup_parent: str, bridge: str = "kubeling0") -> dict[str, list[str]]:
    """What pods of the node rooted at ``root`` left on the host (empty lists when clean).
    The node's own bridge and its top cgroup are not a pod's and are not counted."""
    netns_dir = root / "runtime" / "netns"
    left = {
        "mounts": mounts_under(root),
        "netns": sorted(os.listdir(netns_dir)) if netns_dir.is_dir() else [],
        "cgroups": [d for d in cgroup_dirs(cgroup_parent) if "/pod" in d],  # pods, not QoS
        "processes": processes_under(root),
        "veths": veths(bridge),
    }
    return {k: v for k, v in left.items() if v}


def sweep(root: Path, cgroup_parent: str) -> None:
    """End everything an OCI node under ``root`` runs and made: containers, mounts,
    network namespaces and cgroups (for test teardowns; the agent itself leaves them)."""
    kill_containers(root)
    runc = shutil.which("runc")
    state = root / "runtime" / "runc"
    if runc and state.is_dir():
        for cid in os.listdir(state):
            subprocess.run([runc, "--root", str(state), "delete", "-f", cid],
                           capture_output=True)
    import psutil

    for line in processes_under(root):
        with contextlib.suppress(psutil.NoSuchProcess, ValueError):
            psutil.Process(int(line.split()[0])).kill()
    for point in mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True)
    for directory in sorted(cgroup_dirs(cgroup_parent), key=len, reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        with contextlib.suppress(OSError):
            os.rmdir(hierarchy / cgroup_parent)
