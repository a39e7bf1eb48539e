"""``OciRuntime``: the Runtime protocol over runc (or crun), images and a CNI pod network.

A pod sandbox is a network namespace configured by the CNI plugins plus a
pause container holding it and the pod's IPC and UTS namespaces
(``sandbox``). A container is an OCI bundle (``bundle``) whose root is an
overlay of its image's layers (``rootfs``), joining the pause's namespaces,
in a cgroup under the pod's (``cgroups``), run by its own shim
(``kubeling.runtime.shim`` in OCI mode: ``runc create`` + ``runc start``, the
container's stdio, CRI log, attach socket and exit status). exec is
``runc exec`` (``execs``). Everything is on disk under the root directory
(``records``), so a new runtime over it adopts what an earlier one started.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubeling.runtime import RuntimeOptions, netnsconnect, shims
from kubeling.runtime.images import Image, ImageStore
from kubeling.runtime.network import PodNetwork
from kubeling.runtime.oci import bundle, execs, rootfs, users
from kubeling.runtime.oci import sandbox as podfiles
from kubeling.runtime.oci.cgroups import Cgroups
from kubeling.runtime.oci.records import (
    ContainerRecord,
    SandboxRecord,
    pid_alive,
    read_json,
    write_json,
)
from kubeling.runtime.oci.runc import Runc, find_binary
from kubeling.runtime.oci.sandboxes import SandboxOps
from kubeling.runtime.process.sessions import ExecSessions
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
    StreamSession,
    merge_argv,
)

__all__ = ["OciRuntime"]


class OciRuntime(SandboxOps):
    name = "oci"

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.root = Path(options.root_dir)
        self.sandbox_root = self.root / "sandboxes"
        self.container_root = self.root / "containers"
        for d in (self.sandbox_root, self.container_root, self.root / "runc"):
            d.mkdir(parents=True, exist_ok=True)
        self.binary = find_binary(options.oci_binary)
        self.runc = Runc(self.binary, str(self.root / "runc"))
        self.cg = Cgroups(options.cgroup_parent)
        self.images = ImageStore(options.images_dir or self.root / "images")
        self.net = PodNetwork(state_dir=self.root / "net",
                              conf_dir=options.cni_conf_dir or self.root / "cni" / "net.d",
                              bin_dirs=options.cni_bin_dirs, netns_dir=self.root / "netns",
                              bridge=options.cni_bridge)
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
        name, version = await self.runc.version()
        return RuntimeVersion(name, version)

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # ----- containers --------------------------------------------------------------
    def _container(self, container_id: str) -> ContainerRecord:
        record = self._containers.get(container_id)
        if record is None:
            raise NotFound(f"container {container_id}")
        return record

    def _members(self, sandbox_id: str) -> list[ContainerRecord]:
        return [c for c in self._containers.values() if c.sandbox_id == sandbox_id]

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: PodSandboxConfig) -> str:
        box = self._sandbox(sandbox_id)
        pause = box.pause_pid()
        if box.state != SandboxState.READY.value or pause == 0:
            raise RuntimeFailure("CreateContainerError",
                                 f"pod sandbox {sandbox_id} is not ready")
        image = self._resolve(config.image)
        if image is None:
            raise RuntimeFailure("CreateContainerError", f'image "{config.image}" not found')
        argv = merge_argv(config.command, config.args, image.config.entrypoint,
                          image.config.cmd)
        if not argv:
            raise RuntimeFailure("CreateContainerError",
                                 f"container {config.name!r}: no command specified")
        if not config.log_path:
            raise RuntimeFailure("CreateContainerError",
                                 f"container {config.name!r} has no log path")
        cid = secrets.token_hex(32)
        directory = self.container_root / cid
        record = ContainerRecord(
            id=cid, sandbox_id=sandbox_id, dir=directory, name=config.name,
            attempt=config.attempt, image=config.image, image_ref=image.id, argv=argv,
            env=bundle.env_list(image.config.env, config.env),
            cwd=config.working_dir or image.config.working_dir or "/",
            log_path=config.log_path, stdin=config.stdin, stdin_once=config.stdin_once,
            tty=config.tty, labels=dict(config.labels), annotations=dict(config.annotations),
            created_at=time.time(), cgroup=self.cg.path(box.cgroup_parent, cid),
            stop_signal=image.config.stop_signal)
        try:
            layers = await asyncio.to_thread(self.images.layer_dirs, image)
            record.bundle.mkdir(parents=True)
            rootfs.mount_overlay(layers, directory / "upper", directory / "work", record.rootfs)
            record.mounted = True
            self._write_bundle(record, config, box, pause, image.config.user)
        except (OSError, RuntimeFailure, ValueError) as err:
            if record.mounted:
                rootfs.unmount(record.rootfs)
            shutil.rmtree(directory, ignore_errors=True)
            if isinstance(err, RuntimeFailure):
                raise
            raise RuntimeFailure("CreateContainerError",
                                 f"container {config.name!r}: {err}") from err
        record.save()
        self._containers[cid] = record
        return cid

    def _write_bundle(self, record: ContainerRecord, config: ContainerConfig,
                      box: SandboxRecord, pause: int, image_user: str) -> None:
        security = config.security
        user = users.resolve(record.rootfs, image_user, security)
        mounts = bundle.system_mounts(security.privileged) + bundle.pod_mounts(
            podfiles.etc_files(box.dir), config.mounts)
        document = bundle.spec(
            args=record.argv, env=record.env, cwd=record.cwd, user=user, tty=config.tty,
            security=security, readonly_root=security.read_only_rootfs, mounts=mounts,
            linux_namespaces=bundle.namespaces(
                network=box.netns or None, ipc=f"/proc/{pause}/ns/ipc",
                uts=f"/proc/{pause}/ns/uts", new_uts=False, new_ipc=False),
            cgroups_path=record.cgroup, resources=self.cg.linux_resources(config.resources),
            oom_score_adj=config.resources.oom_score_adj)
        write_json(record.bundle / "config.json", document)

    async def start_container(self, container_id: str) -> None:
        record = self._container(container_id)
        async with self._lock(container_id):
            if record.started() is not None or record.exited() is not None:
                raise RuntimeFailure("RunContainerError",
                                     f"container {container_id} was already started")
            await self._launch_shim(record.dir, record.id, record.bundle, record.log_path,
                                    stdin=record.stdin, stdin_once=record.stdin_once,
                                    tty=record.tty)

    async def _launch_shim(self, directory: Path, runc_id: str, bundle_dir: Path,
                           log_path: str, *, stdin: bool = False, stdin_once: bool = False,
                           tty: bool = False) -> bytes:
        """Start the shim that runs ``runc create`` + ``start``; its first report: b"started\\n",
        or b"exited\\n" when the container could not start (exit.json says why)."""
        write_json(directory / "shim.json", {
            "oci": {"binary": self.binary, "root": self.runc.root, "bundle": str(bundle_dir),
                    "id": runc_id},
            "log_path": log_path, "log_max_bytes": self.options.log_max_bytes,
            "log_max_files": self.options.log_max_files, "stdin": stdin,
            "stdin_once": stdin_once, "tty": tty})
        return await shims.launch(directory)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        record = self._containers.get(container_id)
        if record is None:
            return
        await self._execs.close(container_id)
        async with self._lock(container_id):
            await self._stop(record.dir, record.id, timeout, record.stop_signal or "TERM")

    async def _stop(self, directory: Path, runc_id: str, timeout: float, sig: str) -> None:
        started = read_json(directory / "started.json")
        if started is None or (directory / "exit.json").exists():
            return
        shim_pid = int(started.get("shim_pid", 0))
        if timeout > 0:
            await self.runc.kill(runc_id, sig)
            if await shims.wait_exit(directory, timeout):
                return
        for _ in range(100):
            await self.runc.kill(runc_id, "KILL", all_processes=True)
            if await shims.wait_exit(directory, 0.1):
                return
            if not pid_alive(shim_pid) and not pid_alive(int(started["pid"])):
                break
        if not (directory / "exit.json").exists():
            write_json(directory / "exit.json", {
                "exit_code": 137, "finished_at": time.time(), "reason": "Error",
                "message": "killed after its shim was lost"})

    def _settle(self, record: ContainerRecord) -> None:
        """Once a container has exited, ask its cgroup (still there until runc delete)
        whether the kernel's OOM killer ended it; remember the answer in exit.json."""
        exited = record.exited()
        if exited is None or exited.get("oom_checked"):
            return
        if int(exited.get("exit_code", 0)) != 0 and record.cgroup \
                and self.cg.oom_killed(record.cgroup):
            exited["reason"] = "OOMKilled"
        exited["oom_checked"] = True
        write_json(record.dir / "exit.json", exited)

    async def remove_container(self, container_id: str) -> None:
        record = self._containers.get(container_id)
        if record is None:
            return
        await self.stop_container(container_id, 0)
        async with self._lock(container_id):
            self._settle(record)
            await self.runc.delete(record.id)
            if record.mounted or rootfs.is_mounted(record.rootfs):
                rootfs.unmount(record.rootfs)
            if record.cgroup:
                await asyncio.to_thread(self.cg.remove, record.cgroup)
            self._containers.pop(container_id, None)
            shutil.rmtree(record.dir, ignore_errors=True)
        self._locks.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        record = self._container(container_id)
        self._settle(record)
        return record.status()

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        found = []
        for record in list(self._containers.values()):
            if sandbox_id is None or record.sandbox_id == sandbox_id:
                self._settle(record)
                found.append(record.status())
        return found

    # ----- exec and attach ----------------------------------------------------------
    def _exec_argv(self, record: ContainerRecord, command: Sequence[str], tty: bool,
                   pid_path: Path) -> list[str]:
        pid = record.running_pid()
        if pid == 0:
            raise RuntimeFailure("ContainerNotRunning", f"container {record.id} is not running")
        execs.check_command(command, pid, record.environ(), record.cwd)
        return self.runc.argv("exec", "--pid-file", str(pid_path), *(["-t"] if tty else []),
                              record.id, *command)

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        record = self._container(container_id)
        pid_path = execs.pid_file(record.dir)
        argv = self._exec_argv(record, command, False, pid_path)
        return await execs.exec_sync(argv, pid_path, str(record.dir), timeout)

    async def exec(self, container_id: str, command: Sequence[str], *, tty: bool,
                   stdin: bool, size: tuple[int, int] | None = None) -> StreamSession:
        record = self._container(container_id)
        pid_path = execs.pid_file(record.dir)
        argv = self._exec_argv(record, command, tty, pid_path)
        session = execs.RuncExecSession(tty=tty, stdin=stdin, pid_path=pid_path, size=size)
        try:
            await session.start(argv, env=execs.runner_env(), cwd=str(record.dir))
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
        """localhost:port inside the sandbox's network namespace (the host's for a
        host-network pod)."""
        box = self._sandbox(sandbox_id)
        if box.state != SandboxState.READY.value:
            raise RuntimeFailure("PortForwardError", f"pod sandbox {sandbox_id} is not ready")
        return await netnsconnect.open_connection(port, box.netns or None)

    # ----- stats -------------------------------------------------------------------
    async def container_stats(self, container_id: str) -> ContainerStats | None:
        return self._stats(self._container(container_id))

    def _stats(self, record: ContainerRecord) -> ContainerStats | None:
        if record.running_pid() == 0 or not record.cgroup:
            return None
        stats = self.cg.stats(record.cgroup)
        if stats is None:
            return None
        return ContainerStats(container_id=record.id, timestamp=time.time(),
                              cpu_usage_core_ns=stats.cpu_usage_ns,
                              memory_working_set_bytes=stats.memory_working_set,
                              memory_rss_bytes=stats.memory_rss, processes=stats.pids)

    async def list_container_stats(self) -> list[ContainerStats]:
        return [s for r in list(self._containers.values()) if (s := self._stats(r)) is not None]

    # ----- images ------------------------------------------------------------------
    def _resolve(self, ref: str) -> Image | None:
        try:
            return self.images.resolve(ref)
        except ValueError:
            return None

    async def pull_image(self, image: str, *, auth: Mapping[str, str] | None = None) -> str:
        if not image:
            raise RuntimeFailure("ErrImagePull", "no image name")
        # Always a real pull (the kubelet asks only when its pull policy says so): a tag
        # may have moved; blobs already here are not fetched again.
        from kubeling.runtime.images.registry import PullError, pull

        try:
            pulled = await pull(self.images, image, auth=auth,
                                insecure_registries=self.options.insecure_registries)
        except PullError as err:
            reason = "RegistryUnavailable" if err.unreachable else "ErrImagePull"
            raise RuntimeFailure(reason, err.message) from err
        except ValueError as err:
            raise RuntimeFailure("ErrImagePull", str(err)) from err
        return pulled.id

    async def image_status(self, image: str) -> ImageInfo | None:
        found = self._resolve(image)
        return None if found is None else _info(found)

    async def list_images(self) -> list[ImageInfo]:
        return [_info(i) for i in self.images.list()]

    async def remove_image(self, image: str) -> None:
        with contextlib.suppress(ValueError):
            if self.images.remove(image) is not None:
                await asyncio.to_thread(self.images.prune)

    async def update_runtime_config(self, pod_cidr: str) -> None:
        await asyncio.to_thread(self.net.configure, pod_cidr)

    async def close(self) -> None:
        await self._execs.close_all()


def _info(image: Image) -> ImageInfo:
    return ImageInfo(id=image.id, repo_tags=tuple(image.names),
                     repo_digests=tuple(image.digests), size=image.size)
