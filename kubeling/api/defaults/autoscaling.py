"""Defaults of HorizontalPodAutoscaler in its stored version, autoscaling/v2.

An HPA with no metrics scales on 80% CPU utilization, and one that states a
``behavior`` gets the rest of the scale-up and scale-down rules filled in, so
the controller reads a complete policy.
"""

from __future__ import annotations

import copy
from typing import Any

from kubeling.api.defaults import defaulter

Obj = dict[str, Any]

DEFAULT_CPU_UTILIZATION = 80

SCALE_UP_RULES: Obj = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
# The scale-down stabilization window stays unset: the controller's flag decides it.
SCALE_DOWN_RULES: Obj = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def scaling_rules(given: Obj | None, defaults: Obj) -> Obj:
    """``defaults`` with every field ``given`` sets taken from ``given``."""
    rules = copy.deepcopy(defaults)
    if given is None:
        return rules
    for key in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
        if given.get(key) is not None:
            rules[key] = given[key]
    return rules


@defaulter("autoscaling", "HorizontalPodAutoscaler")
def default_hpa(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = scaling_rules(behavior.get("scaleUp"), SCALE_UP_RULES)
        behavior["scaleDown"] = scaling_rules(behavior.get("scaleDown"), SCALE_DOWN_RULES)
