"""The OCI runtime's state on disk: one JSON file per sandbox and per container.

A new runtime over the same root directory finds every sandbox and container
again from these files (the agent restarted); nothing is kept only in memory.

- ``sandboxes/<id>/sandbox.json``: the sandbox's config, its state, its
  network (netns path, IPs), its cgroup parent; beside it the files its
  containers bind-mount (``hosts``, ``hostname``, ``resolv.conf``) and the
  pause container's directory ``pause/`` (bundle and shim files);
- ``containers/<id>/container.json``: what the container was made from (image
  id, argv, env, cwd, user, mounts, labels...) and its cgroup path; beside it
  ``bundle/config.json``, the overlay's ``rootfs``/``upper``/``work`` and the
  shim's ``started.json``/``exit.json``/``attach.sock``/``shim.log``.

The shim's files say where a container is in its life exactly as for the
process runtime: neither → created, started → running (while its init
lives), exit → exited. ``exit.json`` also records whether the runtime has
already asked the cgroup about an OOM kill (``oom_checked``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.runtime.protocol import (
    ContainerStatus,
    SandboxState,
    SandboxStatus,
)
from kubeling.runtime.shimfiles import (
    JsonRecord,
    container_status,
    pid_alive,
    read_json,
    running_pid,
    write_json,
)

__all__ = ["ContainerRecord", "SandboxRecord", "pid_alive", "read_json", "write_json"]


@dataclass
class SandboxRecord(JsonRecord):
    id: str
    dir: Path
    config: dict[str, Any]
    created_at: float
    state: str = SandboxState.READY.value
    netns: str = ""  # the network namespace's file; "" for host network
    ip: str = ""
    ips: list[str] = field(default_factory=list)
    cgroup_parent: str = ""  # relative to the runtime's cgroup parent, e.g. kubepods/.../pod<uid>

    FILE = "sandbox.json"
    FIELDS = ("id", "config", "created_at", "state", "netns", "ip", "ips", "cgroup_parent")

    @property
    def pause_dir(self) -> Path:
        return self.dir / "pause"

    @property
    def host_network(self) -> bool:
        return bool(self.config.get("host_network"))

    def pause_pid(self) -> int:
        """The pause process's host pid while it runs, else 0."""
        return running_pid(self.pause_dir)

    def status(self) -> SandboxStatus:
        c = self.config
        return SandboxStatus(
            id=self.id, uid=c["uid"], namespace=c["namespace"], name=c["name"],
            attempt=c.get("attempt", 0), state=SandboxState(self.state),
            created_at=self.created_at, ip=self.ip, additional_ips=tuple(self.ips[1:]),
            labels=dict(c.get("labels") or {}), annotations=dict(c.get("annotations") or {}))


@dataclass
class ContainerRecord(JsonRecord):
    id: str
    sandbox_id: str
    dir: Path
    name: str
    attempt: int
    image: str
    image_ref: str
    argv: list[str]
    env: list[str]  # "KEY=value", as the OCI spec has them
    cwd: str
    log_path: str
    stdin: bool
    stdin_once: bool
    tty: bool
    labels: dict[str, str]
    annotations: dict[str, str]
    created_at: float
    cgroup: str = ""  # the runc cgroupsPath
    stop_signal: str = ""
    mounted: bool = False  # the overlay rootfs is mounted

    FILE = "container.json"
    FIELDS = ("id", "sandbox_id", "name", "attempt", "image", "image_ref", "argv", "env",
              "cwd", "log_path", "stdin", "stdin_once", "tty", "labels", "annotations",
              "created_at", "cgroup", "stop_signal", "mounted")

    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    def started(self) -> dict[str, Any] | None:
        return read_json(self.dir / "started.json")

    def exited(self) -> dict[str, Any] | None:
        return read_json(self.dir / "exit.json")

    def running_pid(self) -> int:
        """The container's init (host pid) while it runs, else 0."""
        return running_pid(self.dir)

    def environ(self) -> dict[str, str]:
        found = {}
        for item in self.env:
            key, _, value = item.partition("=")
            found[key] = value
        return found

    def status(self) -> ContainerStatus:
        return container_status(self)
