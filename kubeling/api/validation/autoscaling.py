"""Validation of HorizontalPodAutoscaler, on its stored version autoscaling/v2.

A v1 request is converted to v2 before it gets here, so one set of rules
serves both versions; paths name the v2 fields, as kube-apiserver's do.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import field, names
from kubeling.api.errors import Cause
from kubeling.api.validation import on_create, on_status_update, on_update
from kubeling.api.validation.apps import nonnegative

Obj = dict[str, Any]

MIN_REPLICAS_LOWER_BOUND = 1
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600
METRIC_SOURCE_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
_SOURCE_FIELD = {"Object": "object", "Pods": "pods", "Resource": "resource",
                 "External": "external", "ContainerResource": "containerResource"}


def _path_segment(value: str, path: str) -> list[Cause]:
    return [field.invalid(path, value, msg) for msg in names.is_valid_path_segment_name(value)]


def validate_cross_version_object_reference(ref: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            causes.append(field.required(f"{path}.{key}"))
        else:
            causes.extend(_path_segment(value, f"{path}.{key}"))
    return causes


def _positive_quantity(value: Any, path: str) -> list[Cause]:
    from kubeling.api.validation import core

    if value is None:
        return []
    parsed = core.parse_quantity(value)
    if parsed is None or parsed <= 0:
        return [field.invalid(path, value, "must be positive")]
    return []


def _metric_target(target: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    kind = target.get("type") or ""
    if not kind:
        causes.append(field.required(f"{path}.type", "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        causes.append(field.invalid(f"{path}.type", kind,
                                    "must be either Utilization, Value, or AverageValue"))
    causes.extend(_positive_quantity(target.get("value"), f"{path}.value"))
    causes.extend(_positive_quantity(target.get("averageValue"), f"{path}.averageValue"))
    util = target.get("averageUtilization")
    if isinstance(util, int) and util < 1:
        causes.append(field.invalid(f"{path}.averageUtilization", util, "must be greater than 0"))
    return causes


def _metric_identifier(ident: Obj, path: str) -> list[Cause]:
    name = ident.get("name") or ""
    if not name:
        return [field.required(f"{path}.name", "must specify a metric name")]
    return _path_segment(name, f"{path}.name")


def _resource_source(src: Obj, path: str, container: bool) -> list[Cause]:
    causes: list[Cause] = []
    if not src.get("name"):
        causes.append(field.required(f"{path}.name", "must specify a resource name"))
    if container and not src.get("container"):
        causes.append(field.required(f"{path}.container", "must specify a container"))
    target = src.get("target") or {}
    causes.extend(_metric_target(target, f"{path}.target"))
    util, avg = target.get("averageUtilization"), target.get("averageValue")
    if util is None and avg is None:
        causes.append(field.required(f"{path}.target.averageUtilization",
                                     "must set either a target raw value or a target utilization"))
    if util is not None and avg is not None:
        causes.append(field.forbidden(f"{path}.target.averageValue",
                                      "may not set both a target raw value and a target "
                                      "utilization"))
    return causes


def _source(kind: str, src: Obj, path: str) -> list[Cause]:
    if kind in ("resource", "containerResource"):
        return _resource_source(src, path, kind == "containerResource")
    causes: list[Cause] = []
    target = src.get("target") or {}
    if kind == "object":
        causes.extend(validate_cross_version_object_reference(
            src.get("describedObject") or {}, f"{path}.describedObject"))
    causes.extend(_metric_identifier(src.get("metric") or {}, f"{path}.metric"))
    causes.extend(_metric_target(target, f"{path}.target"))
    value, avg = target.get("value"), target.get("averageValue")
    if kind == "pods" and avg is None:
        causes.append(field.required(f"{path}.target.averageValue",
                                     "must specify a positive target averageValue"))
    if kind == "object" and value is None and avg is None:
        causes.append(field.required(f"{path}.target.averageValue",
                                     "must set either a target value or averageValue"))
    if kind == "external":
        if value is None and avg is None:
            causes.append(field.required(f"{path}.target.averageValue",
                                         "must set either a target value for metric or a "
                                         "per-pod target"))
        elif value is not None and avg is not None:
            causes.append(field.forbidden(f"{path}.target.value",
                                          "may not set both a target value for metric and a "
                                          "per-pod target"))
    return causes


def validate_metric_spec(metric: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    kind = metric.get("type") or ""
    if not kind:
        causes.append(field.required(f"{path}.type", "must specify a metric source type"))
    present = [key for key in ("object", "external", "pods", "resource", "containerResource")
               if metric.get(key) is not None]
    if present:
        causes.extend(_source(present[0], metric[present[0]], f"{path}.{present[0]}"))
    expected = _SOURCE_FIELD.get(kind)
    if expected is None:
        causes.append(field.not_supported(f"{path}.type", kind, METRIC_SOURCE_TYPES))
    elif metric.get(expected) is None:
        causes.append(field.required(f"{path}.{expected}",
                                     "must populate information for the given metric source"))
    for key in present:
        if key != expected:
            causes.append(field.forbidden(f"{path}.{key}",
                                          "must populate the given metric source only"))
    return causes


def _scaling_rules(rules: Obj | None, path: str) -> list[Cause]:
    if rules is None:
        return []
    causes: list[Cause] = []
    window = rules.get("stabilizationWindowSeconds")
    if isinstance(window, int):
        if window < 0:
            causes.append(field.invalid(f"{path}.stabilizationWindowSeconds", window,
                                        "must be greater than or equal to zero"))
        if window > MAX_STABILIZATION_WINDOW_SECONDS:
            causes.append(field.invalid(
                f"{path}.stabilizationWindowSeconds", window,
                f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"))
    select = rules.get("selectPolicy")
    if select is not None and select not in ("Disabled", "Max", "Min"):
        causes.append(field.not_supported(f"{path}.selectPolicy", select,
                                          ["Disabled", "Max", "Min"]))
    policies = rules.get("policies") or []
    if not policies:
        causes.append(field.required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        at = f"{path}.policies[{i}]"
        kind = policy.get("type", "")
        if kind not in ("Percent", "Pods"):
            causes.append(field.not_supported(f"{at}.type", kind, ["Percent", "Pods"]))
        if (policy.get("value") or 0) <= 0:
            causes.append(field.invalid(f"{at}.value", policy.get("value", 0),
                                        "must be greater than zero"))
        period = policy.get("periodSeconds") or 0
        if period <= 0:
            causes.append(field.invalid(f"{at}.periodSeconds", period,
                                        "must be greater than zero"))
        if period > MAX_PERIOD_SECONDS:
            causes.append(field.invalid(f"{at}.periodSeconds", period,
                                        f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return causes


def validate_hpa_spec(spec: Obj, path: str = "spec") -> list[Cause]:
    causes: list[Cause] = []
    min_replicas = spec.get("minReplicas")
    max_replicas = spec.get("maxReplicas") or 0
    if isinstance(min_replicas, int) and min_replicas < MIN_REPLICAS_LOWER_BOUND:
        causes.append(field.invalid(
            f"{path}.minReplicas", min_replicas,
            f"must be greater than or equal to {MIN_REPLICAS_LOWER_BOUND}"))
    if max_replicas < 1:
        causes.append(field.invalid(f"{path}.maxReplicas", max_replicas,
                                    "must be greater than 0"))
    if isinstance(min_replicas, int) and max_replicas < min_replicas:
        causes.append(field.invalid(f"{path}.maxReplicas", max_replicas,
                                    "must be greater than or equal to `minReplicas`"))
    causes.extend(validate_cross_version_object_reference(spec.get("scaleTargetRef") or {},
                                                          f"{path}.scaleTargetRef"))
    for i, metric in enumerate(spec.get("metrics") or []):
        causes.extend(validate_metric_spec(metric, f"{path}.metrics[{i}]"))
    behavior = spec.get("behavior")
    if behavior is not None:
        causes.extend(_scaling_rules(behavior.get("scaleUp"), f"{path}.behavior.scaleUp"))
        causes.extend(_scaling_rules(behavior.get("scaleDown"), f"{path}.behavior.scaleDown"))
    return causes


@on_create("autoscaling", "HorizontalPodAutoscaler")
def validate_hpa(obj: Obj) -> list[Cause]:
    return validate_hpa_spec(obj.get("spec") or {})


@on_update("autoscaling", "HorizontalPodAutoscaler")
def validate_hpa_update(new: Obj, old: Obj) -> list[Cause]:
    return validate_hpa(new)


@on_status_update("autoscaling", "HorizontalPodAutoscaler")
def validate_hpa_status_update(new: Obj, old: Obj) -> list[Cause]:
    status = new.get("status") or {}
    return (nonnegative(status.get("currentReplicas"), "status.currentReplicas")
            + nonnegative(status.get("desiredReplicas"), "status.desiredReplicas"))
