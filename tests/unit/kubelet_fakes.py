"""A fake Runtime and fake agent parts for unit tests of the pod core on a FakeClock."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kubeling.client.interface import Obj
from kubeling.kubelet.context import CONTAINER_NAME, KubeletContext, KubeletOptions
from kubeling.kubelet.interfaces import ProbeKind, ProbeResult
from kubeling.runtime.protocol import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    ExecResult,
    ImageInfo,
    NotFound,
    PodSandboxConfig,
    SandboxState,
    SandboxStatus,
)
from kubeling.utils.clock import FakeClock


class FakeRuntime:
    name = "fake"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sandboxes: dict[str, SandboxStatus] = {}
        self.containers: dict[str, ContainerStatus] = {}
        self.stops: list[tuple[str, float]] = []
        self._ids = itertools.count(1)

    # helpers for tests
    def running(self, name: str) -> ContainerStatus | None:
        for c in self.containers.values():
            if c.labels.get(CONTAINER_NAME) == name and c.state is ContainerState.RUNNING:
                return c
        return None

    def exit(self, name: str, code: int) -> None:
        c = self.running(name)
        assert c is not None, f"{name} is not running"
        self.containers[c.id] = replace(c, state=ContainerState.EXITED, exit_code=code,
                                        finished_at=self.clock.now(),
                                        reason="Completed" if code == 0 else "Error")

    def attempts(self, name: str) -> list[int]:
        return sorted(c.attempt for c in self.containers.values()
                      if c.labels.get(CONTAINER_NAME) == name)

    # the protocol
    async def list_pod_sandboxes(self) -> list[SandboxStatus]:
        return list(self.sandboxes.values())

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        sid = f"sb{next(self._ids)}"
        self.sandboxes[sid] = SandboxStatus(
            id=sid, uid=config.uid, namespace=config.namespace, name=config.name,
            attempt=config.attempt, state=SandboxState.READY, created_at=self.clock.now(),
            ip="10.0.0.5", labels=dict(config.labels))
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        for c in list(self.containers.values()):
            if c.sandbox_id == sandbox_id and c.state is ContainerState.RUNNING:
                await self.stop_container(c.id, 0)
        if sandbox_id in self.sandboxes:
            self.sandboxes[sandbox_id] = replace(self.sandboxes[sandbox_id],
                                                 state=SandboxState.NOTREADY)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.sandboxes.pop(sandbox_id, None)
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            del self.containers[cid]

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: PodSandboxConfig) -> str:
        cid = f"c{next(self._ids)}"
        self.containers[cid] = ContainerStatus(
            id=cid, sandbox_id=sandbox_id, name=config.name, attempt=config.attempt,
            state=ContainerState.CREATED, image=config.image, image_ref="sha256:abc",
            created_at=self.clock.now() + next(self._ids) * 1e-6,
            log_path=config.log_path, labels=dict(config.labels),
            annotations=dict(config.annotations))
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self.containers[container_id]
        self.containers[container_id] = replace(c, state=ContainerState.RUNNING,
                                                started_at=self.clock.now())

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self.containers.get(container_id)
        if c is None:
            return
        self.stops.append((container_id, timeout))
        if c.state is ContainerState.RUNNING:
            self.containers[container_id] = replace(
                c, state=ContainerState.EXITED, exit_code=137, reason="Error",
                finished_at=self.clock.now())

    async def remove_container(self, container_id: str) -> None:
        self.containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        if container_id not in self.containers:
            raise NotFound(container_id)
        return self.containers[container_id]

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [c for c in self.containers.values()
                if sandbox_id is None or c.sandbox_id == sandbox_id]

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        return ExecResult(0, b"", b"")

    async def pull_image(self, image: str, *, auth: Mapping[str, str] | None = None) -> str:
        return "sha256:abc"

    async def image_status(self, image: str) -> ImageInfo | None:
        return ImageInfo(id="sha256:abc")


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


class FakeVolumes:
    async def setup(self, pod: Obj) -> dict[str, str]:
        return {}

    def mounts(self, pod: Obj, container: Obj, paths: dict[str, str]) -> list[Any]:
        return []

    async def teardown(self, pod_uid: str) -> None:
        return None

    async def cleanup_orphans(self, active_uids: set[str]) -> None:
        return None

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class FakeProbes:
    def __init__(self) -> None:
        self.results: dict[tuple[ProbeKind, str], ProbeResult] = {}
        self.pods: set[str] = set()

    def add_pod(self, pod: Obj) -> None:
        self.pods.add(pod["metadata"]["uid"])

    def remove_pod(self, pod_uid: str) -> None:
        self.pods.discard(pod_uid)

    def result(self, kind: ProbeKind, container_id: str) -> ProbeResult | None:
        return self.results.get((kind, container_id))

    def result_for(self, kind: ProbeKind, pod_uid: str, container_name: str,
                   container_id: str) -> ProbeResult | None:
        return self.results.get((kind, container_id))

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class FakeInformers:
    def informer(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return None

    def add_handlers(self, **handlers: Any) -> None:
        return None


class NoObjects:
    def configmap(self, namespace: str, name: str) -> Obj | None:
        return None

    def secret(self, namespace: str, name: str) -> Obj | None:
        return None

    def pvc(self, namespace: str, name: str) -> Obj | None:
        return None

    def pv(self, name: str) -> Obj | None:
        return None

    def node(self) -> Obj | None:
        return None


def fake_context(tmp_path: Path, clock: FakeClock) -> tuple[KubeletContext, FakeRuntime,
                                                            FakeRecorder]:
    runtime = FakeRuntime(clock)
    recorder = FakeRecorder()
    ctx = KubeletContext(client=None, informers=FakeInformers(),  # type: ignore[arg-type]
                         runtime=runtime,  # type: ignore[arg-type]
                         options=KubeletOptions(node_name="n1", root_dir=tmp_path),
                         recorder=recorder,  # type: ignore[arg-type]
                         objects=NoObjects(), clock=clock, node_ip="192.168.1.2")
    return ctx, runtime, recorder


def make_pod(containers: list[Obj], *, init: list[Obj] | None = None,
             restart_policy: str = "Always", uid: str = "u1") -> Obj:
    spec: Obj = {"containers": containers, "restartPolicy": restart_policy,
                 "terminationGracePeriodSeconds": 30}
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid}, "spec": spec,
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True",
                 "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}


def ctr(name: str) -> Obj:
    return {"name": name, "image": "busybox:1.36", "command": ["true"]}
