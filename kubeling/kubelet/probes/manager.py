"""The probe manager: one worker per (pod, container, probe kind), and their results.

The pod workers ask it for the latest liveness, readiness and startup results
of a container by runtime id when they compute a pod's status, and it wakes a
pod's worker whenever a result changes. ``result_for`` answers exactly, from
the pod's spec, for a container the workers have not seen yet (a container
started a moment ago). ``result`` knows only the id: for an id no worker has
seen it guesses, asks the runtime whose container it is, and wakes the pod if
the guess was wrong.
"""

from __future__ import annotations

import asyncio

from kubeling.client.interface import Obj
from kubeling.kubelet.context import CONTAINER_NAME, POD_UID, KubeletContext
from kubeling.kubelet.interfaces import PodStatusSource, ProbeKind, ProbeResult, Wake
from kubeling.kubelet.probes.results import INITIAL, Results, bare_id
from kubeling.kubelet.probes.worker import ProbeWorker, container_status
from kubeling.runtime.protocol import RuntimeFailure
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
        self._asked: dict[tuple[ProbeKind, str], ProbeResult | None] = {}  # guesses given
        self._owners: dict[str, tuple[str, str]] = {}  # runtime id → (pod uid, container)
        self._resolving: set[str] = set()
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
        for cid in [c for c, (uid, _) in self._owners.items() if uid == pod_uid]:
            del self._owners[cid]

    def result(self, kind: ProbeKind, container_id: str) -> ProbeResult | None:
        cid = bare_id(container_id)
        found = self.results.get(kind, cid)
        if found is not None:
            return found
        owner = self._owners.get(cid)
        if owner is not None:
            return INITIAL[kind] if self.has_probe(owner[0], owner[1], kind) else None
        workers = [w for w in self._workers.values() if w.kind is kind]
        for worker in workers:
            if worker.cid == cid:
                return INITIAL[kind]
        for worker in workers:
            cs = self._status_of(worker)
            if cs is not None and bare_id(cs.get("containerID") or "") == cid:
                return INITIAL[kind]
        if not workers:
            return None
        # An id no worker knows yet: most likely a container started a moment ago. Guess
        # from whether some worker of this kind awaits a new container, then learn the
        # id's pod and container from the runtime and wake the pod if the guess was wrong.
        guess = INITIAL[kind] if any(self._awaiting(w) for w in workers) else None
        if len(self._asked) > _ASKED_LIMIT:
            self._asked.clear()
        self._asked[(kind, cid)] = guess
        if cid not in self._resolving:
            self._resolving.add(cid)
            spawn(self._resolve(cid), name=f"probe-resolve-{cid}")
        return guess

    def _status_of(self, worker: ProbeWorker) -> Obj | None:
        status = self.status.status_of(worker.uid)
        return container_status(status, worker.name) if status is not None else None

    def _awaiting(self, worker: ProbeWorker) -> bool:
        cs = self._status_of(worker)
        if cs is None or worker.done:
            return cs is None and not worker.done
        running = "running" in (cs.get("state") or {})
        return not running or bare_id(cs.get("containerID") or "") != worker.cid

    async def _resolve(self, cid: str) -> None:
        try:
            found = await self.ctx.runtime.container_status(cid)
        except RuntimeFailure:
            return
        finally:
            self._resolving.discard(cid)
        uid = found.labels.get(POD_UID, "")
        name = found.labels.get(CONTAINER_NAME, "")
        if not uid or uid not in self._kinds:
            return
        self._owners[cid] = (uid, name)
        wrong = False
        for kind in ProbeKind:
            key = (kind, cid)
            if key in self._asked:
                guess = self._asked[key]
                exact = INITIAL[kind] if self.has_probe(uid, name, kind) else None
                if exact is not guess:
                    wrong = True
                if exact is not None:
                    continue  # the worker announces its results once it adopts the id
                del self._asked[key]
        self.update(uid)
        if wrong:
            self.wake(uid)

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
        """Whether ``result`` gave a guess other than the initial result for this id before
        a worker knew it (then the worker's adopting the id must wake the pod)."""
        key = (kind, bare_id(container_id))
        if key not in self._asked:
            return False
        return self._asked.pop(key) is not INITIAL[kind]

    def _launch(self, worker: ProbeWorker) -> None:
        worker.task = spawn(worker.run(),
                            name=f"probe-{worker.kind.value.lower()}-{worker.uid}-{worker.name}")
