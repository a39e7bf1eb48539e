"""Discovery documents: what kubectl and client-go read to resolve kinds and short names."""

from __future__ import annotations

import orjson

from kubeling.api.kinds import KINDS
from kubeling.apiserver import discovery as d


def _resource(doc: dict, name: str) -> dict:
    return next(r for r in doc["resources"] if r["name"] == name)


def test_api_versions_lists_the_core_version() -> None:
    doc = d.api_versions()
    assert doc["kind"] == "APIVersions"
    assert doc["versions"] == ["v1"]
    address = d.api_versions(server_address="10.0.0.1:6443")["serverAddressByClientCIDRs"]
    assert address == [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]


def test_group_list_prefers_autoscaling_v2() -> None:
    doc = d.api_group_list()
    assert doc["kind"] == "APIGroupList"
    groups = {g["name"]: g for g in doc["groups"]}
    assert set(groups) >= {"apps", "autoscaling", "batch", "coordination.k8s.io",
                           "discovery.k8s.io", "storage.k8s.io", "events.k8s.io"}
    autoscaling = groups["autoscaling"]
    assert [v["groupVersion"] for v in autoscaling["versions"]] == [
        "autoscaling/v2", "autoscaling/v1"]
    assert autoscaling["preferredVersion"] == {"groupVersion": "autoscaling/v2", "version": "v2"}
    assert [g["name"] for g in doc["groups"]][:2] == ["apps", "events.k8s.io"]


def test_api_group_and_unknown_group() -> None:
    assert d.api_group("apps")["kind"] == "APIGroup"  # type: ignore[index]
    assert d.api_group("nope.example.com") is None
    assert d.api_resource_list("apps", "v9") is None


def test_core_resource_list_matches_kube_apiserver_shape() -> None:
    doc = d.api_resource_list("", "v1")
    assert doc is not None
    assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == "v1"
    assert "apiVersion" not in doc
    pods = _resource(doc, "pods")
    assert pods["singularName"] == "pod" and pods["namespaced"] is True
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert pods["storageVersionHash"] == "xPOwRZ+Yhw8="
    assert sorted(pods["verbs"]) == ["create", "delete", "deletecollection", "get", "list",
                                     "patch", "update", "watch"]
    assert _resource(doc, "pods/status")["verbs"] == ["get", "patch", "update"]
    assert _resource(doc, "pods/log")["kind"] == "Pod"
    binding = _resource(doc, "pods/binding")
    assert (binding["kind"], binding["verbs"]) == ("Binding", ["create"])
    eviction = _resource(doc, "pods/eviction")
    assert (eviction["group"], eviction["version"], eviction["kind"]) == ("policy", "v1",
                                                                         "Eviction")
    assert _resource(doc, "pods/exec")["kind"] == "PodExecOptions"
    assert _resource(doc, "namespaces")["namespaced"] is False
    names = [r["name"] for r in doc["resources"]]
    assert names == sorted(names)


def test_scale_subresources_answer_with_autoscaling_v1_scale() -> None:
    doc = d.api_resource_list("apps", "v1")
    assert doc is not None and doc["apiVersion"] == "v1"
    scale = _resource(doc, "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert scale["verbs"] == ["get", "patch", "update"]
    assert _resource(doc, "deployments")["shortNames"] == ["deploy"]


def test_every_kind_and_short_name_is_discoverable() -> None:
    for k in KINDS:
        for v in k.versions:
            doc = d.api_resource_list(k.group, v)
            assert doc is not None
            entry = _resource(doc, k.resource)
            assert entry["kind"] == k.kind
            assert entry.get("shortNames", []) == list(k.short_names)


def test_aggregated_discovery_for_apis() -> None:
    doc = d.aggregated_discovery(False)
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    groups = {g["metadata"]["name"]: g for g in doc["items"]}
    assert [v["version"] for v in groups["autoscaling"]["versions"]] == ["v2", "v1"]
    apps_v1 = groups["apps"]["versions"][0]
    assert apps_v1["freshness"] == "Current"
    deploy = next(r for r in apps_v1["resources"] if r["resource"] == "deployments")
    assert deploy["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deploy["scope"] == "Namespaced" and deploy["singularResource"] == "deployment"
    assert deploy["shortNames"] == ["deploy"] and deploy["categories"] == ["all"]
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    orjson.dumps(doc)


def test_aggregated_discovery_for_the_legacy_group() -> None:
    doc = d.aggregated_discovery(True)
    (core,) = doc["items"]
    assert "name" not in core["metadata"]
    resources = {r["resource"]: r for r in core["versions"][0]["resources"]}
    assert resources["nodes"]["scope"] == "Cluster"
    assert resources["services"]["shortNames"] == ["svc"]
    assert resources["configmaps"]["shortNames"] == ["cm"]


def test_accept_header_negotiation() -> None:
    kubectl = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
               "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
               "application/json")
    assert d.wants_aggregated(kubectl)
    assert d.wants_aggregated(d.AGGREGATED_MEDIA_TYPE)
    assert not d.wants_aggregated("application/json, */*")
    assert not d.wants_aggregated(None)
