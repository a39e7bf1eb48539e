"""What the agent says about its machine: the Node object and its status, measured for real.

Capacity comes from the machine (CPUs, memory, the filesystem of the agent's
root dir); allocatable leaves out the kubelet's default hard eviction
thresholds (memory.available<100Mi, nodefs.available<10%). The pressure
conditions compare a reading of the machine with those same thresholds and
carry the kubelet's reasons and messages; a condition's transition time is kept
while its status holds. Building is pure (a ``Reading`` in, JSON out), so tests
feed it readings instead of a loaded machine.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from kubeling.client.interface import Obj
from kubeling.client.nodeobjects import CONTROL_PLANE_LABEL, arch, condition, standard_labels
from kubeling.kubelet.context import KubeletOptions
from kubeling.runtime.protocol import ImageInfo

KUBELET_VERSION = "v1.32.0+kubeling"  # the API server's gitVersion: one build, one version
MI = 1024 * 1024
MAX_IMAGES = 50  # images listed in status.images
MAX_NAMES_PER_IMAGE = 5


@dataclass(frozen=True)
class Thresholds:
    """Hard eviction thresholds, the kubelet's defaults on Linux."""

    memory_available: int = 100 * MI  # bytes
    nodefs_available: float = 0.10  # of the filesystem's size
    pid_available: float = 0.05  # of the kernel's pid_max


@dataclass(frozen=True)
class Reading:
    """One look at the machine's resources."""

    memory_total: int
    memory_available: int
    disk_total: int
    disk_available: int
    pid_max: int
    pids: int


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text().strip())
    except (OSError, ValueError):
        return 32768


def read_machine(root_dir: Path) -> Reading:
    """Measure memory, the root dir's filesystem and the number of processes now."""
    mem = psutil.virtual_memory()
    path = root_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    disk = shutil.disk_usage(path)
    return Reading(memory_total=mem.total, memory_available=mem.available,
                   disk_total=disk.total, disk_available=disk.free,
                   pid_max=_pid_max(), pids=len(psutil.pids()))


# type → ((reason, message, event) when False, (reason, message, event) when True)
_PRESSURE: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "MemoryPressure": (
        ("KubeletHasSufficientMemory", "kubelet has sufficient memory available",
         "NodeHasSufficientMemory"),
        ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available",
         "NodeHasInsufficientMemory")),
    "DiskPressure": (
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure", "NodeHasNoDiskPressure"),
        ("KubeletHasDiskPressure", "kubelet has disk pressure", "NodeHasDiskPressure")),
    "PIDPressure": (
        ("KubeletHasSufficientPID", "kubelet has sufficient PID available",
         "NodeHasSufficientPID"),
        ("KubeletHasInsufficientPID", "kubelet has insufficient PID available",
         "NodeHasInsufficientPID")),
}
CONDITION_TYPES = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def under_pressure(reading: Reading, thresholds: Thresholds = Thresholds()) -> dict[str, bool]:
    return {
        "MemoryPressure": reading.memory_available < thresholds.memory_available,
        "DiskPressure": reading.disk_available < reading.disk_total * thresholds.nodefs_available,
        "PIDPressure": reading.pid_max - reading.pids < reading.pid_max * thresholds.pid_available,
    }


@dataclass(frozen=True)
class Transition:
    """A condition that changed status: the event the kubelet records for it."""

    type: str
    status: str
    event: str  # NodeHasSufficientMemory, NodeReady, NodeNotReady...
    warning: bool = False


def conditions(reading: Reading, *, now: float, previous: list[Obj] | None = None,
               not_ready: list[str] | None = None,
               thresholds: Thresholds = Thresholds()) -> tuple[list[Obj], list[Transition]]:
    """The four node conditions at ``now`` and the transitions since ``previous`` (a
    condition seen for the first time is a transition too). ``not_ready``: why the node is
    not Ready (empty: it is)."""
    before = {c.get("type"): c for c in previous or ()}
    out: list[Obj] = []
    changes: list[Transition] = []
    pressure = under_pressure(reading, thresholds)
    for type_, (ok, bad) in _PRESSURE.items():
        status = "True" if pressure[type_] else "False"
        reason, message, event = bad if pressure[type_] else ok
        old = before.get(type_)
        out.append(condition(type_, status, reason, message, now=now, previous=old))
        if old is None or old.get("status") != status:
            changes.append(Transition(type_, status, event))
    problems = [p for p in not_ready or () if p]
    if problems:
        ready = condition("Ready", "False", "KubeletNotReady", ", ".join(problems), now=now,
                          previous=before.get("Ready"))
    else:
        ready = condition("Ready", "True", "KubeletReady", "kubelet is posting ready status",
                          now=now, previous=before.get("Ready"))
    out.append(ready)
    old_ready = before.get("Ready")
    if old_ready is None or old_ready.get("status") != ready["status"]:
        good = ready["status"] == "True"
        changes.append(Transition("Ready", ready["status"],
                                  "NodeReady" if good else "NodeNotReady"))
    return out, changes


def resources(reading: Reading, options: KubeletOptions, *, cpus: int | None = None,
              thresholds: Thresholds = Thresholds()) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) as the kubelet reports them."""
    cpu = str(cpus or os.cpu_count() or 1)
    capacity = {"cpu": cpu, "ephemeral-storage": f"{reading.disk_total // 1024}Ki",
                "memory": f"{reading.memory_total // 1024}Ki", "pods": str(options.max_pods)}
    memory = max(0, reading.memory_total - thresholds.memory_available)
    storage = max(0, int(reading.disk_total * (1 - thresholds.nodefs_available)))
    allocatable = {"cpu": cpu, "ephemeral-storage": str(storage),
                   "memory": f"{memory // 1024}Ki", "pods": str(options.max_pods)}
    return capacity, allocatable


def _first_line(path: str) -> str:
    try:
        return Path(path).read_text().strip().splitlines()[0].strip()
    except (OSError, IndexError):
        return ""


def os_image(release_file: str = "/etc/os-release") -> str:
    try:
        text = Path(release_file).read_text()
    except OSError:
        return "Linux"
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            return value.strip().strip('"').strip("'") or "Linux"
    return "Linux"


def node_info(runtime_version: str) -> Obj:
    """status.nodeInfo: this machine's ids and versions. ``runtime_version`` is
    ``<runtime>://<version>``."""
    machine_id = _first_line("/etc/machine-id") or _first_line("/var/lib/dbus/machine-id")
    system_uuid = _first_line("/sys/class/dmi/id/product_uuid").lower()
    if not system_uuid:
        system_uuid = str(uuid.uuid5(uuid.NAMESPACE_OID, machine_id or socket.gethostname()))
    return {
        "machineID": machine_id,
        "systemUUID": system_uuid,
        "bootID": _first_line("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "containerRuntimeVersion": runtime_version,
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": platform.system().lower() or "linux",
        "architecture": arch(),
    }


def node_labels(options: KubeletOptions) -> dict[str, str]:
    labels = standard_labels(options.node_name)
    if options.control_plane:
        labels[CONTROL_PLANE_LABEL] = ""
    labels.update(options.node_labels)
    return labels


def addresses(node_ip: str, hostname: str) -> list[Obj]:
    out: list[Obj] = []
    if node_ip:
        out.append({"type": "InternalIP", "address": node_ip})
    out.append({"type": "Hostname", "address": hostname})
    return out


def images(infos: list[ImageInfo]) -> list[Obj]:
    """status.images: the biggest first, at most 50, each with at most 5 names."""
    out: list[Obj] = []
    for info in sorted(infos, key=lambda i: i.size, reverse=True)[:MAX_IMAGES]:
        names = list(dict.fromkeys([*info.repo_digests, *info.repo_tags]))
        if not names:
            names = [info.id]
        out.append({"names": names[:MAX_NAMES_PER_IMAGE], "sizeBytes": info.size})
    return out


def node_status(reading: Reading, options: KubeletOptions, *, node_ip: str, port: int,
                runtime_version: str, conds: list[Obj], image_list: list[Obj],
                cpus: int | None = None) -> Obj:
    capacity, allocatable = resources(reading, options, cpus=cpus)
    return {
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conds,
        "addresses": addresses(node_ip, options.node_name),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": node_info(runtime_version),
        "images": image_list,
    }


def node_object(options: KubeletOptions, status: Obj) -> Obj:
    """The Node the agent registers (labels, taints, its status)."""
    spec: Obj = {}
    if options.register_with_taints:
        spec["taints"] = [dict(t) for t in options.register_with_taints]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": options.node_name, "labels": node_labels(options),
                     "annotations": {
                         "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
        "status": status,
    }


def status_changed(old: Obj | None, new: Obj) -> bool:
    """Whether ``new`` says something ``old`` does not (heartbeat times aside)."""
    if old is None:
        return True

    def strip(status: Obj) -> Obj:
        out = {k: v for k, v in status.items() if v not in (None, [], {}, "")}  # omitempty
        out["conditions"] = sorted(
            ({k: v for k, v in c.items() if k != "lastHeartbeatTime"}
             for c in status.get("conditions") or ()), key=lambda c: str(c.get("type")))
        return out

    return strip({k: old.get(k) for k in new}) != strip(new)


def detect_node_ip() -> str:
    """The source address of the default route (no packet is sent); 127.0.0.1 without one."""
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                addr = str(s.getsockname()[0])
        except OSError:
            continue
        if addr and not addr.startswith(("0.", "::")):
            return addr
    return "127.0.0.1"
