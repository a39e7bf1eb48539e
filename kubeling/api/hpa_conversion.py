"""HorizontalPodAutoscaler conversion between autoscaling/v1 and the stored v2.

autoscaling/v1 knows one metric, CPU utilization. What v2 holds beyond it
(other metrics, current metric values, conditions, scaling behavior) rides in
the v1 object's ``autoscaling.alpha.kubernetes.io/*`` annotations, in the
older (v2beta1-shaped) wire form, exactly as kube-apiserver writes them, so
a v1 client that reads, edits and writes back an HPA loses nothing.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from kubeling.api.conversion import converter

Obj = dict[str, Any]

METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
DEFAULT_CPU_UTILIZATION = 80
_ZERO = "0"


def _put(out: Obj, key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _ref_to_v1(ref: Obj | None) -> Obj:
    ref = ref or {}
    out = {"kind": ref.get("kind", ""), "name": ref.get("name", "")}
    _put(out, "apiVersion", ref.get("apiVersion") or None)
    return out


def _ref_to_v2(ref: Obj | None) -> Obj:
    return _ref_to_v1(ref)


def _cpu_utilization_metric(value: int) -> Obj:
    return {"type": "Resource",
            "resource": {"name": "cpu",
                         "target": {"type": "Utilization", "averageUtilization": value}}}


def _is_cpu_utilization(metric: Obj) -> bool:
    res = metric.get("resource") or {}
    return (metric.get("type") == "Resource" and res.get("name") == "cpu"
            and (res.get("target") or {}).get("averageUtilization") is not None)


# v2 -> v1 (the v1 annotations' shapes)


def _metric_spec_to_v1(m: Obj) -> Obj:
    out: Obj = {"type": m.get("type", "")}
    if (src := m.get("object")) is not None:
        target, ident = src.get("target") or {}, src.get("metric") or {}
        obj: Obj = {"target": _ref_to_v1(src.get("describedObject")),
                    "metricName": ident.get("name", ""),
                    "targetValue": target.get("value") or _ZERO}
        _put(obj, "selector", ident.get("selector"))
        _put(obj, "averageValue", target.get("averageValue"))
        out["object"] = obj
    if (src := m.get("pods")) is not None:
        target, ident = src.get("target") or {}, src.get("metric") or {}
        pods: Obj = {"metricName": ident.get("name", ""),
                     "targetAverageValue": target.get("averageValue") or _ZERO}
        _put(pods, "selector", ident.get("selector"))
        out["pods"] = pods
    for key in ("resource", "containerResource"):
        if (src := m.get(key)) is not None:
            target = src.get("target") or {}
            res: Obj = {"name": src.get("name", "")}
            _put(res, "targetAverageUtilization", target.get("averageUtilization"))
            _put(res, "targetAverageValue", target.get("averageValue"))
            if key == "containerResource":
                res["container"] = src.get("container", "")
            out[key] = res
    if (src := m.get("external")) is not None:
        target, ident = src.get("target") or {}, src.get("metric") or {}
        ext: Obj = {"metricName": ident.get("name", "")}
        _put(ext, "metricSelector", ident.get("selector"))
        _put(ext, "targetValue", target.get("value"))
        _put(ext, "targetAverageValue", target.get("averageValue"))
        out["external"] = ext
    return out


def _metric_status_to_v1(m: Obj) -> Obj:
    out: Obj = {"type": m.get("type", "")}
    if (src := m.get("object")) is not None:
        cur, ident = src.get("current") or {}, src.get("metric") or {}
        obj: Obj = {"target": _ref_to_v1(src.get("describedObject")),
                    "metricName": ident.get("name", ""),
                    "currentValue": cur.get("value") or _ZERO}
        _put(obj, "selector", ident.get("selector"))
        _put(obj, "averageValue", cur.get("averageValue"))
        out["object"] = obj
    if (src := m.get("pods")) is not None:
        cur, ident = src.get("current") or {}, src.get("metric") or {}
        pods: Obj = {"metricName": ident.get("name", ""),
                     "currentAverageValue": cur.get("averageValue") or _ZERO}
        _put(pods, "selector", ident.get("selector"))
        out["pods"] = pods
    for key in ("resource", "containerResource"):
        if (src := m.get(key)) is not None:
            cur = src.get("current") or {}
            res: Obj = {"name": src.get("name", "")}
            _put(res, "currentAverageUtilization", cur.get("averageUtilization"))
            res["currentAverageValue"] = cur.get("averageValue") or _ZERO
            if key == "containerResource":
                res["container"] = src.get("container", "")
            out[key] = res
    if (src := m.get("external")) is not None:
        cur, ident = src.get("current") or {}, src.get("metric") or {}
        ext: Obj = {"metricName": ident.get("name", "")}
        _put(ext, "metricSelector", ident.get("selector"))
        ext["currentValue"] = cur.get("value") or _ZERO
        _put(ext, "currentAverageValue", cur.get("averageValue"))
        out["external"] = ext
    return out


def _encode(value: Any) -> str:
    return orjson.dumps(value).decode()


@converter("autoscaling", "HorizontalPodAutoscaler", "v2", "v1")
def hpa_v2_to_v1(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = copy.deepcopy(obj.get("metadata") or {})
    out: Obj = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                "metadata": meta}
    v1spec: Obj = {"scaleTargetRef": _ref_to_v1(spec.get("scaleTargetRef"))}
    _put(v1spec, "minReplicas", spec.get("minReplicas"))
    v1spec["maxReplicas"] = spec.get("maxReplicas", 0)
    metrics = spec.get("metrics") or []
    for m in metrics:
        res = m.get("resource") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu":
            _put(v1spec, "targetCPUUtilizationPercentage",
                 (res.get("target") or {}).get("averageUtilization"))
            break
    out["spec"] = v1spec

    v1status: Obj = {}
    for key in ("observedGeneration", "lastScaleTime"):
        _put(v1status, key, status.get(key))
    v1status["currentReplicas"] = status.get("currentReplicas", 0)
    v1status["desiredReplicas"] = status.get("desiredReplicas", 0)
    current = status.get("currentMetrics") or []
    for m in current:
        res = m.get("resource") or {}
        util = (res.get("current") or {}).get("averageUtilization")
        if m.get("type") == "Resource" and res.get("name") == "cpu" and util is not None:
            v1status["currentCPUUtilizationPercentage"] = util
    if "status" in obj:
        out["status"] = v1status

    others = [_metric_spec_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    conditions = copy.deepcopy(status.get("conditions") or [])
    behavior = spec.get("behavior")
    extra: dict[str, str] = {}
    if others:
        extra[METRICS_ANNOTATION] = _encode(others)
    if current:
        extra[CURRENT_METRICS_ANNOTATION] = _encode([_metric_status_to_v1(m) for m in current])
    if conditions:
        extra[CONDITIONS_ANNOTATION] = _encode(conditions)
    if behavior is not None:
        extra[BEHAVIOR_ANNOTATION] = _encode(behavior)
    if extra:
        meta["annotations"] = {**(meta.get("annotations") or {}), **extra}
    return out


# v1 -> v2


def _target(kind: str, *, value: Any = None, average_value: Any = None,
            utilization: Any = None) -> Obj:
    out: Obj = {"type": kind}
    _put(out, "value", value)
    _put(out, "averageValue", average_value)
    _put(out, "averageUtilization", utilization)
    return out


def _ident(name: Any, selector: Any) -> Obj:
    out: Obj = {"name": name or ""}
    _put(out, "selector", selector)
    return out


def _metric_spec_to_v2(m: Obj) -> Obj:
    out: Obj = {"type": m.get("type", "")}
    if (src := m.get("object")) is not None:
        avg = src.get("averageValue")
        out["object"] = {
            "describedObject": _ref_to_v2(src.get("target")),
            "target": _target("AverageValue" if avg is not None else "Value",
                              value=src.get("targetValue") or _ZERO, average_value=avg),
            "metric": _ident(src.get("metricName"), src.get("selector")),
        }
    if (src := m.get("pods")) is not None:
        out["pods"] = {
            "metric": _ident(src.get("metricName"), src.get("selector")),
            "target": _target("AverageValue",
                              average_value=src.get("targetAverageValue") or _ZERO),
        }
    for key in ("resource", "containerResource"):
        if (src := m.get(key)) is not None:
            util = src.get("targetAverageUtilization")
            res: Obj = {"name": src.get("name", ""),
                        "target": _target("Utilization" if util is not None else "AverageValue",
                                          average_value=src.get("targetAverageValue"),
                                          utilization=util)}
            if key == "containerResource":
                res["container"] = src.get("container", "")
            out[key] = res
    if (src := m.get("external")) is not None:
        value = src.get("targetValue")
        out["external"] = {
            "metric": _ident(src.get("metricName"), src.get("metricSelector")),
            "target": _target("Value" if value is not None else "AverageValue", value=value,
                              average_value=src.get("targetAverageValue")),
        }
    return out


def _value_status(*, value: Any = None, average_value: Any = None,
                  utilization: Any = None) -> Obj:
    out: Obj = {}
    _put(out, "value", value)
    _put(out, "averageValue", average_value)
    _put(out, "averageUtilization", utilization)
    return out


def _metric_status_to_v2(m: Obj) -> Obj:
    out: Obj = {"type": m.get("type", "")}
    if (src := m.get("object")) is not None:
        out["object"] = {
            "metric": _ident(src.get("metricName"), src.get("selector")),
            "current": _value_status(value=src.get("currentValue") or _ZERO,
                                     average_value=src.get("averageValue")),
            "describedObject": _ref_to_v2(src.get("target")),
        }
    if (src := m.get("pods")) is not None:
        out["pods"] = {
            "metric": _ident(src.get("metricName"), src.get("selector")),
            "current": _value_status(average_value=src.get("currentAverageValue") or _ZERO),
        }
    for key in ("resource", "containerResource"):
        if (src := m.get(key)) is not None:
            res: Obj = {"name": src.get("name", ""), "current": _value_status(
                average_value=src.get("currentAverageValue") or _ZERO,
                utilization=src.get("currentAverageUtilization"))}
            if key == "containerResource":
                res["container"] = src.get("container", "")
            out[key] = res
    if (src := m.get("external")) is not None:
        out["external"] = {
            "metric": _ident(src.get("metricName"), src.get("metricSelector")),
            "current": _value_status(value=src.get("currentValue") or _ZERO,
                                     average_value=src.get("currentAverageValue")),
        }
    return out


def _take_json(annotations: dict[str, str], key: str) -> Any:
    """Pop and decode an annotation; a malformed one stays where it is and yields None."""
    raw = annotations.get(key)
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    del annotations[key]
    return value


@converter("autoscaling", "HorizontalPodAutoscaler", "v1", "v2")
def hpa_v1_to_v2(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = copy.deepcopy(obj.get("metadata") or {})
    out: Obj = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": meta}
    v2spec: Obj = {"scaleTargetRef": _ref_to_v2(spec.get("scaleTargetRef"))}
    _put(v2spec, "minReplicas", spec.get("minReplicas"))
    v2spec["maxReplicas"] = spec.get("maxReplicas", 0)
    metrics: list[Obj] = []
    cpu = spec.get("targetCPUUtilizationPercentage")
    if cpu is not None:
        metrics.append(_cpu_utilization_metric(cpu))

    v2status: Obj = {}
    for key in ("observedGeneration", "lastScaleTime"):
        _put(v2status, key, status.get(key))
    _put(v2status, "currentReplicas", status.get("currentReplicas"))
    v2status["desiredReplicas"] = status.get("desiredReplicas", 0)
    current_cpu = status.get("currentCPUUtilizationPercentage")
    if current_cpu is not None:
        v2status["currentMetrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization": current_cpu}}}]

    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        others = _take_json(annotations, METRICS_ANNOTATION)
        if isinstance(others, list):
            metrics = [_metric_spec_to_v2(m) for m in others] + metrics
        current = _take_json(annotations, CURRENT_METRICS_ANNOTATION)
        if isinstance(current, list):
            v2status["currentMetrics"] = [_metric_status_to_v2(m) for m in current]
        conditions = _take_json(annotations, CONDITIONS_ANNOTATION)
        if isinstance(conditions, list):
            v2status["conditions"] = conditions
        behavior = _take_json(annotations, BEHAVIOR_ANNOTATION)
        if isinstance(behavior, dict) and behavior:
            v2spec["behavior"] = behavior
        if not annotations:
            del meta["annotations"]
    if not metrics:
        metrics = [_cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]
    v2spec["metrics"] = metrics
    out["spec"] = v2spec
    if "status" in obj or len(v2status) > 1:
        out["status"] = v2status
    return out
