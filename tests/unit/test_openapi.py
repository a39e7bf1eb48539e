"""OpenAPI documents: what kubectl explain, apply and field validation read from them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kubeling.api.kinds import KINDS
from kubeling.apiserver import openapi as oa


def _v3(group: str, version: str) -> dict[str, Any]:
    data = oa.openapi_v3_document(group, version)
    assert data is not None
    return orjson.loads(data)


def _resolve(doc: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    if "allOf" in prop:
        prop = prop["allOf"][0]
    ref = prop["$ref"].rsplit("/", 1)[1]
    return doc["components"]["schemas"][ref]


def test_index_points_at_every_group_version_with_its_hash() -> None:
    index = oa.openapi_v3_index()["paths"]
    assert set(index) == {"api/v1", "apis/apps/v1", "apis/autoscaling/v1", "apis/autoscaling/v2",
                          "apis/batch/v1", "apis/coordination.k8s.io/v1",
                          "apis/discovery.k8s.io/v1", "apis/events.k8s.io/v1",
                          "apis/storage.k8s.io/v1"}
    url = index["apis/apps/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/apis/apps/v1?hash={oa.openapi_v3_hash('apps', 'v1')}"
    assert oa.openapi_v3_document("nope", "v1") is None
    assert oa.group_version_of("apis/apps/v1") == ("apps", "v1")
    assert oa.group_version_of("api/v1") == ("", "v1")


def test_documents_are_cached_bytes() -> None:
    assert oa.openapi_v3_document("", "v1") is oa.openapi_v3_document("", "v1")
    assert oa.openapi_v2_document() is oa.openapi_v2_document()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.group or 'core'}.{k.kind}")
def test_every_kind_has_a_schema_with_its_gvk_and_a_patch_with_field_validation(kind) -> None:
    for version in kind.versions:
        doc = _v3(kind.group, version)
        gvk = {"group": kind.group, "kind": kind.kind, "version": version}
        schemas = [s for s in doc["components"]["schemas"].values()
                   if gvk in s.get("x-kubernetes-group-version-kind", [])]
        assert len(schemas) == 1
        assert {"apiVersion", "kind", "metadata"} <= set(schemas[0]["properties"])
        patches = [item["patch"] for item in doc["paths"].values()
                   if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == gvk]
        assert patches
        for op in patches:
            assert "fieldValidation" in [p["name"] for p in op["parameters"]]


def test_schema_names_follow_kubernetes() -> None:
    schemas = _v3("", "v1")["components"]["schemas"]
    for name in ("io.k8s.api.core.v1.Pod", "io.k8s.api.core.v1.PodSpec",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                 "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
                 "io.k8s.apimachinery.pkg.api.resource.Quantity", "io.k8s.api.core.v1.Event"):
        assert name in schemas
    apps = _v3("apps", "v1")["components"]["schemas"]
    assert "io.k8s.api.apps.v1.Deployment" in apps
    assert "io.k8s.api.autoscaling.v1.Scale" in apps
    assert "io.k8s.api.core.v1.Container" in apps
    storage = _v3("storage.k8s.io", "v1")["components"]["schemas"]
    assert "io.k8s.api.core.v1.TopologySelectorTerm" in storage
    assert "io.k8s.api.events.v1.Event" in _v3("events.k8s.io", "v1")["components"]["schemas"]


def test_every_reference_resolves_within_its_document() -> None:
    for path in oa.openapi_v3_index()["paths"]:
        gv = oa.group_version_of(path)
        assert gv is not None
        doc = _v3(*gv)
        schemas = doc["components"]["schemas"]
        for ref in _refs(doc):
            assert ref.startswith("#/components/schemas/")
            assert ref.rsplit("/", 1)[1] in schemas, (path, ref)


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if "$ref" in value else []
        return own + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_list_extensions_drive_strategic_merge_patch() -> None:
    doc = _v3("", "v1")
    spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]
    containers = spec["properties"]["containers"]
    assert containers["type"] == "array"
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    volumes = spec["properties"]["volumes"]
    assert volumes["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    container = _resolve(doc, containers["items"])
    assert container["required"] == ["name"]
    ports = container["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]


def test_int_or_string_and_quantity_are_declared_as_kubernetes_declares_them() -> None:
    apps = _v3("apps", "v1")
    schemas = apps["components"]["schemas"]
    surge = schemas["io.k8s.api.apps.v1.RollingUpdateDeployment"]["properties"]["maxSurge"]
    assert _resolve(apps, surge) == schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    limits = schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"]["$ref"].endswith("resource.Quantity")
    v2 = orjson.loads(oa.openapi_v2_document())
    assert v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "description": v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"][
            "description"], "type": "string", "format": "int-or-string"}


def test_explain_finds_the_kind_from_its_paths_and_reads_descriptions() -> None:
    doc = _v3("apps", "v1")
    op = doc["paths"]["/apis/apps/v1/deployments"]["get"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment",
                                                     "version": "v1"}
    deploy = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deploy["description"].startswith("Deployment enables declarative updates")
    assert deploy["properties"]["spec"]["description"]
    spec = _resolve(doc, deploy["properties"]["spec"])
    assert "selector" in spec["required"] and "template" in spec["required"]
    assert spec["properties"]["replicas"] == {
        "description": spec["properties"]["replicas"]["description"], "type": "integer",
        "format": "int32"}


def test_operations_carry_their_query_parameters() -> None:
    paths = _v3("", "v1")["paths"]
    pods = paths["/api/v1/namespaces/{namespace}/pods"]
    assert pods["get"]["x-kubernetes-action"] == "list"
    assert {"watch", "labelSelector", "limit", "continue"} <= {
        p["name"] for p in pods["get"]["parameters"]}
    assert {"dryRun", "fieldManager", "fieldValidation"} <= {
        p["name"] for p in pods["post"]["parameters"]}
    assert [p["name"] for p in pods["parameters"]] == ["namespace", "pretty"]
    item = paths["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert "application/strategic-merge-patch+json" in item["patch"]["requestBody"]["content"]
    assert "force" in [p["name"] for p in item["patch"]["parameters"]]
    assert "propagationPolicy" in [p["name"] for p in item["delete"]["parameters"]]
    log = paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]
    assert "tailLines" in [p["name"] for p in log["parameters"]]
    scale_path = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"
    scale = _v3("apps", "v1")["paths"][scale_path]
    assert scale["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"


def test_swagger_v2_document() -> None:
    doc = orjson.loads(oa.openapi_v2_document())
    assert doc["swagger"] == "2.0"
    pod = doc["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod",
                                                       "version": "v1"}]
    assert pod["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert patch["parameters"][0]["in"] == "body"
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    hpa = doc["definitions"]["io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"]
    assert hpa["x-kubernetes-group-version-kind"][0]["version"] == "v2"
    for ref in _refs(doc):
        assert ref.rsplit("/", 1)[1] in doc["definitions"], ref
