"""The arithmetic of Deployments: surge and unavailability, revisions, proportions, conditions.

Pure functions over plain JSON objects (Deployments and ReplicaSets as the API
stores them), so every decision of the controller can be tested without an API
server. The names and rules follow Kubernetes' deployment utilities, because
``kubectl rollout`` and users read the same annotations and conditions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from kubeling.utils.clock import parse_rfc3339, rfc3339

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
HASH_LABEL = "pod-template-hash"
MAX_REV_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1

PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"

REASON_RS_UPDATED = "ReplicaSetUpdated"
REASON_RS_CREATE_ERROR = "ReplicaSetCreateError"
REASON_NEW_RS = "NewReplicaSetCreated"
REASON_FOUND_NEW_RS = "FoundNewReplicaSet"
REASON_NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
REASON_TIMED_OUT = "ProgressDeadlineExceeded"
REASON_PAUSED = "DeploymentPaused"
REASON_RESUMED = "DeploymentResumed"
REASON_MIN_AVAILABLE = "MinimumReplicasAvailable"
REASON_MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                 MAX_REPLICAS, ROLLBACK_TO})


# ----- small readers ----------------------------------------------------------------------

def spec_replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj | None, name: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(name) or 0)


def annots(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def is_rolling(d: Obj) -> bool:
    return ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """ReplicaSets that exist and want at least one pod."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def replica_count(rss: Iterable[Obj | None]) -> int:
    return sum(spec_replicas(rs) for rs in rss if rs is not None)


def actual_count(rss: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "replicas") for rs in rss if rs is not None)


def ready_count(rss: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "readyReplicas") for rs in rss if rs is not None)


def available_count(rss: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "availableReplicas") for rs in rss if rs is not None)


# ----- surge and unavailability -------------------------------------------------------------

def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An int-or-percent as a number of pods: percentages of ``total``, rounded as asked.

    Raises ValueError for a string that is not a percentage.
    """
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise ValueError("invalid value for IntOrString: invalid type: string is not a "
                         "percentage")
    try:
        percent = int(value[:-1])
    except ValueError:
        raise ValueError(f"invalid value {value!r}: {value[:-1]!r} is not an integer") from None
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable) for ``desired`` pods; never both zero (unavailable becomes 1)."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling_params(d: Obj) -> tuple[int | str | None, int | str | None]:
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    try:
        surge, _ = resolve_fenceposts(*_rolling_params(d), spec_replicas(d))
    except ValueError:
        return 0
    return surge


def max_unavailable(d: Obj) -> int:
    replicas = spec_replicas(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    try:
        _, unavailable = resolve_fenceposts(*_rolling_params(d), replicas)
    except ValueError:
        return 0
    return min(unavailable, replicas)


def min_available(d: Obj) -> int:
    return spec_replicas(d) - max_unavailable(d)


def new_rs_new_replicas(d: Obj, all_rss: list[Obj | None], new_rs: Obj) -> int:
    """How many replicas the new ReplicaSet may have now (bounded by replicas + surge)."""
    replicas = spec_replicas(d)
    if not is_rolling(d):
        return replicas
    current = replica_count(all_rss)
    max_total = replicas + max_surge(d)
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, replicas - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The new ReplicaSet runs every replica the Deployment wants, all available."""
    if rs is None:
        return False
    desired = annots(rs).get(DESIRED_REPLICAS)
    replicas = spec_replicas(d)
    return (desired == str(replicas) and spec_replicas(rs) == replicas
            and status_int(rs, "availableReplicas") == replicas)


# ----- replica annotations and proportions ----------------------------------------------------

def _int_annotation(rs: Obj, name: str) -> int | None:
    value = annots(rs).get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def desired_replicas_annotation(rs: Obj) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS)


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    ann = annots(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(maximum)


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    """Write desired-replicas and max-replicas on ``rs`` (a copy); True when changed."""
    ann = rs["metadata"].setdefault("annotations", {})
    if ann is None:
        ann = rs["metadata"]["annotations"] = {}
    changed = False
    for name, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(name) != value:
            ann[name] = value
            changed = True
    return changed


def _round_half_away(x: float) -> int:
    return int(x - 0.5) if x < 0 else int(x + 0.5)


def replica_set_fraction(rs: Obj, d: Obj) -> int:
    """How many replicas ``rs`` should gain (or lose) for the Deployment's new size."""
    replicas = spec_replicas(d)
    if replicas == 0:
        return -spec_replicas(rs)
    deployment_replicas = replicas + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_int(d, "replicas")
    if annotated == 0:
        return 0
    new_size = spec_replicas(rs) * deployment_replicas / annotated
    return _round_half_away(new_size) - spec_replicas(rs)


def proportion(rs: Obj | None, d: Obj, to_add: int, added: int) -> int:
    """The share of ``to_add`` replicas (negative: to remove) that ``rs`` takes."""
    if rs is None or spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# ----- ordering ----------------------------------------------------------------------------

def _created(rs: Obj) -> str:
    return rs["metadata"].get("creationTimestamp") or ""


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first; ties by name."""
    return sorted(rss, key=lambda rs: (_created(rs), rs["metadata"]["name"]))


def by_size_older(rss: Iterable[Obj]) -> list[Obj]:
    """Largest first; among equals the older first (scaling down takes from old ones)."""
    return sorted(by_creation(rss), key=lambda rs: -spec_replicas(rs))


def by_size_newer(rss: Iterable[Obj]) -> list[Obj]:
    """Largest first; among equals the newer first (scaling up gives to new ones)."""
    return sorted(list(reversed(by_creation(rss))), key=lambda rs: -spec_replicas(rs))


# ----- revisions ---------------------------------------------------------------------------

def revision(obj: Obj) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation (0 when absent or not a number)."""
    value = annots(obj).get(REVISION)
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


def max_revision(rss: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """Lowest revision first; ties oldest first."""
    return sorted(by_creation(rss), key=revision)


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, *, exists: bool) -> bool:
    """Copy the Deployment's annotations to its new ReplicaSet ``rs`` (a copy) and raise its
    revision, keeping earlier revisions in revision-history when it is reused (a rollback)."""
    meta = rs["metadata"]
    ann = meta.get("annotations")
    if ann is None:
        ann = meta["annotations"] = {}
    changed = False
    for k, v in annots(d).items():
        if k in SKIPPED_ANNOTATIONS or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    old = ann.get(REVISION)
    try:
        old_int = int(old) if old else 0
    except ValueError:
        return False
    if old_int < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old is not None:
            history = ann.get(REVISION_HISTORY, "")
            if not history:
                ann[REVISION_HISTORY] = old
            else:
                parts = history.split(",")
                total = len(history) + len(old) + 1
                start = 0
                while total > MAX_REV_HISTORY_CHARS and start < len(parts):
                    total -= len(parts[start]) + 1
                    start += 1
                if total <= MAX_REV_HISTORY_CHARS:
                    ann[REVISION_HISTORY] = ",".join([*parts[start:], old])
    if not exists:
        replicas = spec_replicas(d)
        if set_replicas_annotations(rs, replicas, replicas + max_surge(d)):
            changed = True
    return changed


# ----- templates ---------------------------------------------------------------------------

def _without_hash(template: Obj) -> Obj:
    meta = dict(template.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    labels.pop(HASH_LABEL, None)
    meta["labels"] = labels or None
    meta.pop("creationTimestamp", None)
    out = dict(template)
    out["metadata"] = {k: v for k, v in meta.items() if v not in (None, {}, [], "")}
    return out


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """Two pod templates equal but for the ``pod-template-hash`` label."""
    return _without_hash(a or {}) == _without_hash(b or {})


def find_new_rs(d: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (the new one)."""
    template = d["spec"].get("template")
    for rs in by_creation(rss):
        if equal_ignore_hash(rs["spec"].get("template"), template):
            return rs
    return None


def old_rss(rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
    uid = new_rs["metadata"]["uid"] if new_rs is not None else None
    return [rs for rs in rss if rs["metadata"]["uid"] != uid]


# ----- conditions --------------------------------------------------------------------------

def condition(status: Obj, type_: str) -> Obj | None:
    for c in status.get("conditions") or ():
        if c.get("type") == type_:
            return c
    return None


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    ts = rfc3339(now)
    return {"type": type_, "status": status, "lastUpdateTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """Add or replace ``cond``; same status and reason leaves the existing one untouched."""
    current = condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and \
            current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, cond["type"])
    status["conditions"] = [*(status.get("conditions") or []), cond]


def remove_condition(status: Obj, type_: str) -> None:
    kept = [c for c in status.get("conditions") or () if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Obj) -> bool:
    deadline = d["spec"].get("progressDeadlineSeconds")
    return deadline is not None and deadline != MAX_INT32


def deployment_complete(d: Obj, status: Obj) -> bool:
    replicas = spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0)
            >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: Obj, new_status: Obj) -> bool:
    """More updated, ready or available pods than last time, or fewer old ones."""
    old = d.get("status") or {}

    def get(s: Obj, name: str) -> int:
        return int(s.get(name) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(new_status, "replicas") - get(new_status, "updatedReplicas")
    return (get(new_status, "updatedReplicas") > get(old, "updatedReplicas")
            or new_old < old_old
            or get(new_status, "readyReplicas") > get(old, "readyReplicas")
            or get(new_status, "availableReplicas") > get(old, "availableReplicas"))


def deployment_timed_out(d: Obj, status: Obj, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = condition(status, PROGRESSING)
    if cond is None:
        return False
    if cond.get("reason") == REASON_NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == REASON_TIMED_OUT:
        return True
    since = cond.get("lastUpdateTime")
    if not since:
        return False
    return parse_rfc3339(since) + int(d["spec"]["progressDeadlineSeconds"]) < now
