"""The files a container's shim leaves, read the same way by every runtime that uses it.

A shim (``kubeling.runtime.shim``) writes ``started.json`` once its container
runs and ``exit.json`` once it has ended, in the container's directory. Those
two files, and whether the processes they name still live, are the container's
state for the process and the OCI runtimes alike: neither → created; started →
running while its process (or its shim) lives, unknown if both are gone;
exit → exited. Writes are atomic (a temporary file renamed into place).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from kubeling.runtime.protocol import ContainerState, ContainerStatus


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """A live process (not a zombie) with that pid."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] != b"Z"


def running_pid(directory: Path) -> int:
    """The container's main process while it runs, else 0."""
    if (directory / "exit.json").exists():
        return 0
    started = read_json(directory / "started.json")
    if started is None:
        return 0
    pid = int(started["pid"])
    return pid if pid_alive(pid) else 0


class ShimRecord(Protocol):
    """What a runtime records of a container, as far as its status needs."""

    id: str
    sandbox_id: str
    dir: Path
    name: str
    attempt: int
    image: str
    image_ref: str
    log_path: str
    labels: dict[str, str]
    annotations: dict[str, str]
    created_at: float


def container_status(record: ShimRecord) -> ContainerStatus:
    started = read_json(record.dir / "started.json")
    exited = read_json(record.dir / "exit.json")
    state = ContainerState.CREATED
    pid = 0
    extra: dict[str, Any] = {}
    if exited is not None:
        state = ContainerState.EXITED
        extra = {"finished_at": exited["finished_at"], "exit_code": exited["exit_code"],
                 "reason": exited["reason"], "message": exited.get("message", "")}
    elif started is not None:
        pid = int(started["pid"])
        if pid_alive(pid) or pid_alive(int(started.get("shim_pid", 0))):
            state = ContainerState.RUNNING
        else:
            state = ContainerState.UNKNOWN
            pid = 0
    return ContainerStatus(
        id=record.id, sandbox_id=record.sandbox_id, name=record.name, attempt=record.attempt,
        state=state, image=record.image, image_ref=record.image_ref,
        created_at=record.created_at,
        started_at=float(started["started_at"]) if started else 0.0,
        pid=pid, log_path=record.log_path, labels=dict(record.labels),
        annotations=dict(record.annotations), **extra)


class JsonRecord:
    """A runtime's record of a sandbox or container: the dataclass fields in ``FIELDS``,
    kept as one JSON file (``FILE``) in the record's own directory, which is not stored."""

    FILE: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...]]
    dir: Path

    def save(self) -> None:
        write_json(self.dir / self.FILE, {k: getattr(self, k) for k in self.FIELDS})

    @classmethod
    def load(cls, directory: Path) -> Self | None:
        data = read_json(directory / cls.FILE)
        if data is None:
            return None
        return cls(dir=directory, **{k: data[k] for k in cls.FIELDS if k in data})  # type: ignore[call-arg]
