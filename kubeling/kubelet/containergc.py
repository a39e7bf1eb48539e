"""Container garbage collection: keep what ``kubectl logs --previous`` needs, nothing more.

Of each container name in a pod the kubelet keeps the running container and
the most recent exited one (``MaxPerPodContainer`` = 1); older exited attempts
are removed with their log files and termination-message files. A pod that is
gone from the node is removed whole by housekeeping instead.
"""

from __future__ import annotations

import glob
import logging
import os

from kubeling.kubelet.containers import message_file
from kubeling.kubelet.context import KubeletOptions
from kubeling.kubelet.podruntime import PodRuntime, container_name
from kubeling.runtime.protocol import ContainerState, ContainerStatus, NotFound, Runtime

log = logging.getLogger("kubeling.kubelet.containergc")


def evictable(state: PodRuntime, *, keep: int = 1) -> list[ContainerStatus]:
    """The exited containers beyond the ``keep`` most recent of each name."""
    seen: dict[str, int] = {}
    out = []
    for c in state.containers:  # newest first
        if c.state in (ContainerState.RUNNING, ContainerState.UNKNOWN):
            continue
        name = container_name(c)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > keep:
            out.append(c)
    return out


def remove_files(options: KubeletOptions, uid: str, c: ContainerStatus) -> None:
    for path in ([c.log_path, *glob.glob(glob.escape(c.log_path) + ".*")] if c.log_path
                 else []):
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        message_file(options, uid, container_name(c), c.attempt).unlink()
    except OSError:
        pass


async def collect(runtime: Runtime, options: KubeletOptions, state: PodRuntime) -> int:
    """Remove the pod's evictable containers; how many went."""
    removed = 0
    for c in evictable(state):
        try:
            await runtime.remove_container(c.id)
        except NotFound:
            pass
        except Exception as exc:  # retried at the next sync
            log.warning("removing container %s failed: %s", c.id, exc)
            continue
        remove_files(options, state.uid, c)
        removed += 1
    return removed
