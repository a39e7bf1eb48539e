"""Matching rules several plugins share: tolerations against taints, and node selectors.

Both the filters and the scoring of TaintToleration, NodeUnschedulable,
NodeAffinity and PodTopologySpread (its node inclusion policies) ask these
questions, so they are answered in one place, with the API's semantics
(an empty toleration key with ``Exists`` tolerates everything; an empty
node selector term matches nothing; ``Gt``/``Lt`` compare integers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubeling.api.nodematch import term_matches, tolerated, tolerates

Obj = dict[str, Any]
__all__ = ["term_matches", "tolerated", "tolerates"]

DO_NOT_SCHEDULE = ("NoSchedule", "NoExecute")


def untolerated_taint(taints: Iterable[Obj], tolerations: list[Obj],
                      effects: tuple[str, ...] = DO_NOT_SCHEDULE) -> Obj | None:
    """The first taint with one of ``effects`` that no toleration tolerates."""
    for taint in taints:
        if taint.get("effect") in effects and not tolerated(tolerations, taint):
            return taint
    return None


class RequiredNodeAffinity:
    """A pod's nodeSelector AND its required node affinity (any term), ready to match."""

    __slots__ = ("node_selector", "terms")

    def __init__(self, pod: Obj) -> None:
        spec = pod.get("spec") or {}
        self.node_selector: dict[str, str] = spec.get("nodeSelector") or {}
        na = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
        required = na.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.terms: list[Obj] | None = (
            None if required is None else list(required.get("nodeSelectorTerms") or []))

    @property
    def empty(self) -> bool:
        return not self.node_selector and self.terms is None

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        for k, v in self.node_selector.items():
            if labels.get(k) != v:
                return False
        if self.terms is None:
            return True
        return any(term_matches(t, labels, name) for t in self.terms)
