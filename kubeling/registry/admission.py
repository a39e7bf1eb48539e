"""Mutating admission the API server applies to new pods.

DefaultTolerationSeconds: every pod that does not say otherwise tolerates a
``not-ready`` or ``unreachable`` node for a while (300 s unless the server is
started with other values) before the node lifecycle controller evicts it —
this is what gives a failed node's pods a grace period before they move.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
NO_EXECUTE = "NoExecute"

toleration_seconds = {NOT_READY: 300, UNREACHABLE: 300}


def configure(*, not_ready: int = 300, unreachable: int = 300) -> None:
    """Set the flags ``--default-not-ready-toleration-seconds`` and
    ``--default-unreachable-toleration-seconds``."""
    toleration_seconds[NOT_READY] = not_ready
    toleration_seconds[UNREACHABLE] = unreachable


def _tolerates(tolerations: list[Obj], key: str) -> bool:
    for t in tolerations:
        if t.get("effect") not in (None, "", NO_EXECUTE):
            continue
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") == key:
            return True
    return False


def default_tolerations(pod: Obj) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    tolerations = spec.get("tolerations") or []
    if not isinstance(tolerations, list):
        return
    added = [{"key": key, "operator": "Exists", "effect": NO_EXECUTE, "tolerationSeconds": secs}
             for key, secs in toleration_seconds.items() if not _tolerates(tolerations, key)]
    if added:
        spec["tolerations"] = [*tolerations, *added]
