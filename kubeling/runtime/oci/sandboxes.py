"""The sandbox verbs of the OCI runtime: a pod's network, its pause container, its teardown.

Starting: (1) unless the pod uses the host's network, a network namespace
bound on a file and configured by the CNI plugins (the pod's IP); (2) the
pod's /etc files; (3) the pause container, run by a shim like any container,
holding the namespaces. A failure on the way undoes everything done so far.

Stopping kills every container and the pause, then releases the network (CNI
DEL, the namespace's file): the sandbox stays listed, NOTREADY. Removing also
drops its containers, the pod's cgroup and every file. Both are idempotent and
work after an agent restart (everything needed is in ``sandbox.json``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeling.runtime.network import NetworkError
from kubeling.runtime.oci import sandbox
from kubeling.runtime.oci.cgroups import pod_cgroup_parent
from kubeling.runtime.oci.records import SandboxRecord, write_json
from kubeling.runtime.protocol import (
    NotFound,
    PodSandboxConfig,
    PortMapping,
    RuntimeFailure,
    SandboxState,
    SandboxStatus,
)

if TYPE_CHECKING:
    from kubeling.runtime import RuntimeOptions
    from kubeling.runtime.network import PodNetwork
    from kubeling.runtime.oci.cgroups import Cgroups
    from kubeling.runtime.oci.records import ContainerRecord
    from kubeling.runtime.oci.runc import Runc

log = logging.getLogger("kubeling.runtime.oci")

SANDBOX = "sandbox:"  # the lock of a sandbox's whole life steps (start, stop, removal)


def plain_config(config: PodSandboxConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    for key in ("labels", "annotations", "sysctls"):
        data[key] = dict(data[key])
    return data


def sandbox_config(data: dict[str, Any]) -> PodSandboxConfig:
    """The config a sandbox was made with, back from its record."""
    fields = {f.name for f in dataclasses.fields(PodSandboxConfig)}
    values = {k: v for k, v in data.items() if k in fields}
    values["port_mappings"] = tuple(PortMapping(**p) for p in data.get("port_mappings") or ())
    for key in ("dns_servers", "dns_searches", "dns_options"):
        values[key] = tuple(data.get(key) or ())
    return PodSandboxConfig(**values)


class SandboxOps:
    """Mixed into OciRuntime: the sandbox half of the protocol. What it uses of the
    container half is declared here and defined there."""

    options: RuntimeOptions
    root: Path
    sandbox_root: Path
    net: PodNetwork
    cg: Cgroups
    runc: Runc
    _sandboxes: dict[str, SandboxRecord]
    _locks: dict[str, asyncio.Lock]

    def _lock(self, key: str) -> asyncio.Lock:
        raise NotImplementedError

    def _members(self, sandbox_id: str) -> list[ContainerRecord]:
        raise NotImplementedError

    async def stop_container(self, container_id: str, timeout: float) -> None:
        raise NotImplementedError

    async def remove_container(self, container_id: str) -> None:
        raise NotImplementedError

    async def _stop(self, directory: Path, runc_id: str, timeout: float, sig: str) -> None:
        raise NotImplementedError

    async def _launch_shim(self, directory: Path, runc_id: str, bundle_dir: Path,
                           log_path: str, *, stdin: bool = False, stdin_once: bool = False,
                           tty: bool = False) -> bytes:
        raise NotImplementedError

    def _sandbox(self, sandbox_id: str) -> SandboxRecord:
        record = self._sandboxes.get(sandbox_id)
        if record is None:
            raise NotFound(f"pod sandbox {sandbox_id}")
        return record

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        sid = secrets.token_hex(32)
        directory = self.sandbox_root / sid
        directory.mkdir()
        record = SandboxRecord(
            id=sid, dir=directory, config=plain_config(config), created_at=time.time(),
            cgroup_parent=config.cgroup_parent or pod_cgroup_parent("besteffort", config.uid))
        record.save()
        self._sandboxes[sid] = record
        async with self._lock(SANDBOX + sid):
            try:
                await self._start_sandbox(record, config)
            except BaseException as err:
                await asyncio.shield(self._destroy_sandbox(record))
                if isinstance(err, NetworkError):
                    raise RuntimeFailure("CreatePodSandboxError", str(err)) from err
                if isinstance(err, OSError):
                    raise RuntimeFailure("CreatePodSandboxError",
                                         f"pod {config.namespace}/{config.name}: {err}") from err
                raise
        return sid

    async def _start_sandbox(self, record: SandboxRecord,
                             config: PodSandboxConfig) -> None:
        if config.host_network:
            record.ip = self.options.node_ip
            record.ips = [record.ip]
        else:
            reason = self.net.ready()
            if reason is not None:
                raise RuntimeFailure("NetworkNotReady", f"network is not ready: {reason}")
            record.netns = await asyncio.to_thread(self.net.create_netns, record.id)
            record.save()
            status = await self.net.setup(record.id, record.netns, config)
            record.ip, record.ips = status.ip, list(status.ips)
        record.save()
        sandbox.write_files(record.dir, config, record.ip)
        pause = record.pause_dir
        pause.mkdir()
        document = sandbox.pause_spec(
            config, rootfs=sandbox.pause_rootfs(self.root), netns=record.netns,
            cgroups_path=self.cg.path(record.cgroup_parent, "pause"), resources={})
        write_json(pause / "config.json", document)
        line = await self._launch_shim(pause, record.id, pause, str(pause / "pause.log"))
        if line != b"started\n":
            exited = (pause / "exit.json").read_text(errors="replace") \
                if (pause / "exit.json").exists() else ""
            raise RuntimeFailure("CreatePodSandboxError",
                                 f"the pause container did not start: {exited}")

    async def _destroy_sandbox(self, record: SandboxRecord) -> None:
        """Undo a sandbox: pause, network, cgroup, files. Each step tolerates being done."""
        await self._stop_pause(record)
        await self._release_network(record)
        await asyncio.to_thread(self.cg.remove, self.cg.path(record.cgroup_parent))
        shutil.rmtree(record.dir, ignore_errors=True)
        self._sandboxes.pop(record.id, None)

    async def _stop_pause(self, record: SandboxRecord) -> None:
        async with self._lock(record.id):
            await self._stop(record.pause_dir, record.id, 0, "KILL")
            await self.runc.delete(record.id)

    async def _release_network(self, record: SandboxRecord) -> None:
        if not record.netns:
            return
        try:
            await self.net.teardown(record.id, record.netns, sandbox_config(record.config))
        except NetworkError as err:
            raise RuntimeFailure("StopPodSandboxError", str(err)) from err
        await asyncio.to_thread(self.net.remove_netns, record.netns)
        record.netns = ""
        record.save()

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        async with self._lock(SANDBOX + sandbox_id):
            record = self._sandboxes.get(sandbox_id)
            if record is not None:
                await self._stop_sandbox(record)

    async def _stop_sandbox(self, record: SandboxRecord) -> None:
        members = self._members(record.id)
        await asyncio.gather(*(self.stop_container(c.id, 0) for c in members))
        await self._stop_pause(record)
        await self._release_network(record)
        if record.state != SandboxState.NOTREADY.value:
            record.state = SandboxState.NOTREADY.value
            record.save()

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        async with self._lock(SANDBOX + sandbox_id):
            record = self._sandboxes.get(sandbox_id)
            if record is None:
                return
            await self._stop_sandbox(record)
            members = self._members(sandbox_id)
            await asyncio.gather(*(self.remove_container(c.id) for c in members))
            await self._destroy_sandbox(record)
        self._locks.pop(sandbox_id, None)
        self._locks.pop(SANDBOX + sandbox_id, None)

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        return self._sandbox(sandbox_id).status()

    async def list_pod_sandboxes(self) -> list[SandboxStatus]:
        return [s.status() for s in list(self._sandboxes.values())]

