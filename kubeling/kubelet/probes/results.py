"""The latest probe results, keyed by probe kind and container runtime id.

Results belong to one run of a container: a restarted container has a new id
and starts over from its kind's initial result (readiness Failure, liveness
Success, startup Unknown), as the kubelet's results managers do. A change is
announced through ``on_change`` so the pod's worker re-syncs (a liveness
Failure makes it restart the container; a readiness change flips Ready).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

from kubeling.kubelet.interfaces import ProbeKind, ProbeResult
from kubeling.utils.metrics import REGISTRY

INITIAL = {ProbeKind.READINESS: ProbeResult.FAILURE,
           ProbeKind.LIVENESS: ProbeResult.SUCCESS,
           ProbeKind.STARTUP: ProbeResult.UNKNOWN}

PROBE_TOTAL = Counter("prober_probe_total", "Cumulative number of a liveness, readiness or "
                      "startup probe for a container by result.",
                      ["probe_type", "result", "container", "pod", "namespace"],
                      registry=REGISTRY)

METRIC_RESULT = {ProbeResult.SUCCESS: "successful", ProbeResult.FAILURE: "failed",
                 ProbeResult.UNKNOWN: "unknown"}


def bare_id(container_id: str) -> str:
    return container_id.split("://", 1)[1] if "://" in container_id else container_id


class Results:
    def __init__(self, on_change: Callable[[str], None]) -> None:
        self._results: dict[tuple[ProbeKind, str], tuple[ProbeResult, str]] = {}
        self._on_change = on_change

    def get(self, kind: ProbeKind, container_id: str) -> ProbeResult | None:
        entry = self._results.get((kind, bare_id(container_id)))
        return entry[0] if entry is not None else None

    def set(self, kind: ProbeKind, container_id: str, result: ProbeResult, pod_uid: str,
            *, announce: bool = True) -> None:
        key = (kind, bare_id(container_id))
        old = self._results.get(key)
        self._results[key] = (result, pod_uid)
        if announce and (old is None or old[0] is not result):
            self._on_change(pod_uid)

    def remove(self, kind: ProbeKind, container_id: str) -> None:
        self._results.pop((kind, bare_id(container_id)), None)

    def remove_pod(self, pod_uid: str) -> None:
        for key in [k for k, (_, uid) in self._results.items() if uid == pod_uid]:
            del self._results[key]
