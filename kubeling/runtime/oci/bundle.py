"""OCI runtime-spec ``config.json`` documents for a pod's pause container and its containers.

The shapes follow what Docker and containerd hand runc (facts, not code): the
default capability set, masked and read-only ``/proc`` paths, the usual
``/dev``, ``/proc``, ``/sys`` mounts, a device cgroup that denies everything
but the handful of character devices every container gets. ``privileged``
lifts all of that: every capability, every device, ``/sys`` writable, nothing
masked.

A pod's containers share the pause container's network, IPC and UTS
namespaces (joined by path), and each has its own PID and mount namespace.
The pause holds the network namespace the CNI plugins configured (or the
host's, for a host-network pod) and a new UTS namespace whose hostname is the
pod's.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping, Sequence
from typing import Any

from kubeling.runtime.oci.users import User
from kubeling.runtime.protocol import Mount, RuntimeFailure, Security

OCI_VERSION = "1.0.2"

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")

# In the kernel's order (capability number = index).
ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")

MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Character devices every container may use: null, zero, full, random, urandom, tty,
# console, ptmx, and the pseudo-terminals (major 136).
ALLOWED_DEVICES = ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, -1))

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def kernel_capabilities() -> tuple[str, ...]:
    """Every capability a container may have here: those this kernel knows and this process
    may still grant (its bounding set; a runtime inside a restricted container has fewer)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = len(ALL_CAPABILITIES) - 1
    bounding = (1 << (last + 1)) - 1
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    bounding = int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return tuple(name for bit, name in enumerate(ALL_CAPABILITIES[:last + 1])
                 if bounding & (1 << bit))


def _cap_name(name: str) -> str:
    name = name.strip().upper()
    return name if name.startswith("CAP_") or name == "ALL" else "CAP_" + name


def capabilities(security: Security) -> list[str]:
    """The container's capability set: the default set, plus ``add``, minus ``drop``; "ALL"
    in either means every capability; ``privileged`` gets every capability."""
    known = kernel_capabilities()
    if security.privileged:
        return list(known)
    add = [_cap_name(c) for c in security.add_capabilities]
    drop = {_cap_name(c) for c in security.drop_capabilities}
    caps = list(known) if "ALL" in add else list(DEFAULT_CAPABILITIES)
    caps += [c for c in add if c != "ALL" and c not in caps]
    if "ALL" in drop:
        caps = [c for c in add if c != "ALL"] if "ALL" not in add else []
    return [c for c in caps if c not in drop and c in known]


def env_list(image_env: Sequence[str], env: Sequence[tuple[str, str]]) -> list[str]:
    """The image's environment overlaid by the pod's (the pod wins), PATH when neither has one."""
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        merged[key] = value
    for key, value in env:
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH)
    return [f"{k}={v}" for k, v in merged.items()]


def system_mounts(privileged: bool) -> list[dict[str, Any]]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime",
                     "rw" if privileged else "ro"]},
    ]


def bind_mount(source: str, destination: str, *, read_only: bool = False,
               propagation: str = "private") -> dict[str, Any]:
    if propagation not in ("private", "rprivate", "rslave", "rshared", "slave", "shared"):
        raise RuntimeFailure("CreateContainerError", f"unknown mount propagation {propagation!r}")
    options = ["rbind", propagation if propagation.startswith("r") else "r" + propagation]
    options.append("ro" if read_only else "rw")
    return {"destination": destination, "type": "bind", "source": source, "options": options}


def pod_mounts(files: Mapping[str, str], mounts: Sequence[Mount]) -> list[dict[str, Any]]:
    """The sandbox's /etc files (unless the pod mounts something there) and the pod's own
    mounts, parents before children."""
    targets = {m.container_path.rstrip("/") for m in mounts}
    found = [bind_mount(source, destination) for destination, source in files.items()
             if destination not in targets]
    ordered = sorted(mounts, key=lambda m: m.container_path.rstrip("/").count("/"))
    found += [bind_mount(m.host_path, m.container_path, read_only=m.read_only,
                         propagation=m.propagation) for m in ordered]
    return found


def devices(privileged: bool) -> list[dict[str, Any]]:
    if privileged:
        return [{"allow": True, "access": "rwm"}]
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for major, minor in ALLOWED_DEVICES:
        rules.append({"allow": True, "type": "c", "major": major, "minor": minor,
                      "access": "rwm"})
    return rules


def namespaces(*, network: str | None, ipc: str | None, uts: str | None,
               new_uts: bool, new_ipc: bool) -> list[dict[str, Any]]:
    """pid and mount always new; network/ipc/uts joined by path, new, or (None and not new)
    the host's."""
    found: list[dict[str, Any]] = [{"type": "pid"}, {"type": "mount"}]
    for kind, path, new in (("network", network, False), ("ipc", ipc, new_ipc),
                            ("uts", uts, new_uts)):
        if path:
            found.append({"type": kind, "path": path})
        elif new:
            found.append({"type": kind})
    return found


def spec(*, args: Sequence[str], env: Sequence[str], cwd: str, user: User, tty: bool,
         security: Security, readonly_root: bool, mounts: list[dict[str, Any]],
         linux_namespaces: list[dict[str, Any]], cgroups_path: str,
         resources: Mapping[str, Any], oom_score_adj: int = 0, hostname: str = "",
         sysctls: Mapping[str, str] | None = None, root: str = "rootfs") -> dict[str, Any]:
    caps = capabilities(security)
    nofile = min(1048576, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    process: dict[str, Any] = {
        "terminal": tty,
        "user": {"uid": user.uid, "gid": user.gid,
                 **({"additionalGids": list(user.additional_gids)}
                    if user.additional_gids else {})},
        "args": list(args), "env": list(env), "cwd": cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": security.no_new_privileges and not security.privileged,
    }
    if oom_score_adj:
        process["oomScoreAdj"] = oom_score_adj
    linux: dict[str, Any] = {
        "namespaces": linux_namespaces,
        "cgroupsPath": cgroups_path,
        "resources": {**resources, "devices": devices(security.privileged)},
    }
    if not security.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if sysctls:
        linux["sysctl"] = dict(sysctls)
    document: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": root, "readonly": readonly_root},
        "mounts": mounts,
        "linux": linux,
    }
    if hostname:
        document["hostname"] = hostname
    return document
