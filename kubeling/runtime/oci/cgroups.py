"""The OCI runtime's cgroups: what runc is asked to set, what the kernel reports back, and
removing what runc leaves behind.

runc creates a container's cgroup itself, from the bundle's ``linux.cgroupsPath`` (which
``Cgroups.path`` builds, cgroupfs style: ``/<parent>/kubepods/<qos>/pod<uid>/<container>``)
and ``linux.resources`` (which ``Cgroups.linux_resources`` builds from the agent's
``Resources``), and it removes that cgroup on ``runc delete``. It never removes the pod-level
directories above it, which no container owns: ``Cgroups.remove`` does, once the pod goes.

Two layouts exist. On cgroup v2 (``root`` is a cgroup2 mount) one tree holds every
controller. On v1 and on the "hybrid" layout (v1 controllers plus an empty v2 ``unified``
tree) each controller has its own hierarchy, ``root/<controller>``; ``cpu`` and ``cpuacct``
may share one mount (``cpu,cpuacct``, reached through symlinks). runc drives the v1
controllers there, so hybrid reads as v1. Reads follow what the kubelet (cAdvisor) takes as
a container's usage: the working set is usage minus inactive file pages, never below 0.
Every path given to a method is a cgroupsPath as ``path`` returns it.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeling.runtime.protocol import Resources

log = logging.getLogger(__name__)

V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
V2_CONTROLLERS = ("cpu", "memory", "pids")
# The kernel's bounds: cpu.shares 2..262144; a CFS quota of at least 1 ms.
MIN_SHARES, MAX_SHARES = 2, 262144
MIN_QUOTA = 1000
UNLIMITED = -1
# v1 reports "no limit" as the largest page-aligned signed 64-bit value.
V1_NO_LIMIT = 1 << 62
REMOVE_ATTEMPTS = 20
REMOVE_PAUSE = 0.025


@dataclass(frozen=True)
class CgroupStats:
    cpu_usage_ns: int  # cumulative CPU time of every process the cgroup ever held
    memory_working_set: int  # usage - inactive file pages (what the kubelet evicts on)
    memory_rss: int  # anonymous memory
    pids: int  # tasks (threads included) now in the cgroup and below


def pod_cgroup_parent(qos_class: str, uid: str) -> str:
    """The kubelet's layout of a pod's cgroup under the node's parent: Guaranteed pods
    directly in ``kubepods``, the others in ``kubepods/burstable`` or ``kubepods/besteffort``."""
    qos = qos_class.lower()
    if qos == "guaranteed":
        return f"kubepods/pod{uid}"
    if qos not in ("burstable", "besteffort"):
        raise ValueError(f"unknown QoS class {qos_class!r}")
    return f"kubepods/{qos}/pod{uid}"


def shares_to_weight(shares: int) -> int:
    """cgroup v2's cpu.weight for a v1 cpu.shares value, as runc converts it."""
    return 1 + ((shares - 2) * 9999) // 262142


def detect_mode(root: Path) -> str:
    """"v2" when ``root`` is a cgroup2 mount, "v1" when it is anything else (a tmpfs of v1
    hierarchies, hybrid included). A directory that is not a mount point (a test's fake
    tree) is v2 when it holds ``cgroup.controllers`` as a v2 root does."""
    fstype = _mount_fstype(root)
    if fstype is not None:
        return "v2" if fstype == "cgroup2" else "v1"
    return "v2" if (root / "cgroup.controllers").is_file() else "v1"


def _mount_fstype(root: Path) -> str | None:
    target = os.path.realpath(root)
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return None
    found = None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and _unescape(fields[4]) == target and right:
            found = right.split()[0]  # the last mount on a point is the visible one
    return found


def _unescape(field: str) -> str:
    """A mountinfo field: spaces, tabs, newlines and backslashes are octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class Cgroups:
    """The cgroups under one parent (``/<parent>`` in every hierarchy)."""

    def __init__(self, parent: str = "kubeling", *, root: Path = Path("/sys/fs/cgroup"),
                 mode: str | None = None) -> None:
        self.parent = parent.strip("/")
        self.root = root
        self.mode = mode or detect_mode(root)
        if self.mode not in ("v1", "v2"):
            raise ValueError(f"unknown cgroup mode {self.mode!r}")
        self._controllers: dict[str, Path | None] = {}

    # ----- paths --------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """A runc cgroupsPath (absolute, cgroupfs style): ``/<parent>/<parts...>``."""
        names = [p for part in parts for p in part.strip("/").split("/") if p]
        if any(name in (".", "..") for name in names):
            raise ValueError(f"bad cgroup path parts {parts!r}")
        return "/" + "/".join([self.parent, *names] if self.parent else names)

    def _rel(self, path: str) -> str:
        rel = path.strip("/")
        if not rel or any(p in ("", ".", "..") for p in rel.split("/")):
            raise ValueError(f"bad cgroup path {path!r}")
        return rel

    def controller_dir(self, controller: str) -> Path | None:
        """The hierarchy holding ``controller``: the v2 root, or v1's ``root/<controller>``
        (or a combined mount such as ``cpu,cpuacct`` without the symlink); None if absent."""
        if self.mode == "v2":
            return self.root
        if controller not in self._controllers:
            found: Path | None = None
            direct = self.root / controller
            if direct.is_dir():
                found = direct
            else:
                for child in self._children():
                    if controller in child.name.split(","):
                        found = child
                        break
            self._controllers[controller] = found
        return self._controllers[controller]

    def _children(self) -> list[Path]:
        try:
            return sorted(p for p in self.root.iterdir() if p.is_dir())
        except OSError:
            return []

    def hierarchies(self) -> list[Path]:
        """Every hierarchy a cgroup may have a directory in: the v2 root, or each distinct
        v1 mount (``unified`` and named ones such as ``name=systemd`` included: runc joins
        those too)."""
        if self.mode == "v2":
            return [self.root]
        seen: set[str] = set()
        out = []
        for child in self._children():
            real = os.path.realpath(child)
            if real not in seen:
                seen.add(real)
                out.append(child)
        return out

    def _dir(self, controller: str, path: str) -> Path | None:
        base = self.controller_dir(controller)
        return None if base is None else base / self._rel(path)

    def exists(self, path: str) -> bool:
        """Whether the cgroup has a directory in any hierarchy."""
        rel = self._rel(path)
        return any((h / rel).is_dir() for h in self.hierarchies())

    # ----- what runc sets -----------------------------------------------------------------

    def linux_resources(self, res: Resources) -> dict[str, Any]:
        """The OCI spec's ``linux.resources`` for ``res``: only what is set. Swap is capped
        at the memory limit (no swap beyond it), as the kubelet asks, where the kernel
        accounts swap at all; runc itself converts shares to a v2 weight."""
        out: dict[str, Any] = {}
        cpu: dict[str, int] = {}
        if res.cpu_shares > 0:
            cpu["shares"] = min(max(res.cpu_shares, MIN_SHARES), MAX_SHARES)
        if res.cpu_quota > 0:
            cpu["quota"] = max(res.cpu_quota, MIN_QUOTA)
            cpu["period"] = res.cpu_period if res.cpu_period > 0 else 100_000
        if cpu:
            out["cpu"] = cpu
        if res.memory_limit > 0:
            memory = {"limit": res.memory_limit}
            if self.swap_accounted():
                memory["swap"] = res.memory_limit
            out["memory"] = memory
        return out

    def swap_accounted(self) -> bool:
        """Whether the kernel accounts swap per cgroup (runc refuses a swap limit it cannot
        write): v1 ``memory.memsw.*``, v2 ``memory.swap.max`` in the non-root cgroups."""
        if self.mode == "v1":
            base = self.controller_dir("memory")
            return base is not None and (base / "memory.memsw.limit_in_bytes").exists()
        parent = self.root / self.parent if self.parent else None
        if parent is not None and (parent / "memory.swap.max").exists():
            return True
        return any((child / "memory.swap.max").exists() for child in self._children())

    def ensure_parent(self) -> None:
        """Create ``/<parent>`` where runc will put cgroups under it: in each v1 hierarchy
        (cpuset's cpus and mems copied from above, which a new cpuset lacks), or in v2 with
        the cpu, memory and pids controllers enabled for the children of each level."""
        if not self.parent:
            return
        parts = self.parent.split("/")
        if self.mode == "v2":
            current = self.root
            for part in parts:
                self._enable_subtree(current)
                current = current / part
                current.mkdir(exist_ok=True)
            self._enable_subtree(current)
            return
        for hierarchy in self.hierarchies():
            if hierarchy.name == "unified":
                continue
            current = hierarchy
            for part in parts:
                child = current / part
                child.mkdir(exist_ok=True)
                for name in ("cpuset.cpus", "cpuset.mems"):
                    _inherit(current / name, child / name)
                current = child

    def _enable_subtree(self, cgroup: Path) -> None:
        available = set(_read(cgroup / "cgroup.controllers").split())
        enabled = set(_read(cgroup / "cgroup.subtree_control").split())
        wanted = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
        if not wanted:
            return
        try:
            (cgroup / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
        except OSError as err:
            log.warning("cannot enable %s in %s: %s", wanted, cgroup, err)

    # ----- what the kernel reports ----------------------------------------------------------

    def stats(self, path: str) -> CgroupStats | None:
        """CPU, memory and task counts of the cgroup; None when it is gone."""
        if self.mode == "v2":
            d = self.root / self._rel(path)
            if not d.is_dir():
                return None
            cpu = _keyed(d / "cpu.stat").get("usage_usec", 0) * 1000
            mstat = _keyed(d / "memory.stat")
            usage = _int(d / "memory.current") or 0
            working = max(0, usage - mstat.get("inactive_file", 0))
            rss = mstat.get("anon", 0)
            pids = _int(d / "pids.current")
            return CgroupStats(cpu, working, rss, len(self.procs(path)) if pids is None else pids)
        cpu_dir = self._dir("cpuacct", path)
        mem_dir = self._dir("memory", path)
        present = [d for d in (cpu_dir, mem_dir) if d is not None and d.is_dir()]
        if not present:
            return None
        cpu = (_int(cpu_dir / "cpuacct.usage") if cpu_dir else None) or 0
        usage, mstat = 0, {}
        if mem_dir is not None:
            usage = _int(mem_dir / "memory.usage_in_bytes") or 0
            mstat = _keyed(mem_dir / "memory.stat")
        working = max(0, usage - mstat.get("total_inactive_file", 0))
        rss = mstat.get("total_rss", 0)
        pids_dir = self._dir("pids", path)
        pids = _int(pids_dir / "pids.current") if pids_dir else None
        return CgroupStats(cpu, working, rss, len(self.procs(path)) if pids is None else pids)

    def oom_killed(self, path: str) -> bool:
        """Whether the kernel's OOM killer killed a process of the cgroup (its ``oom_kill``
        count; v1 has it in memory.oom_control since Linux 4.13)."""
        if self.mode == "v2":
            events = _keyed(self.root / self._rel(path) / "memory.events")
        else:
            mem = self._dir("memory", path)
            events = _keyed(mem / "memory.oom_control") if mem else {}
        return events.get("oom_kill", 0) > 0

    def cpu_quota(self, path: str) -> tuple[int, int] | None:
        """(quota, period) in microseconds as the kernel has them, quota -1 when unlimited;
        None when the cgroup or its cpu controller is absent."""
        if self.mode == "v2":
            text = _read(self.root / self._rel(path) / "cpu.max").split()
            if len(text) != 2:
                return None
            return (UNLIMITED if text[0] == "max" else int(text[0])), int(text[1])
        d = self._dir("cpu", path)
        if d is None:
            return None
        quota, period = _int(d / "cpu.cfs_quota_us"), _int(d / "cpu.cfs_period_us")
        if quota is None or period is None:
            return None
        return (UNLIMITED if quota < 0 else quota), period

    def cpu_shares(self, path: str) -> int | None:
        """v1 cpu.shares, or v2 cpu.weight (see ``shares_to_weight``); None when absent."""
        if self.mode == "v2":
            return _int(self.root / self._rel(path) / "cpu.weight")
        d = self._dir("cpu", path)
        return None if d is None else _int(d / "cpu.shares")

    def memory_limit(self, path: str) -> int | None:
        """The memory limit in bytes, -1 when unlimited; None when absent."""
        if self.mode == "v2":
            text = _read(self.root / self._rel(path) / "memory.max").strip()
            if not text:
                return None
            return UNLIMITED if text == "max" else int(text)
        d = self._dir("memory", path)
        limit = None if d is None else _int(d / "memory.limit_in_bytes")
        if limit is None:
            return None
        return UNLIMITED if limit >= V1_NO_LIMIT else limit

    def procs(self, path: str) -> list[int]:
        """Every process in the cgroup and the cgroups below it (from the memory hierarchy
        on v1, which runc always joins; else the first hierarchy that has the cgroup)."""
        rel = self._rel(path)
        candidates = [self.root] if self.mode == "v2" else [
            d for d in (self.controller_dir("memory"), self.controller_dir("pids"),
                        *self.hierarchies()) if d is not None]
        for base in candidates:
            top = base / rel
            if top.is_dir():
                pids: list[int] = []
                for d in _tree(top):
                    pids += [int(x) for x in _read(d / "cgroup.procs").split()]
                return sorted(set(pids))
        return []

    # ----- removal ----------------------------------------------------------------------

    def remove(self, path: str) -> None:
        """Remove the cgroup and every cgroup below it (deepest first) in every hierarchy.
        Gone already is fine. A cgroup still busy after a short while (a process not yet
        reaped) is logged and left."""
        rel = self._rel(path)
        for hierarchy in self.hierarchies():
            top = hierarchy / rel
            if not top.is_dir():
                continue
            for d in reversed(list(_tree(top))):
                _rmdir(d)


def _tree(top: Path) -> Iterator[Path]:
    """``top`` and the directories below it, parents before children."""
    yield top
    try:
        children = sorted(p for p in top.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return
    for child in children:
        yield from _tree(child)


def _rmdir(d: Path) -> None:
    for attempt in range(REMOVE_ATTEMPTS):
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY:
                log.warning("cannot remove cgroup %s: %s", d, err)
                return
            if attempt == REMOVE_ATTEMPTS - 1:
                log.warning("cgroup %s is still busy; left in place", d)
                return
            time.sleep(REMOVE_PAUSE)


def _inherit(source: Path, target: Path) -> None:
    """Copy a cpuset value down when the new cgroup's is empty (no CPU, no memory node)."""
    if not target.exists() or _read(target).strip():
        return
    value = _read(source).strip()
    if value:
        try:
            target.write_text(value)
        except OSError as err:
            log.warning("cannot set %s: %s", target, err)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _int(path: Path) -> int | None:
    text = _read(path).strip()
    try:
        return int(text)
    except ValueError:
        return None


def _keyed(path: Path) -> dict[str, int]:
    """A flat-keyed file (``name value`` per line: memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out
