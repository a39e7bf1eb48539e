"""``ProcessRuntime``: the Runtime protocol over plain host processes.

The process runtime gives NO isolation: no network, PID, IPC or UTS namespace
(every pod shares the host's network, and its IP is the node's), no cgroup
limits (requests and limits are not enforced, and nothing is ever OOMKilled),
no image unpacking (a container's command runs a binary of the host; image
names are only recorded). What it does give:

- a sandbox is a directory and a state file;
- a container is a host process in its own session and process group, run by
  a shim (``kubeling.runtime.shim``) that outlives the agent, writes the CRI
  log and the exit status, and serves attach;
- each container has its own directory, ``containers/<id>/root``, which is its
  working directory unless ``working_dir`` is given and exists or can be
  created (as non-root, a ``working_dir`` under a mount's container path is
  the mounted host path);
- mounts: as root, a private mount namespace per container in which each host
  path is bind-mounted at its container path (read-only when asked; missing
  mount points are created on the host and removed with the container).
  Without root, a mount is a symlink at ``root/<container path>`` pointing at
  the host path: the container finds it relative to its own directory only;
- exec runs as a child of the caller in the container's context (its env, its
  working directory, and as root its mount namespace, through ``nsenter``).

Everything is on disk under the root directory (see ``records``), so a new
runtime over the same directory adopts the containers a previous one started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubeling.runtime import RuntimeOptions, netnsconnect, shims
from kubeling.runtime.process import tree
from kubeling.runtime.process.images import ImageStore, image_id
from kubeling.runtime.process.records import ContainerRecord, SandboxRecord, write_json
from kubeling.runtime.process.sessions import ExecSession, ExecSessions
from kubeling.runtime.protocol import (
    ContainerConfig,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    ImageInfo,
    NotFound,
    PodSandboxConfig,
    RuntimeFailure,
    RuntimeVersion,
    SandboxState,
    SandboxStatus,
    StreamSession,
)


def kubeling_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kubeling")
    except PackageNotFoundError:
        return "0.0.0"


class ProcessRuntime:
    name = "process"

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.root = Path(options.root_dir)
        self.sandbox_root = self.root / "sandboxes"
        self.container_root = self.root / "containers"
        for d in (self.sandbox_root, self.container_root):
            d.mkdir(parents=True, exist_ok=True)
        self.images = ImageStore(self.root / "images")
        self.privileged = os.geteuid() == 0
        self._sandboxes: dict[str, SandboxRecord] = {}
        self._containers: dict[str, ContainerRecord] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._execs = ExecSessions()
        for d in self.sandbox_root.iterdir():
            if (s := SandboxRecord.load(d)) is not None:
                self._sandboxes[s.id] = s
        for d in self.container_root.iterdir():
            if (c := ContainerRecord.load(d)) is not None:
                self._containers[c.id] = c

    async def version(self) -> RuntimeVersion:
        return RuntimeVersion("process", kubeling_version())

    # ----- sandboxes ---------------------------------------------------------------
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        sid = secrets.token_hex(32)
        directory = self.sandbox_root / sid
        directory.mkdir()
        record = SandboxRecord(id=sid, dir=directory, config=_plain(config),
                               created_at=time.time())
        record.save()
        self._sandboxes[sid] = record
        return sid

    def _sandbox(self, sandbox_id: str) -> SandboxRecord:
        record = self._sandboxes.get(sandbox_id)
        if record is None:
            raise NotFound(f"pod sandbox {sandbox_id}")
        return record

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        record = self._sandboxes.get(sandbox_id)
        if record is None:
            return
        members = [c for c in self._containers.values() if c.sandbox_id == sandbox_id]
        await asyncio.gather(*(self.stop_container(c.id, 0) for c in members))
        if record.state != SandboxState.NOTREADY.value:
            record.state = SandboxState.NOTREADY.value
            record.save()

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        if sandbox_id not in self._sandboxes:
            return
        await self.stop_pod_sandbox(sandbox_id)
        members = [c for c in self._containers.values() if c.sandbox_id == sandbox_id]
        await asyncio.gather(*(self.remove_container(c.id) for c in members))
        record = self._sandboxes.pop(sandbox_id)
        shutil.rmtree(record.dir, ignore_errors=True)

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        return self._sandbox(sandbox_id).status(self.options.node_ip)

    async def list_pod_sandboxes(self) -> list[SandboxStatus]:
        return [s.status(self.options.node_ip) for s in self._sandboxes.values()]

    # ----- containers --------------------------------------------------------------
    def _container(self, container_id: str) -> ContainerRecord:
        record = self._containers.get(container_id)
        if record is None:
            raise NotFound(f"container {container_id}")
        return record

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: PodSandboxConfig) -> str:
        box = self._sandbox(sandbox_id)
        if box.state != SandboxState.READY.value:
            raise RuntimeFailure("CreateContainerError",
                                 f"pod sandbox {sandbox_id} is not ready")
        argv = [*config.command, *config.args]
        if not argv:
            raise RuntimeFailure(
                "CreateContainerError",
                f"container {config.name!r} has no command: the process runtime runs host "
                f"binaries and cannot take an entrypoint from image {config.image!r}; "
                "set command (and args) in the pod spec")
        if not config.log_path:
            raise RuntimeFailure("CreateContainerError",
                                 f"container {config.name!r} has no log path")
        cid = secrets.token_hex(32)
        directory = self.container_root / cid
        (directory / "root").mkdir(parents=True)
        mounts = sorted(config.mounts, key=lambda m: m.container_path.rstrip("/").count("/"))
        record = ContainerRecord(
            id=cid, sandbox_id=sandbox_id, dir=directory, name=config.name,
            attempt=config.attempt, image=config.image, image_ref=image_id(config.image),
            argv=argv, env=[[k, v] for k, v in config.env], cwd="",
            mounts=[[m.host_path, m.container_path, m.read_only] for m in mounts],
            private_mounts=self.privileged and bool(mounts), log_path=config.log_path,
            stdin=config.stdin, stdin_once=config.stdin_once, tty=config.tty,
            labels=dict(config.labels), annotations=dict(config.annotations),
            created_at=time.time())
        try:
            if record.private_mounts:
                record.created_paths = _mount_points(record.mounts)
            else:
                _symlink_mounts(record)
            record.cwd = _working_dir(record, config.working_dir)
        except OSError as err:
            shutil.rmtree(directory, ignore_errors=True)
            _remove_created(record.created_paths, set())
            raise RuntimeFailure("CreateContainerError", f"cannot prepare mounts: {err}") from err
        record.save()
        self._containers[cid] = record
        return cid

    async def start_container(self, container_id: str) -> None:
        record = self._container(container_id)
        async with self._lock(container_id):
            if record.started() is not None or record.exited() is not None:
                raise RuntimeFailure("RunContainerError",
                                     f"container {container_id} was already started")
            write_json(record.dir / "shim.json", {
                "argv": record.argv, "env": record.env, "cwd": record.cwd,
                "log_path": record.log_path, "log_max_bytes": self.options.log_max_bytes,
                "log_max_files": self.options.log_max_files, "stdin": record.stdin,
                "stdin_once": record.stdin_once, "tty": record.tty, "mounts": record.mounts,
                "private_mounts": record.private_mounts})
            await shims.launch(record.dir)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        record = self._containers.get(container_id)
        if record is None:
            return
        await self._execs.close(container_id)
        async with self._lock(container_id):
            started = record.started()
            if started is None or record.exited() is not None:
                return
            pid, shim_pid = int(started["pid"]), int(started.get("shim_pid", 0))
            if timeout > 0:
                tree.signal_group(pid, signal.SIGTERM)
                if await shims.wait_exit(record.dir, timeout):
                    return
            for _ in range(100):
                tree.kill_tree(pid, shim_pid)
                if await shims.wait_exit(record.dir, 0.1):
                    return
                if not (tree.tree(pid, shim_pid) or _alive(shim_pid)):
                    break
            if record.exited() is None:
                write_json(record.dir / "exit.json", {
                    "exit_code": 137, "finished_at": time.time(), "reason": "Error",
                    "message": "killed after its shim was lost"})

    async def remove_container(self, container_id: str) -> None:
        record = self._containers.get(container_id)
        if record is None:
            return
        await self.stop_container(container_id, 0)
        started = record.started()
        if started is not None:
            tree.kill_tree(int(started["pid"]), int(started.get("shim_pid", 0)))
        self._containers.pop(container_id, None)
        self._locks.pop(container_id, None)
        shutil.rmtree(record.dir, ignore_errors=True)
        in_use = {m[1] for c in self._containers.values() if c.private_mounts for m in c.mounts}
        _remove_created(record.created_paths, in_use)

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._container(container_id).status()

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [c.status() for c in list(self._containers.values())
                if sandbox_id is None or c.sandbox_id == sandbox_id]

    # ----- exec and attach ----------------------------------------------------------
    def _exec_argv(self, record: ContainerRecord, command: Sequence[str]) -> tuple[
            list[str], str]:
        if not command:
            raise RuntimeFailure("ExecError", "no command to exec")
        pid = record.running_pid()
        if pid == 0:
            raise RuntimeFailure("ContainerNotRunning",
                                 f"container {record.id} is not running")
        env = record.environ()
        root = f"/proc/{pid}/root" if record.private_mounts else ""
        if _resolve(command[0], env["PATH"], root, record.cwd) is None:
            raise RuntimeFailure("ExecError",
                                 f'exec: "{command[0]}": executable file not found in $PATH')
        if record.private_mounts:
            nsenter = shutil.which("nsenter")
            if nsenter is None:
                raise RuntimeFailure("ExecError", "nsenter (util-linux) is not installed")
            return [nsenter, f"--mount=/proc/{pid}/ns/mnt", f"--wd={record.cwd}", "--",
                    *command], str(record.dir)
        return list(command), record.cwd

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        record = self._container(container_id)
        argv, cwd = self._exec_argv(record, command)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=record.environ(), cwd=cwd,
            start_new_session=True)
        collect = asyncio.ensure_future(proc.communicate())
        try:
            out, err = await asyncio.wait_for(asyncio.shield(collect), timeout)
        except TimeoutError:
            tree.kill_tree(proc.pid, 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
            collect.cancel()
            return ExecResult(exit_code=137, stdout=b"", stderr=b"", timed_out=True)
        code = proc.returncode or 0
        return ExecResult(exit_code=128 - code if code < 0 else code, stdout=out, stderr=err)

    async def exec(self, container_id: str, command: Sequence[str], *, tty: bool,
                   stdin: bool, size: tuple[int, int] | None = None) -> StreamSession:
        record = self._container(container_id)
        argv, cwd = self._exec_argv(record, command)
        session = ExecSession(tty=tty, stdin=stdin, size=size)
        try:
            await session.start(argv, env=record.environ(), cwd=cwd)
        except OSError as err:
            raise RuntimeFailure("ExecError", f"cannot exec {command[0]!r}: {err}") from err
        self._execs.add(container_id, session)
        return session

    async def attach(self, container_id: str, *, tty: bool, stdin: bool) -> StreamSession:
        record = self._container(container_id)
        return await shims.attach(record.dir, container_id, tty=record.tty, stdin=record.stdin,
                                  wants_stdin=stdin)

    async def reopen_container_log(self, container_id: str) -> None:
        shims.reopen_log(self._container(container_id).dir, container_id)

    async def port_forward(self, sandbox_id: str,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Pods share the host's network here: the port is on the host's localhost."""
        self._sandbox(sandbox_id)
        return await netnsconnect.open_connection(port, None)

    # ----- stats -------------------------------------------------------------------
    async def container_stats(self, container_id: str) -> ContainerStats | None:
        record = self._container(container_id)
        return self._stats(record)

    def _stats(self, record: ContainerRecord) -> ContainerStats | None:
        started = record.started()
        if started is None or record.exited() is not None:
            return None
        cpu, rss, count = tree.usage(int(started["pid"]), int(started.get("shim_pid", 0)))
        return ContainerStats(container_id=record.id, timestamp=time.time(),
                              cpu_usage_core_ns=cpu, memory_working_set_bytes=rss,
                              memory_rss_bytes=rss, processes=count)

    async def list_container_stats(self) -> list[ContainerStats]:
        found = []
        for record in list(self._containers.values()):
            if (stats := self._stats(record)) is not None:
                found.append(stats)
        return found

    # ----- images ------------------------------------------------------------------
    async def pull_image(self, image: str, *, auth: Mapping[str, str] | None = None) -> str:
        if not image:
            raise RuntimeFailure("ErrImagePull", "no image name")
        return self.images.pull(image)

    async def image_status(self, image: str) -> ImageInfo | None:
        return self.images.status(image)

    async def list_images(self) -> list[ImageInfo]:
        return self.images.list()

    async def remove_image(self, image: str) -> None:
        self.images.remove(image)

    async def update_runtime_config(self, pod_cidr: str) -> None:
        """Pods share the host's network here: a pod CIDR changes nothing."""

    async def close(self) -> None:
        await self._execs.close_all()


def _plain(config: PodSandboxConfig) -> dict[str, object]:
    data = dataclasses.asdict(config)
    for key in ("labels", "annotations", "sysctls"):
        data[key] = dict(data[key])
    return data


def _alive(pid: int) -> bool:
    from kubeling.runtime.process.records import pid_alive

    return pid_alive(pid)


def _resolve(argv0: str, path: str, root: str, cwd: str) -> str | None:
    """Where ``argv0`` is, seen from the container (``root`` prefixes its mount namespace)."""
    if "/" in argv0:
        target = argv0 if argv0.startswith("/") else os.path.join(cwd, argv0)
        return target if os.access(root + target, os.X_OK) else None
    for entry in path.split(":"):
        candidate = os.path.join(entry or ".", argv0)
        full = root + candidate if candidate.startswith("/") else candidate
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return candidate
    return None


def _mount_points(mounts: list[list[object]]) -> list[str]:
    """Create missing mount points on the host; returns what was created, outermost first."""
    created: list[str] = []
    for host, target, _ro in mounts:
        assert isinstance(host, str) and isinstance(target, str)
        if os.path.lexists(target):
            continue
        missing = []
        parent = target
        while not os.path.lexists(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        missing.reverse()
        if os.path.isdir(host):
            os.makedirs(target)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        created += missing
    return created


def _remove_created(paths: list[str], in_use: set[str]) -> None:
    for path in reversed(paths):
        if any(used == path or used.startswith(path.rstrip("/") + "/") for used in in_use):
            continue
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)


def _symlink_mounts(record: ContainerRecord) -> None:
    for host, target, _ro in record.mounts:
        link = record.root / str(target).lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            continue
        link.symlink_to(str(host))


def _working_dir(record: ContainerRecord, wanted: str) -> str:
    if not wanted:
        return str(record.root)
    for host, target, _ro in reversed(record.mounts):
        target = str(target).rstrip("/")
        if wanted == target or wanted.startswith(target + "/"):
            on_host = str(host) + wanted[len(target):]
            with contextlib.suppress(OSError):
                os.makedirs(on_host, exist_ok=True)
            return wanted if record.private_mounts else on_host
    if os.path.isdir(wanted):
        return wanted
    missing = []
    parent = wanted
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    try:
        os.makedirs(wanted)
    except OSError:
        return str(record.root)
    record.created_paths += reversed(missing)
    return wanted
