"""The contracts between the node agent's parts, so each can be written and tested alone.

- ``Volumes`` (kubelet/volumes): prepares a pod's volumes on disk and says where
  each container's volumeMounts point.
- ``Probes`` (kubelet/probes): runs liveness, readiness and startup probes and
  keeps their latest results per container id.
- ``PodStatusSource`` (kubelet/status): the status the agent last computed for a
  pod, which probes read for the pod IP and the containers' ids and start times.
- ``Wake``: how a part nudges the pod worker of a pod (a probe result changed,
  a container exited, a watched ConfigMap changed).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from kubeling.client.interface import Obj
from kubeling.runtime.protocol import Mount

Wake = Callable[[str], None]  # pod uid


class VolumeError(Exception):
    """A volume could not be set up. The pod worker records a Warning event ``reason``
    (FailedMount) with ``message`` and retries on its next sync."""

    def __init__(self, message: str, reason: str = "FailedMount") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Volumes(Protocol):
    async def setup(self, pod: Obj) -> dict[str, str]:
        """Make every volume of ``pod`` ready (idempotent; called on every sync with the
        latest pod, so downwardAPI files follow label changes); volume name → host path.
        Raises VolumeError. Registers the pod for background refreshes of its configMap,
        secret, downwardAPI and projected volumes (atomic symlink swaps)."""
        ...

    def mounts(self, pod: Obj, container: Obj, paths: dict[str, str]) -> list[Mount]:
        """The container's volumeMounts (subPath, readOnly) as runtime mounts, given what
        ``setup`` returned. Raises VolumeError for a mount naming no volume."""
        ...

    async def teardown(self, pod_uid: str) -> None:
        """Remove everything the pod's volumes put on disk (emptyDir contents, rendered
        files); hostPath and PV targets are left alone. Idempotent."""
        ...

    async def cleanup_orphans(self, active_uids: set[str]) -> None:
        """Tear down volume directories of pods the agent no longer runs."""
        ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class ProbeResult(enum.Enum):
    SUCCESS = "Success"
    FAILURE = "Failure"
    UNKNOWN = "Unknown"


class ProbeKind(enum.Enum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


class Probes(Protocol):
    def add_pod(self, pod: Obj) -> None:
        """Start a worker for each probe of each container (idempotent)."""
        ...

    def remove_pod(self, pod_uid: str) -> None: ...

    def result(self, kind: ProbeKind, container_id: str) -> ProbeResult | None:
        """The latest result for the container with that runtime id; None when it has no
        such probe. Initial results as Kubernetes gives them: readiness FAILURE until a
        success, liveness SUCCESS, startup UNKNOWN until it succeeds. Liveness and
        readiness probes do not run before the startup probe has succeeded."""
        ...

    def result_for(self, kind: ProbeKind, pod_uid: str, container_name: str,
                   container_id: str) -> ProbeResult | None:
        """``result``, exact even for a container run no probe worker has seen yet (its
        initial result when the container has such a probe): what status generation asks."""
        ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class PodStatusSource(Protocol):
    def status_of(self, pod_uid: str) -> Obj | None:
        """The pod status (API shape: podIP, containerStatuses with containerID,
        state.running.startedAt...) the agent last computed for that pod."""
        ...
