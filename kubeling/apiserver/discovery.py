"""API discovery documents: how kubectl and client-go learn what this server serves.

Clients resolve ``deploy`` to ``apps/v1 deployments`` before their first real
request, from one of two shapes kube-apiserver 1.32 serves: the legacy
per-group-version documents (``/api``, ``/api/v1``, ``/apis``,
``/apis/{group}``, ``/apis/{group}/{version}``) and the aggregated
``apidiscovery.k8s.io/v2`` list that kubectl 1.26+ asks for with a special
``Accept`` header. Both are derived from the kinds registry, built once and
shared; callers must not mutate the returned dicts.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from kubeling.api.kinds import KINDS, Kind, groups, kinds_in

AGGREGATED_MEDIA_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_API_VERSION = "apidiscovery.k8s.io/v2"

# kube-apiserver lists groups by priority; groups not named here follow, in registry order.
_GROUP_PRIORITY = (
    "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io",
    "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "storage.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io",
    "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io", "flowcontrol.apiserver.k8s.io",
)

_STATUS_VERBS = ("get", "patch", "update")
_CONNECT_VERBS = ("create", "get")
_PROXY_VERBS = ("create", "delete", "get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    """What a subresource answers with: its kind (in another group/version or not) and verbs."""

    name: str
    kind: str  # "" means the parent's kind
    verbs: tuple[str, ...]
    group: str | None = None  # None means the parent's group and version
    version: str | None = None


_SUBRESOURCES: dict[str, Subresource] = {
    "status": Subresource("status", "", _STATUS_VERBS),
    "scale": Subresource("scale", "Scale", _STATUS_VERBS, "autoscaling", "v1"),
    "binding": Subresource("binding", "Binding", ("create",), "", "v1"),
    "log": Subresource("log", "Pod", ("get",), "", "v1"),
    "exec": Subresource("exec", "PodExecOptions", _CONNECT_VERBS, "", "v1"),
    "attach": Subresource("attach", "PodAttachOptions", _CONNECT_VERBS, "", "v1"),
    "portforward": Subresource("portforward", "PodPortForwardOptions", _CONNECT_VERBS, "", "v1"),
    "ephemeralcontainers": Subresource("ephemeralcontainers", "", _STATUS_VERBS),
    "eviction": Subresource("eviction", "Eviction", ("create",), "policy", "v1"),
    "finalize": Subresource("finalize", "", ("update",)),
    "token": Subresource("token", "TokenRequest", ("create",), "authentication.k8s.io", "v1"),
}
_PROXY_KINDS = {"pods": "PodProxyOptions", "nodes": "NodeProxyOptions",
                "services": "ServiceProxyOptions"}


def subresource_info(kind: Kind, name: str, version: str) -> tuple[str, str, str, tuple[str, ...]]:
    """``(group, version, kind, verbs)`` of a subresource of ``kind`` served in ``version``."""
    if name == "proxy":
        return "", "v1", _PROXY_KINDS.get(kind.resource, "PodProxyOptions"), _PROXY_VERBS
    sub = _SUBRESOURCES[name]
    if sub.group is None:
        return kind.group, version, sub.kind or kind.kind, sub.verbs
    return sub.group, sub.version or "v1", sub.kind or kind.kind, sub.verbs


def storage_version_hash(kind: Kind) -> str:
    """A stable hash of the storage group/version/kind, as kube-apiserver computes it."""
    text = f"{kind.group}/{kind.stored_version}/{kind.kind}"
    return base64.b64encode(hashlib.sha256(text.encode()).digest()[:8]).decode()


def _ordered_groups() -> list[tuple[str, tuple[str, ...]]]:
    infos = groups()
    rank = {name: i for i, name in enumerate(_GROUP_PRIORITY)}
    ordered = sorted(enumerate(infos), key=lambda p: (rank.get(p[1].name, len(rank)), p[0]))
    return [(info.name, info.versions) for _, info in ordered]


def _group_version(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


# -- legacy discovery ------------------------------------------------------------------------


@cache
def api_versions(*, server_address: str = "") -> dict[str, Any]:
    """``GET /api``: the legacy core group's versions."""
    cidrs = [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}] if server_address else []
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": cidrs}


def _api_group_body(name: str, versions: tuple[str, ...]) -> dict[str, Any]:
    gvs = [_group_version(name, v) for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


@cache
def api_group_list() -> dict[str, Any]:
    """``GET /apis``: every named group with its versions, preferred first."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_api_group_body(name, versions) for name, versions in _ordered_groups()],
    }


@cache
def api_group(group: str) -> dict[str, Any] | None:
    """``GET /apis/{group}``; None when the group is not served."""
    for name, versions in _ordered_groups():
        if name == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_api_group_body(name, versions)}
    return None


def _legacy_resources(kind: Kind, version: str) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": kind.resource,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": list(kind.verbs),
    }
    if kind.short_names:
        main["shortNames"] = list(kind.short_names)
    if kind.categories:
        main["categories"] = list(kind.categories)
    main["storageVersionHash"] = storage_version_hash(kind)
    out = [main]
    for sub in kind.subresources:
        group, sub_version, sub_kind, verbs = subresource_info(kind, sub, version)
        entry: dict[str, Any] = {
            "name": f"{kind.resource}/{sub}",
            "singularName": "",
            "namespaced": kind.namespaced,
        }
        if (group, sub_version) != (kind.group, version):
            entry["group"] = group
            entry["version"] = sub_version
        entry["kind"] = sub_kind
        entry["verbs"] = list(verbs)
        out.append(entry)
    return out


@cache
def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` (group ``""``) or ``/apis/{group}/{version}``; None when not served."""
    served = kinds_in(group, version)
    if not served:
        return None
    resources: list[dict[str, Any]] = []
    for kind in served:
        resources.extend(_legacy_resources(kind, version))
    resources.sort(key=lambda r: r["name"])
    doc: dict[str, Any] = {"kind": "APIResourceList"}
    if group:
        doc["apiVersion"] = "v1"
    doc["groupVersion"] = f"{group}/{version}" if group else version
    doc["resources"] = resources
    return doc


# -- aggregated discovery (apidiscovery.k8s.io/v2) --------------------------------------------


def _aggregated_resource(kind: Kind, version: str) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resource": kind.resource,
        "responseKind": {"group": kind.group, "version": version, "kind": kind.kind},
        "scope": "Namespaced" if kind.namespaced else "Cluster",
        "singularResource": kind.singular,
        "verbs": list(kind.verbs),
    }
    if kind.short_names:
        res["shortNames"] = list(kind.short_names)
    if kind.categories:
        res["categories"] = list(kind.categories)
    subs = []
    for sub in kind.subresources:
        group, sub_version, sub_kind, verbs = subresource_info(kind, sub, version)
        subs.append({
            "subresource": sub,
            "responseKind": {"group": group, "version": sub_version, "kind": sub_kind},
            "verbs": list(verbs),
        })
    if subs:
        res["subresources"] = subs
    return res


def _aggregated_group(name: str, versions: tuple[str, ...]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"creationTimestamp": None}
    if name:
        metadata = {"name": name, "creationTimestamp": None}
    return {
        "metadata": metadata,
        "versions": [
            {
                "version": v,
                "resources": [
                    _aggregated_resource(k, v)
                    for k in sorted(kinds_in(name, v), key=lambda k: k.resource)
                ],
                "freshness": "Current",
            }
            for v in versions
        ],
    }


@cache
def aggregated_discovery(legacy: bool) -> dict[str, Any]:
    """The APIGroupDiscoveryList for ``/api`` (``legacy=True``) or ``/apis``.

    Serve it with Content-Type :data:`AGGREGATED_MEDIA_TYPE` when the request's
    Accept names that media type; otherwise serve the legacy document.
    """
    if legacy:
        core_versions = tuple(dict.fromkeys(v for k in KINDS if not k.group for v in k.versions))
        items = [_aggregated_group("", core_versions)]
    else:
        items = [_aggregated_group(name, versions) for name, versions in _ordered_groups()]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": AGGREGATED_API_VERSION,
        "metadata": {},
        "items": items,
    }


def wants_aggregated(accept: str | None) -> bool:
    """True when an Accept header asks for the aggregated discovery list (v2)."""
    if not accept:
        return False
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if {"g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"} <= params:
            return True
    return False
