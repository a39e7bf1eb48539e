"""The status a ReplicaSet or ReplicationController reports about its pods.

``kubectl get rs``, ``kubectl rollout status`` and the Deployment controller
read these counts, so they follow Kubernetes exactly: ``replicas`` counts the
active pods the owner controls, ``fullyLabeledReplicas`` those carrying every
template label, ``readyReplicas`` the ready ones and ``availableReplicas``
those ready for ``minReadySeconds``; a failed create or delete sets the
``ReplicaFailure`` condition and a clean sync removes it. Zero counts are left
out, as the API's ``omitempty`` leaves them out.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.jsoncopy import json_copy
from kubeling.client.interface import Obj
from kubeling.controllers.replicaset_rank import is_available, is_ready, ready_since
from kubeling.utils.clock import rfc3339

REPLICA_FAILURE = "ReplicaFailure"
COUNTS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")


def desired_replicas(owner: Obj) -> int:
    replicas = (owner.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def min_ready_seconds(owner: Obj) -> int:
    return int((owner.get("spec") or {}).get("minReadySeconds") or 0)


def _template_labels(owner: Obj) -> dict[str, str]:
    template = (owner.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def compute_status(owner: Obj, pods: list[Obj], *, failure: str | None, failure_reason: str,
                   now: float) -> Obj:
    """The new ``status`` (without observedGeneration) for ``owner`` controlling ``pods``.

    ``failure`` is the message of the error of this sync's creates or deletes, if any;
    ``failure_reason`` is ``FailedCreate`` or ``FailedDelete``.
    """
    old: Obj = owner.get("status") or {}
    template = _template_labels(owner)
    min_ready = min_ready_seconds(owner)
    labelled = ready = available = 0
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in template.items()):
            labelled += 1
        if is_ready(pod):
            ready += 1
            if is_available(pod, min_ready, now):
                available += 1
    status: Obj = {k: v for k, v in old.items() if k not in COUNTS}
    conditions: list[Obj] = [c for c in old.get("conditions") or ()]
    current = next((c for c in conditions if c.get("type") == REPLICA_FAILURE), None)
    if failure is not None and current is None:
        conditions.append({"type": REPLICA_FAILURE, "status": "True",
                           "lastTransitionTime": rfc3339(now), "reason": failure_reason,
                           "message": failure})
    elif failure is None and current is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    if conditions:
        status["conditions"] = json_copy(conditions)
    else:
        status.pop("conditions", None)
    status["replicas"] = len(pods)
    for name, value in (("fullyLabeledReplicas", labelled), ("readyReplicas", ready),
                        ("availableReplicas", available)):
        if value:
            status[name] = value
    return status


def _count(status: Obj, name: str) -> int:
    return int(status.get(name) or 0)


def status_changed(owner: Obj, new: Obj) -> bool:
    """Whether ``new`` differs from what the owner reports, or its generation is unobserved."""
    old: Obj = owner.get("status") or {}
    if any(_count(old, k) != _count(new, k) for k in COUNTS):
        return True
    if (old.get("conditions") or []) != (new.get("conditions") or []):
        return True
    generation = int(owner["metadata"].get("generation") or 0)
    return _count(old, "observedGeneration") != generation


def with_status(owner: Obj, status: Obj) -> Obj:
    """A copy of ``owner`` carrying ``status`` and the generation it observed."""
    out: dict[str, Any] = json_copy({k: v for k, v in owner.items() if k != "status"})
    new = json_copy(status)
    generation = int(owner["metadata"].get("generation") or 0)
    if generation:
        new["observedGeneration"] = generation
    out["status"] = new
    return out


def next_available_in(pods: list[Obj], min_ready: int, now: float) -> float | None:
    """Seconds until the first ready-but-not-yet-available pod becomes available."""
    if min_ready <= 0:
        return None
    soonest: float | None = None
    for pod in pods:
        since = ready_since(pod)
        if since is None or is_available(pod, min_ready, now):
            continue
        wait = since + min_ready - now
        if soonest is None or wait < soonest:
            soonest = wait
    return None if soonest is None else max(soonest, 0.0)
