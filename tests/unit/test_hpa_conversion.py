"""HorizontalPodAutoscaler: v1 <-> v2 conversion, defaults and validation."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from kubeling.api.conversion import from_storage, to_storage
from kubeling.api.defaults import apply_defaults
from kubeling.api.hpa_conversion import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    METRICS_ANNOTATION,
)
from kubeling.api.kinds import Kind, by_kind
from kubeling.api.validation import validate_create

Obj = dict[str, Any]


def _hpa_kind() -> Kind:
    kind = by_kind("autoscaling", "HorizontalPodAutoscaler")
    assert kind is not None
    return kind


HPA = _hpa_kind()

REF = {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}
MEMORY = {"type": "Resource", "resource": {
    "name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}}
PODS = {"type": "Pods", "pods": {
    "metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
CPU = {"type": "Resource", "resource": {
    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}


def v1_hpa(**spec: Any) -> Obj:
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
            "spec": {"scaleTargetRef": REF, "maxReplicas": 5, **spec}}


def v2_hpa(**spec: Any) -> Obj:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
            "spec": {"scaleTargetRef": REF, "maxReplicas": 5, **spec}}


def test_v1_cpu_target_becomes_a_v2_metric() -> None:
    v2 = to_storage(HPA, v1_hpa(minReplicas=2, targetCPUUtilizationPercentage=50), "v1")
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"] == {"scaleTargetRef": REF, "minReplicas": 2, "maxReplicas": 5,
                          "metrics": [{"type": "Resource", "resource": {
                              "name": "cpu",
                              "target": {"type": "Utilization", "averageUtilization": 50}}}]}


def test_v1_without_target_gets_80_percent() -> None:
    v2 = to_storage(HPA, v1_hpa(), "v1")
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


def test_v2_to_v1_keeps_other_metrics_in_annotations() -> None:
    v2 = v2_hpa(minReplicas=1, metrics=[CPU, MEMORY, PODS])
    v2["status"] = {"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": [
        {"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization": 40, "averageValue": "120m"}}}],
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]}
    v1 = from_storage(HPA, v2, "v1")
    assert v1["spec"] == {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5,
                          "targetCPUUtilizationPercentage": 60}
    assert v1["status"] == {"currentReplicas": 2, "desiredReplicas": 3,
                            "currentCPUUtilizationPercentage": 40}
    notes = v1["metadata"]["annotations"]
    assert orjson.loads(notes[METRICS_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "500Mi"}},
        {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}]
    assert orjson.loads(notes[CURRENT_METRICS_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 40,
                                          "currentAverageValue": "120m"}}]
    assert orjson.loads(notes[CONDITIONS_ANNOTATION]) == v2["status"]["conditions"]
    assert "annotations" not in v2["metadata"]


def test_v2_v1_v2_keeps_every_metric() -> None:
    v2 = v2_hpa(minReplicas=1, metrics=[MEMORY, PODS, CPU],
                behavior={"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [
                    {"type": "Pods", "value": 1, "periodSeconds": 30}]}})
    back = to_storage(HPA, from_storage(HPA, v2, "v1"), "v1")
    assert back["spec"] == v2["spec"]
    assert "annotations" not in back["metadata"]


@pytest.mark.parametrize("extra", [
    {},
    {"targetCPUUtilizationPercentage": 70},
    {"minReplicas": 3},
])
def test_v1_v2_v1_round_trip(extra: dict[str, Any]) -> None:
    v1 = v1_hpa(**extra)
    v1["metadata"]["annotations"] = {
        "team": "a",
        METRICS_ANNOTATION: orjson.dumps([
            {"type": "External", "external": {"metricName": "queue", "targetValue": "30"}},
            {"type": "Object", "object": {
                "target": {"kind": "Service", "name": "front"}, "metricName": "rps",
                "targetValue": "1k"}}]).decode(),
        BEHAVIOR_ANNOTATION: orjson.dumps({"scaleUp": {"selectPolicy": "Min"}}).decode(),
    }
    original = copy.deepcopy(v1)
    v2 = to_storage(HPA, v1, "v1")
    assert v1 == original
    assert [m["type"] for m in v2["spec"]["metrics"]][:2] == ["External", "Object"]
    assert v2["spec"]["metrics"][0]["external"] == {
        "metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}
    assert v2["spec"]["behavior"] == {"scaleUp": {"selectPolicy": "Min"}}
    assert v2["metadata"]["annotations"] == {"team": "a"}
    again = from_storage(HPA, v2, "v1")
    assert again["spec"] == v1["spec"]
    assert {k: orjson.loads(v) if k.startswith("autoscaling") else v
            for k, v in again["metadata"]["annotations"].items()} == {
        k: orjson.loads(v) if k.startswith("autoscaling") else v
        for k, v in v1["metadata"]["annotations"].items()}


def test_v1_status_round_trip() -> None:
    v1 = v1_hpa(targetCPUUtilizationPercentage=50)
    v1["status"] = {"currentReplicas": 1, "desiredReplicas": 2,
                    "currentCPUUtilizationPercentage": 75}
    v2 = to_storage(HPA, v1, "v1")
    assert v2["status"]["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 75}}}]
    assert from_storage(HPA, v2, "v1")["status"] == v1["status"]


def test_defaults() -> None:
    hpa = v2_hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 30}})
    apply_defaults(HPA, hpa)
    spec = hpa["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"]["scaleUp"] == {
        "stabilizationWindowSeconds": 0, "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                     {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert spec["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 30, "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


CASES = [
    ("min replicas", {"minReplicas": 0}, (
        "spec.minReplicas", "FieldValueInvalid",
        "Invalid value: 0: must be greater than or equal to 1")),
    ("max below min", {"minReplicas": 4, "maxReplicas": 2}, (
        "spec.maxReplicas", "FieldValueInvalid",
        "Invalid value: 2: must be greater than or equal to `minReplicas`")),
    ("no max", {"maxReplicas": 0}, (
        "spec.maxReplicas", "FieldValueInvalid", "Invalid value: 0: must be greater than 0")),
    ("no kind", {"scaleTargetRef": {"name": "web"}}, (
        "spec.scaleTargetRef.kind", "FieldValueRequired", "Required value")),
    ("slash in name", {"scaleTargetRef": {"kind": "Deployment", "name": "a/b"}}, (
        "spec.scaleTargetRef.name", "FieldValueInvalid",
        "Invalid value: \"a/b\": may not contain '/'")),
    ("bad metric type", {"metrics": [{"type": "Magic"}]}, (
        "spec.metrics[0].type", "FieldValueNotSupported",
        'Unsupported value: "Magic": supported values: "ContainerResource", "External", '
        '"Object", "Pods", "Resource"')),
    ("missing source", {"metrics": [{"type": "Pods"}]}, (
        "spec.metrics[0].pods", "FieldValueRequired",
        "Required value: must populate information for the given metric source")),
    ("zero utilization", {"metrics": [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]}, (
        "spec.metrics[0].resource.target.averageUtilization", "FieldValueInvalid",
        "Invalid value: 0: must be greater than 0")),
    ("negative quantity", {"metrics": [{"type": "Pods", "pods": {
        "metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "-1"}}}]},
     ("spec.metrics[0].pods.target.averageValue", "FieldValueInvalid",
      'Invalid value: "-1": must be positive')),
    ("policy period", {"behavior": {"scaleUp": {"policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 4000}]}}}, (
        "spec.behavior.scaleUp.policies[0].periodSeconds", "FieldValueInvalid",
        "Invalid value: 4000: must be less than or equal to 1800")),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_rejects(spec: dict[str, Any], expected: tuple[str, str, str]) -> None:
    hpa = v2_hpa(**spec)
    apply_defaults(HPA, hpa)
    causes = [(c.get("field", ""), c["reason"], c["message"])
              for c in validate_create(HPA, hpa)]
    assert expected in causes


def test_valid_hpa_passes() -> None:
    hpa = v2_hpa(metrics=[CPU, MEMORY, PODS])
    apply_defaults(HPA, hpa)
    assert validate_create(HPA, hpa) == []
