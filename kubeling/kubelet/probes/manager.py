"""The probe manager: one worker per (pod, container, probe kind), and their results.

The pod workers ask it for the latest liveness, readiness and startup results
of a container by runtime id when they compute a pod's status, and it wakes a
pod's worker whenever a result changes. ``result_for`` answers exactly, from
the pod's spec, for a container the workers have not seen yet (a container
started a moment ago); ``result`` does its best from the id alone.
"""

from __future__ import annotations

import asyncio

from kubeling.client.interface import Obj
from kubeling.kubelet.context import KubeletContext
from kubeling.kubelet.interfaces import PodStatusSource, ProbeKind, ProbeResult, Wake
from kubeling.kubelet.probes.results import INITIAL, Results, bare_id
from kubeling.kubelet.probes.worker import ProbeWorker, container_status
from kubeling.utils.clock import Clock
from kubeling.utils.tasks import spawn

PROBE_FIELDS = {ProbeKind.LIVENESS: "livenessProbe", ProbeKind.READINESS: "readinessProbe",
                ProbeKind.STARTUP: "startupProbe"}
_ASKED_LIMIT = 4096


def probed_containers(pod: Obj) -> list[Obj]:
    """Containers that may have probes: the regular ones and sidecars (restartable init
    containers)."""
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or ()
                if c.get("restartPolicy") == "Always"]
    return list(spec.get("containers") or ()) + sidecars


class ProbeManager:
    def __init__(self, ctx: KubeletContext, *, status: PodStatusSource, wake: Wake) -> None:
        self.ctx = ctx
        self.clock: Clock = ctx.clock
        self.status = status
        self.wake = wake
        self.results = Results(wake)
        self._workers: dict[tuple[str, str, ProbeKind], ProbeWorker] = {}
        self._kinds: dict[str, dict[str, set[ProbeKind]]] = {}  # uid → container → kinds
        self._asked: set[tuple[ProbeKind, str]] = set()
        self._started = False

    # ----- the Probes protocol --------------------------------------------------------

    def add_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        kinds = self._kinds.setdefault(uid, {})
        for container in probed_containers(pod):
            for kind, field in PROBE_FIELDS.items():
                spec = container.get(field)
                if not spec:
                    continue
                kinds.setdefault(container["name"], set()).add(kind)
                key = (uid, container["name"], kind)
                worker = self._workers.get(key)
                if worker is not None:
                    worker.pod = pod
                    continue
                worker = ProbeWorker(self, pod, container, kind, spec)
                self._workers[key] = worker
                if self._started:
                    self._launch(worker)

    def remove_pod(self, pod_uid: str) -> None:
        for key in [k for k in self._workers if k[0] == pod_uid]:
            worker = self._workers.pop(key)
            worker.done = True
            if worker.task is not None:
                worker.task.cancel()
        self._kinds.pop(pod_uid, None)
        self.results.remove_pod(pod_uid)

    def result(self, kind: ProbeKind, container_id: str) -> ProbeResult | None:
        cid = bare_id(container_id)
        found = self.results.get(kind, cid)
        if found is not None:
            return found
        workers = [w for w in self._workers.values() if w.kind is kind]
        for worker in workers:
            if worker.cid == cid:
                return INITIAL[kind]
        for worker in workers:
            status = self.status.status_of(worker.uid)
            cs = container_status(status, worker.name) if status is not None else None
            if cs is not None and bare_id(cs.get("containerID") or "") == cid:
                return INITIAL[kind]
        if workers:
            if len(self._asked) > _ASKED_LIMIT:
                self._asked.clear()
            self._asked.add((kind, cid))
            for worker in workers:
                worker.poke.set()
        return None

    def start(self) -> None:
        self._started = True
        for worker in self._workers.values():
            if worker.task is None:
                self._launch(worker)

    async def stop(self) -> None:
        self._started = False
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for worker in self._workers.values():
            worker.task = None

    # ----- extras ---------------------------------------------------------------------

    def result_for(self, kind: ProbeKind, pod_uid: str, container_name: str,
                   container_id: str) -> ProbeResult | None:
        """The latest result for that container run; None only when the container has no
        such probe. Exact even before any worker has seen the container's id."""
        if not self.has_probe(pod_uid, container_name, kind):
            return None
        found = self.results.get(kind, container_id)
        return found if found is not None else INITIAL[kind]

    def has_probe(self, pod_uid: str, container_name: str, kind: ProbeKind) -> bool:
        return kind in self._kinds.get(pod_uid, {}).get(container_name, ())

    def update(self, pod_uid: str) -> None:
        """The pod's status changed: let its workers look at once (not required; they look
        every second anyway)."""
        for (uid, _, _), worker in self._workers.items():
            if uid == pod_uid:
                worker.poke.set()

    def was_asked(self, kind: ProbeKind, container_id: str) -> bool:
        """Whether ``result`` answered None for this id before a worker knew it (then the
        worker's first result must wake the pod, to correct that answer)."""
        key = (kind, bare_id(container_id))
        if key in self._asked:
            self._asked.discard(key)
            return True
        return False

    def _launch(self, worker: ProbeWorker) -> None:
        worker.task = spawn(worker.run(),
                            name=f"probe-{worker.kind.value.lower()}-{worker.uid}-{worker.name}")
