"""The node agent's volume manager: every volume of every pod on disk, kept current.

``setup`` makes a pod's volumes exist under ``<pod dir>/volumes/<plugin>/<name>``
(the kubelet's layout) and says where each one is; the pod worker calls it on
every sync. Rendered volumes (configMap, secret, downwardAPI, projected) are
written through the atomic writer, and a background loop re-renders them for
every registered pod every ``volume_refresh_interval`` seconds, so an edited
ConfigMap reaches the files within seconds; the writer only makes a new version
when something changed. A pod whose setup failed (a ConfigMap not there yet) is
retried by the same loop, and its worker is woken once it would succeed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubeling.api.quantity import parse_quantity
from kubeling.client.interface import Obj
from kubeling.kubelet.atomicwriter import DATA_DIR, AtomicWriter, PayloadError
from kubeling.kubelet.context import KubeletContext
from kubeling.kubelet.envvars import EnvError, make_env
from kubeling.kubelet.interfaces import VolumeError, Wake
from kubeling.kubelet.volumes import disk
from kubeling.kubelet.volumes.hostpath import check_host_path
from kubeling.kubelet.volumes.mounts import RENDERED, container_mounts, volume_kind
from kubeling.kubelet.volumes.projection import (
    Payload,
    configmap_payload,
    downward_payload,
    projected_payload,
    secret_payload,
)
from kubeling.kubelet.volumes.pvc import claim_path
from kubeling.runtime.protocol import Mount
from kubeling.utils import tasks
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.volumes")

PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
IN_MEMORY = ("secret", "projected")  # kept off the disk (a tmpfs) when the agent can mount


@dataclass
class _PodVolumes:
    pod: Obj
    failed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class VolumeManager:
    def __init__(self, ctx: KubeletContext, *, wake: Wake) -> None:
        self.ctx = ctx
        self.wake = wake
        self._pods: dict[str, _PodVolumes] = {}
        self._task: asyncio.Task[None] | None = None
        self._warned_memory: set[str] = set()
        self._written: dict[tuple[str, str], Payload] = {}  # (pod uid, volume) → last payload

    # ----- the Volumes protocol -----------------------------------------------------------

    async def setup(self, pod: Obj) -> dict[str, str]:
        uid = pod["metadata"]["uid"]
        entry = self._pods.get(uid)
        if entry is None:
            entry = self._pods[uid] = _PodVolumes(pod)
        entry.pod = pod
        async with entry.lock:
            try:
                paths = self._setup_all(pod)
            except VolumeError:
                entry.failed = True
                raise
            entry.failed = False
            return paths

    def mounts(self, pod: Obj, container: Obj, paths: dict[str, str]) -> list[Mount]:
        return container_mounts(pod, container, paths, env=self._env)

    async def teardown(self, pod_uid: str) -> None:
        entry = self._pods.pop(pod_uid, None)
        if entry is not None:
            async with entry.lock:
                disk.remove_tree(self.ctx.options.volumes_dir(pod_uid))
        else:
            disk.remove_tree(self.ctx.options.volumes_dir(pod_uid))
        self._warned_memory.discard(pod_uid)
        for key in [k for k in self._written if k[0] == pod_uid]:
            del self._written[key]

    async def cleanup_orphans(self, active_uids: set[str]) -> None:
        pods_dir = self.ctx.options.pods_dir
        try:
            uids = [e.name for e in os.scandir(pods_dir) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            uids = []
        for uid in uids:
            if uid not in active_uids and self.ctx.options.volumes_dir(uid).exists():
                log.info("removing the volumes of orphaned pod %s", uid)
                await self.teardown(uid)
        for uid in list(self._pods):
            if uid not in active_uids:
                self._pods.pop(uid, None)

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._refresh_loop(), name="kubelet-volume-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)

    # ----- background refresh -------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await self.ctx.clock.sleep(self.ctx.options.volume_refresh_interval)
            await self.refresh()

    async def refresh(self) -> None:
        """Re-render every registered pod's rendered volumes once; wake the worker of a
        pod whose setup failed and would now succeed."""
        for uid, entry in list(self._pods.items()):
            if self._pods.get(uid) is not entry:
                continue
            async with entry.lock:
                if self._pods.get(uid) is not entry:
                    continue
                if entry.failed:
                    try:
                        self._setup_all(entry.pod)
                    except VolumeError:
                        continue
                    entry.failed = False
                    self.wake(uid)
                    continue
                self._rerender(uid, entry.pod)

    def _rerender(self, uid: str, pod: Obj) -> None:
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            kind = volume_kind(volume)
            if kind not in RENDERED:
                continue
            try:
                self._render(uid, pod, volume, kind)
            except VolumeError as e:
                log.debug("volume %s of pod %s not refreshed: %s", volume.get("name"), uid,
                          e.message)
            except OSError as e:
                log.warning("volume %s of pod %s not refreshed: %s", volume.get("name"), uid, e)

    # ----- one pod ------------------------------------------------------------------------

    def _setup_all(self, pod: Obj) -> dict[str, str]:
        uid = pod["metadata"]["uid"]
        paths: dict[str, str] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            name = volume.get("name", "")
            try:
                paths[name] = self._setup_one(uid, pod, volume)
            except VolumeError as e:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {e.message}',
                                  e.reason) from None
            except OSError as e:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {e}') \
                    from None
        return paths

    def _plugin_dir(self, uid: str, kind: str, name: str) -> Path:
        return self.ctx.options.volumes_dir(uid) / PLUGIN_DIRS[kind] / name

    def _setup_one(self, uid: str, pod: Obj, volume: Obj) -> str:
        kind = volume_kind(volume)
        source = volume.get(kind) or {}
        namespace = pod["metadata"].get("namespace") or "default"
        if kind == "emptyDir":
            return str(self._empty_dir(uid, volume.get("name", ""), source))
        if kind == "hostPath":
            return check_host_path(source.get("path", ""), source.get("type"))
        if kind == "persistentVolumeClaim":
            return claim_path(source, namespace, self.ctx.objects)
        if kind in RENDERED:
            return str(self._render(uid, pod, volume, kind))
        raise VolumeError(f"volume type {kind} is not supported by kubeling's node agent")

    def _empty_dir(self, uid: str, name: str, source: Obj) -> Path:
        path = self._plugin_dir(uid, "emptyDir", name)
        path.mkdir(parents=True, exist_ok=True)
        medium = source.get("medium") or ""
        if medium == "Memory":
            if disk.can_mount():
                if not disk.is_mount_point(path):
                    size = 0
                    if source.get("sizeLimit"):
                        size = parse_quantity(source["sizeLimit"]).value()
                    try:
                        disk.mount_tmpfs(path, size)
                    except OSError as e:
                        log.warning("emptyDir %s of pod %s: %s; using a plain directory",
                                    name, uid, e)
            elif uid not in self._warned_memory:
                self._warned_memory.add(uid)
                log.info("emptyDir %s of pod %s: medium Memory needs root to mount a tmpfs; "
                         "using a plain directory", name, uid)
        elif medium:
            raise VolumeError(f"emptyDir medium {medium} is not supported")
        if (path.stat().st_mode & 0o7777) != 0o777:
            os.chmod(path, 0o777)
        return path

    def _render(self, uid: str, pod: Obj, volume: Obj, kind: str) -> Path:
        source = volume.get(kind) or {}
        namespace = pod["metadata"].get("namespace") or "default"
        objects = self.ctx.objects
        payload: Payload
        if kind == "configMap":
            payload = configmap_payload(source, namespace, objects)
        elif kind == "secret":
            payload = secret_payload(source, namespace, objects)
        elif kind == "downwardAPI":
            payload = downward_payload(source, pod, objects.node())
        else:
            payload = projected_payload(source, pod, objects)
        path = self._plugin_dir(uid, kind, volume.get("name", ""))
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o755)
            if kind in IN_MEMORY and disk.can_mount():
                try:
                    disk.mount_tmpfs(path, mode=0o755)
                except OSError as e:
                    log.warning("%s volume %s of pod %s is on disk: %s", kind,
                                volume.get("name"), uid, e)
        key = (uid, volume.get("name", ""))
        if self._written.get(key) == payload and (path / DATA_DIR).is_symlink():
            return path
        try:
            AtomicWriter(path).write(payload)
        except PayloadError as e:
            raise VolumeError(str(e)) from None
        self._written[key] = payload
        return path

    def _env(self, pod: Obj, container: Obj) -> Mapping[str, str]:
        status = pod.get("status") or {}
        try:
            return dict(make_env(
                pod, container, objects=self.ctx.objects, node_name=self.ctx.options.node_name,
                host_ip=self.ctx.node_ip or status.get("hostIP", ""),
                pod_ip=status.get("podIP", ""),
                pod_ips=[p.get("ip", "") for p in status.get("podIPs") or ()]))
        except EnvError as e:
            raise VolumeError(e.message) from None
