"""What the DaemonSet controller decides without the API: which nodes run a daemon
pod, what that pod looks like, and how a template revision is named.

- A node runs the DaemonSet's pod when the pod (with the tolerations every
  daemon pod gets) would fit it by ``nodeName``, ``nodeSelector``, required
  node affinity and taints; a NoExecute taint it does not tolerate also stops
  a pod already there (``should_continue``).
- Daemon pods are pinned with a required node affinity on ``metadata.name``
  (matchFields) and left to the scheduler, as Kubernetes does since 1.12.
- Templates are identified by a hash (``controller-revision-hash``) kept in a
  ControllerRevision named ``<daemonset>-<hash>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from kubeling.api.jsoncopy import json_copy
from kubeling.api.nodematch import term_matches, tolerates
from kubeling.utils.clock import parse_rfc3339

Obj = dict[str, Any]

REVISION_HASH = "controller-revision-hash"
TEMPLATE_GENERATION = "pod-template-generation"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", NO_EXECUTE),
    ("node.kubernetes.io/unreachable", NO_EXECUTE),
    ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
)
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", NO_SCHEDULE)

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def add_daemon_tolerations(spec: Obj) -> None:
    """Add the tolerations every daemon pod carries (unless one already covers them)."""
    tolerations: list[Obj] = list(spec.get("tolerations") or [])
    wanted = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE)
    for key, effect in wanted:
        taint = {"key": key, "effect": effect}
        if not any(tolerates(t, taint) for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    spec["tolerations"] = tolerations


def pin_to_node(spec: Obj, node: str) -> None:
    """Require scheduling onto ``node`` (replacing any required node selector terms)."""
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod runs on, or is pinned to while unscheduled."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or ():
        for req in term.get("matchFields") or ():
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and \
                    len(req.get("values") or ()) == 1:
                return str(req["values"][0])
    return None


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """The tolerations a daemon pod of this template carries."""
    spec: Obj = {"tolerations": pod_spec.get("tolerations") or [],
                 "hostNetwork": pod_spec.get("hostNetwork")}
    add_daemon_tolerations(spec)
    return list(spec["tolerations"])


def should_run(node: Obj, pod_spec: Obj,
               tolerations: list[Obj] | None = None) -> tuple[bool, bool]:
    """(should run a new daemon pod here, should keep one that runs here); pass
    ``tolerations`` (:func:`daemon_tolerations`) when asking for many nodes."""
    name = node["metadata"]["name"]
    labels = node["metadata"].get("labels") or {}
    if pod_spec.get("nodeName") and pod_spec["nodeName"] != name:
        return False, False
    selector = pod_spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False, False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None and not any(term_matches(t, labels, name)
                                        for t in required.get("nodeSelectorTerms") or ()):
        return False, False
    if tolerations is None:
        tolerations = daemon_tolerations(pod_spec)
    run = keep = True
    for taint in (node.get("spec") or {}).get("taints") or ():
        effect = taint.get("effect")
        if effect not in (NO_SCHEDULE, NO_EXECUTE):
            continue
        if any(tolerates(t, taint) for t in tolerations):
            continue
        run = False
        if effect == NO_EXECUTE:
            keep = False
    return run, keep


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A short, stable, DNS-safe hash of a pod template (FNV-1a over canonical JSON)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += str(collision_count).encode()
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    out = []
    while True:
        out.append(_SAFE[h % len(_SAFE)])
        h //= len(_SAFE)
        if h == 0:
            return "".join(out)


def revision_data(template: Obj) -> Obj:
    return {"spec": {"template": {**json_copy(template), "$patch": "replace"}}}


def revision_template(revision: Obj) -> Obj:
    tmpl = dict((((revision.get("data") or {}).get("spec") or {}).get("template")) or {})
    tmpl.pop("$patch", None)
    return tmpl


def is_ready(pod: Obj) -> bool:
    return _ready_since(pod) is not None


def _ready_since(pod: Obj) -> float | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "True":
            ts = c.get("lastTransitionTime")
            return parse_rfc3339(ts) if ts else 0.0
    return None


def available_in(pod: Obj, min_ready: int, now: float) -> float | None:
    """0 when the pod is available, the seconds until it will be, or None if not ready."""
    since = _ready_since(pod)
    if since is None:
        return None
    if min_ready <= 0:
        return 0.0
    return max(0.0, since + min_ready - now)


def scaled(value: int | str | None, total: int, *, default: int) -> int:
    """An int-or-percent (rounded up) of ``total``."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1] or 0)
        return -(-pct * total // 100)
    return int(text)


def oldest_first(pods: Iterable[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                       p["metadata"]["name"]))
