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

Obj = dict[str, Any]

DO_NOT_SCHEDULE = ("NoSchedule", "NoExecute")


def tolerates(toleration: Obj, taint: Obj) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(tolerations: Iterable[Obj], taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def untolerated_taint(taints: Iterable[Obj], tolerations: list[Obj],
                      effects: tuple[str, ...] = DO_NOT_SCHEDULE) -> Obj | None:
    """The first taint with one of ``effects`` that no toleration tolerates."""
    for taint in taints:
        if taint.get("effect") in effects and not tolerated(tolerations, taint):
            return taint
    return None


def _requirement_matches(req: Obj, value: str | None) -> bool:
    op = req.get("operator")
    values = req.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: Obj, labels: Mapping[str, str], name: str) -> bool:
    """A NodeSelectorTerm: all its expressions (labels) and fields (metadata.name) hold."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    for req in exprs:
        if not _requirement_matches(req, labels.get(req.get("key", ""))):
            return False
    for req in fields:
        if req.get("key") != "metadata.name" or req.get("operator") not in ("In", "NotIn"):
            return False
        if not _requirement_matches(req, name):
            return False
    return True


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
