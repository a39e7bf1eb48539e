"""The process runtime's state on disk: one JSON file per sandbox and per container.

Everything needed to find a container again after the agent restarts is here,
so that a new runtime over the same root directory lists the same sandboxes
and containers with the same ids, states and labels:

- ``sandboxes/<id>/sandbox.json``: the sandbox's config, creation time, state;
- ``containers/<id>/container.json``: what the container was created with
  (argv, env, working directory, mounts, log path, labels, annotations) and
  what the runtime made for it (mount points it had to create on the host);
- ``containers/<id>/started.json`` and ``exit.json``, written by the shim:
  the pid and start time, then the exit code, reason and finish time.

A container's state is read from those files: neither → created; started →
running (while its process lives); exit → exited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.runtime.protocol import ContainerStatus, SandboxState, SandboxStatus
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

    FILE = "sandbox.json"
    FIELDS = ("id", "config", "created_at", "state")

    def status(self, node_ip: str) -> SandboxStatus:
        c = self.config
        return SandboxStatus(
            id=self.id, uid=c["uid"], namespace=c["namespace"], name=c["name"],
            attempt=c.get("attempt", 0), state=SandboxState(self.state),
            created_at=self.created_at, ip=node_ip,
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
    env: list[list[str]]
    cwd: str
    mounts: list[list[Any]]  # [host_path, container_path, read_only]
    private_mounts: bool
    log_path: str
    stdin: bool
    stdin_once: bool
    tty: bool
    labels: dict[str, str]
    annotations: dict[str, str]
    created_at: float
    created_paths: list[str] = field(default_factory=list)

    FILE = "container.json"
    FIELDS = ("id", "sandbox_id", "name", "attempt", "image", "image_ref", "argv", "env",
              "cwd", "mounts", "private_mounts", "log_path", "stdin", "stdin_once", "tty",
              "labels", "annotations", "created_at", "created_paths")

    @property
    def root(self) -> Path:
        """The container's own directory (its default working directory)."""
        return self.dir / "root"

    def started(self) -> dict[str, Any] | None:
        return read_json(self.dir / "started.json")

    def exited(self) -> dict[str, Any] | None:
        return read_json(self.dir / "exit.json")

    def running_pid(self) -> int:
        """The main process's pid while the container runs, else 0."""
        return running_pid(self.dir)

    def status(self) -> ContainerStatus:
        return container_status(self)

    def environ(self) -> dict[str, str]:
        from kubeling.runtime.shim import DEFAULT_PATH

        env = dict((k, v) for k, v in self.env)
        env.setdefault("PATH", DEFAULT_PATH)
        return env
