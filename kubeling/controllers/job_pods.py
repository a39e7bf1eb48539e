"""What the Job controller decides about pods and conditions, without the API.

Pure functions over Job and Pod objects: which pods are active, finished or
failed as the Job controller counts them; completion indexes and their
``"1,3-5"`` notation; the pod a Job creates (tracking finalizer, completion
index annotation, label, hostname and ``JOB_COMPLETION_INDEX``); the failure
back-off (10 s doubling, capped at 10 minutes, as Kubernetes 1.32); and the
Job conditions with their Kubernetes reasons and messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.controllers.podcontrol import from_template
from kubeling.utils.clock import parse_rfc3339, rfc3339

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
BACKOFF_BASE = 10.0
BACKOFF_MAX = 600.0
MAX_CREATE_DELETE_PER_SYNC = 500

COMPLETE = "Complete"
FAILED = "Failed"
SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
FAILURE_TARGET = "FailureTarget"
SUSPENDED = "Suspended"

COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_terminal(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    return not is_terminal(pod) and not pod["metadata"].get("deletionTimestamp")


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and not is_terminal(pod)


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def is_failed(pod: Obj, job: Obj) -> bool:
    """Failed as the Job counts it: phase Failed, or deleted before it succeeded (unless the
    Job only replaces pods that reached the Failed phase)."""
    if phase(pod) == "Failed":
        return True
    if (job.get("spec") or {}).get("podReplacementPolicy") == "Failed":
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or ())


def completion_index(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    if value is None:
        value = (pod["metadata"].get("labels") or {}).get(COMPLETION_INDEX)
    if value is None or not str(value).isdigit():
        return None
    return int(value)


def format_indexes(indexes: Iterable[int]) -> str:
    """``{1, 3, 4, 5}`` -> ``"1,3-5"`` (status.completedIndexes)."""
    out: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None, limit: int) -> set[int]:
    """The indexes of ``"1,3-5"`` below ``limit``; malformed parts are ignored."""
    out: set[int] = set()
    for part in (text or "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            continue
        out.update(i for i in range(int(low), int(high if dash else low) + 1) if i < limit)
    return out


def finish_time(pod: Obj) -> float | None:
    """When the pod finished: its last container's end, else its Ready=False transition."""
    status = pod.get("status") or {}
    ends = [parse_rfc3339(t) for cs in status.get("containerStatuses") or ()
            if (t := ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))]
    if ends:
        return max(ends)
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("status") == "False" and \
                cond.get("lastTransitionTime"):
            return parse_rfc3339(cond["lastTransitionTime"])
    ts = pod["metadata"].get("deletionTimestamp") or pod["metadata"].get("creationTimestamp")
    return parse_rfc3339(ts) if ts else None


def backoff_remaining(job: Obj, pods: list[Obj], now: float) -> float:
    """Seconds to wait before creating a replacement pod: the back-off counts the failures
    since the last success, from the last failure."""
    last_success = max((t for p in pods if phase(p) == "Succeeded"
                        and (t := finish_time(p)) is not None), default=0.0)
    failures = [t for p in pods if is_failed(p, job)
                and (t := finish_time(p)) is not None and t >= last_success]
    if not failures:
        return 0.0
    delay = min(BACKOFF_BASE * 2 ** (len(failures) - 1), BACKOFF_MAX)
    return max(0.0, max(failures) + delay - now)


def active_rank(pod: Obj) -> tuple[int, int, int, str]:
    """Sort key putting first the active pods to delete first (unscheduled, pending,
    not ready, newest), as Kubernetes ranks them."""
    meta = pod["metadata"]
    return (1 if (pod.get("spec") or {}).get("nodeName") else 0,
            {"Pending": 0, "Unknown": 1, "Running": 2}.get(phase(pod), 0),
            1 if is_ready(pod) else 0,
            _negate(meta.get("creationTimestamp") or ""))


def _negate(ts: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in ts)


def new_pod(job: Obj, job_kind: Kind, index: int | None) -> Obj:
    """The pod ``job`` creates next (for completion index ``index`` when Indexed)."""
    spec = job["spec"]
    name = job["metadata"]["name"]
    prefix = f"{name}-" if index is None else f"{name}-{index}-"
    pod = from_template(spec.get("template") or {}, job, job_kind, generate_name=prefix)
    meta = pod["metadata"]
    meta["finalizers"] = [*(meta.get("finalizers") or ()), TRACKING_FINALIZER]
    if index is not None:
        meta.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
        meta["labels"][COMPLETION_INDEX] = str(index)
        pspec = pod["spec"]
        if not pspec.get("hostname"):
            pspec["hostname"] = f"{name}-{index}"
        env = {"name": INDEX_ENV, "valueFrom": {"fieldRef": {
            "apiVersion": "v1",
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for group in ("initContainers", "containers"):
            for c in pspec.get(group) or ():
                if not any(e.get("name") == INDEX_ENV for e in c.get("env") or ()):
                    c["env"] = [*(c.get("env") or ()), dict(env)]
    return pod


def condition(job: Obj, type_: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def finished(job: Obj) -> Obj | None:
    """The Complete or Failed condition of a finished Job."""
    return condition(job, COMPLETE) or condition(job, FAILED)


def new_condition(type_: str, reason: str, message: str, now: float,
                  status: str = "True") -> Obj:
    ts = rfc3339(now)
    return {"type": type_, "status": status, "lastProbeTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[Obj], type_: str, status: str, reason: str,
                     message: str, now: float) -> bool:
    """Set a condition (added only when ``status`` is True); True when something changed."""
    for c in conditions:
        if c.get("type") != type_:
            continue
        if c.get("status") == status and c.get("reason") == reason and \
                c.get("message") == message:
            return False
        if c.get("status") != status:
            c["lastTransitionTime"] = rfc3339(now)
        c.update(status=status, reason=reason, message=message, lastProbeTime=rfc3339(now))
        return True
    if status != "True":
        return False
    conditions.append(new_condition(type_, reason, message, now, status))
    return True


_OMIT_ZERO = ("active", "succeeded", "failed")


def wire(status: Obj) -> Obj:
    """``status`` as Kubernetes writes it: zero counters and empty lists left out."""
    out = json_copy(status)
    for k in _OMIT_ZERO:
        if out.get(k) == 0:
            del out[k]
    if not out.get("conditions"):
        out.pop("conditions", None)
    if not out.get("completedIndexes"):
        out.pop("completedIndexes", None)
    unc = out.get("uncountedTerminatedPods")
    if isinstance(unc, dict):
        out["uncountedTerminatedPods"] = {k: v for k, v in unc.items() if v}
    return out
