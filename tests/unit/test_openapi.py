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


def _gnostic_subset() -> dict[str, Any]:
    """Message classes for the part of gnostic's OpenAPIv2.proto the test reads."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    string, boolean, message = f.TYPE_STRING, f.TYPE_BOOL, f.TYPE_MESSAGE
    messages: dict[str, list[tuple[str, int, int, str, bool]]] = {
        "Document": [("swagger", 1, string, "", False), ("info", 2, message, "Info", False),
                     ("paths", 8, message, "Paths", False),
                     ("definitions", 9, message, "Definitions", False)],
        "Info": [("title", 1, string, "", False), ("version", 2, string, "", False)],
        "Paths": [("path", 2, message, "NamedPathItem", True)],
        "NamedPathItem": [("name", 1, string, "", False), ("value", 2, message, "PathItem", False)],
        "PathItem": [("get", 2, message, "Operation", False),
                     ("patch", 8, message, "Operation", False),
                     ("parameters", 9, message, "ParametersItem", True)],
        "Operation": [("operation_id", 5, string, "", False),
                      ("consumes", 7, string, "", True),
                      ("parameters", 8, message, "ParametersItem", True),
                      ("vendor_extension", 13, message, "NamedAny", True)],
        "ParametersItem": [("parameter", 1, message, "Parameter", False)],
        "Parameter": [("body_parameter", 1, message, "BodyParameter", False),
                      ("non_body_parameter", 2, message, "NonBodyParameter", False)],
        "BodyParameter": [("name", 2, string, "", False), ("required", 4, boolean, "", False)],
        "NonBodyParameter": [("query", 3, message, "QueryParam", False),
                             ("path", 4, message, "PathParam", False)],
        "QueryParam": [("name", 4, string, "", False), ("type", 6, string, "", False)],
        "PathParam": [("required", 1, boolean, "", False), ("name", 4, string, "", False)],
        "Definitions": [("additional_properties", 1, message, "NamedSchema", True)],
        "NamedSchema": [("name", 1, string, "", False), ("value", 2, message, "Schema", False)],
        "Schema": [("ref", 1, string, "", False), ("description", 4, string, "", False),
                   ("required", 19, string, "", True), ("type", 22, message, "TypeItem", False),
                   ("items", 23, message, "ItemsItem", False),
                   ("properties", 25, message, "Properties", False),
                   ("vendor_extension", 31, message, "NamedAny", True)],
        "TypeItem": [("value", 1, string, "", True)],
        "ItemsItem": [("schema", 1, message, "Schema", True)],
        "Properties": [("additional_properties", 1, message, "NamedSchema", True)],
        "NamedAny": [("name", 1, string, "", False), ("value", 2, message, "Any", False)],
        "Any": [("yaml", 2, string, "", False)],
    }
    fd = descriptor_pb2.FileDescriptorProto(name="gnostic_subset.proto", package="openapi.v2",
                                            syntax="proto3")
    for msg_name, fields in messages.items():
        msg = fd.message_type.add(name=msg_name)
        for name, number, typ, ref, repeated in fields:
            field = msg.field.add(name=name, number=number, type=typ,
                                  label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL)
            if ref:
                field.type_name = f".openapi.v2.{ref}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"openapi.v2.{name}"))
            for name in messages}


def test_swagger_v2_protobuf_decodes_as_gnostic_document() -> None:
    classes = _gnostic_subset()
    doc = classes["Document"]()
    doc.ParseFromString(oa.openapi_v2_protobuf())
    assert doc.swagger == "2.0" and doc.info.title == "Kubernetes"
    defs = {d.name: d.value for d in doc.definitions.additional_properties}
    pod = defs["io.k8s.api.core.v1.Pod"]
    gvk = {e.name: orjson.loads(e.value.yaml) for e in pod.vendor_extension}
    assert gvk["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod",
                                                       "version": "v1"}]
    props = {p.name: p.value for p in pod.properties.additional_properties}
    assert props["spec"].ref == "#/definitions/io.k8s.api.core.v1.PodSpec"
    spec = {p.name: p.value for p in defs["io.k8s.api.core.v1.PodSpec"].properties
            .additional_properties}
    containers = spec["containers"]
    assert list(containers.type.value) == ["array"]
    assert containers.items.schema[0].ref == "#/definitions/io.k8s.api.core.v1.Container"
    ext = {e.name: orjson.loads(e.value.yaml) for e in containers.vendor_extension}
    assert ext["x-kubernetes-patch-merge-key"] == "name"
    assert ext["x-kubernetes-patch-strategy"] == "merge"
    assert "containers" in defs["io.k8s.api.core.v1.PodSpec"].required
    paths = {p.name: p.value for p in doc.paths.path}
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert item.patch.operation_id == "patchAppsV1NamespacedDeployment"
    assert "application/strategic-merge-patch+json" in item.patch.consumes
    params = item.patch.parameters
    assert params[0].parameter.body_parameter.name == "body"
    assert "fieldValidation" in [p.parameter.non_body_parameter.query.name for p in params[1:]]
    path_param = item.parameters[0].parameter.non_body_parameter.path
    assert (path_param.name, path_param.required) == ("name", True)
