"""What the runtime has of one pod: its sandboxes and containers, newest first.

The kubelet never trusts its memory for this: every sync starts from the
runtime's own listing, found by the ``io.kubernetes.*`` labels the agent put on
what it created. That is what makes a restarted agent carry on with the same
containers and restart counts (adoption needs no other state).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kubeling.kubelet.context import CONTAINER_NAME, POD_UID, RESTART_COUNT
from kubeling.runtime.protocol import (
    ContainerState,
    ContainerStatus,
    Runtime,
    SandboxState,
    SandboxStatus,
)


@dataclass
class PodRuntime:
    uid: str
    sandboxes: list[SandboxStatus] = field(default_factory=list)  # newest first
    containers: list[ContainerStatus] = field(default_factory=list)  # newest first

    @property
    def sandbox(self) -> SandboxStatus | None:
        return self.sandboxes[0] if self.sandboxes else None

    @property
    def ready_sandbox(self) -> SandboxStatus | None:
        sb = self.sandbox
        return sb if sb is not None and sb.state is SandboxState.READY else None

    def of(self, name: str) -> list[ContainerStatus]:
        """The containers named ``name``, newest first."""
        return [c for c in self.containers if container_name(c) == name]

    def latest(self, name: str) -> ContainerStatus | None:
        found = self.of(name)
        return found[0] if found else None

    def running(self) -> list[ContainerStatus]:
        return [c for c in self.containers
                if c.state in (ContainerState.RUNNING, ContainerState.UNKNOWN)]

    @property
    def empty(self) -> bool:
        return not self.sandboxes and not self.containers


def container_name(c: ContainerStatus) -> str:
    return c.labels.get(CONTAINER_NAME) or c.name


def restart_count(c: ContainerStatus) -> int:
    try:
        return int(c.annotations.get(RESTART_COUNT, c.attempt))
    except ValueError:
        return c.attempt


def _newest_first(items: Iterable[ContainerStatus]) -> list[ContainerStatus]:
    return sorted(items, key=lambda c: (c.created_at, restart_count(c)), reverse=True)


def group(sandboxes: Iterable[SandboxStatus],
          containers: Iterable[ContainerStatus]) -> dict[str, PodRuntime]:
    """Every pod the runtime holds, by uid (things without our labels are ignored)."""
    pods: dict[str, PodRuntime] = {}
    for sb in sandboxes:
        uid = sb.labels.get(POD_UID) or sb.uid
        if uid:
            pods.setdefault(uid, PodRuntime(uid)).sandboxes.append(sb)
    for c in containers:
        uid = c.labels.get(POD_UID, "")
        if uid:
            pods.setdefault(uid, PodRuntime(uid)).containers.append(c)
    for pod in pods.values():
        pod.sandboxes.sort(key=lambda s: (s.created_at, s.attempt), reverse=True)
        pod.containers = _newest_first(pod.containers)
    return pods


async def observe_all(runtime: Runtime) -> dict[str, PodRuntime]:
    return group(await runtime.list_pod_sandboxes(), await runtime.list_containers())


async def observe(runtime: Runtime, uid: str) -> PodRuntime:
    """The runtime's view of one pod (empty when it has nothing of it)."""
    sandboxes = [sb for sb in await runtime.list_pod_sandboxes()
                 if (sb.labels.get(POD_UID) or sb.uid) == uid]
    containers: list[ContainerStatus] = []
    for sb in sandboxes:
        containers.extend(c for c in await runtime.list_containers(sb.id)
                          if c.labels.get(POD_UID, uid) == uid)
    pod = group(sandboxes, containers).get(uid)
    return pod if pod is not None else PodRuntime(uid)
