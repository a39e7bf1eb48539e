"""The kinds registry: every resource the API serves, and how it is named.

One :class:`Kind` per resource carries what discovery, routing, storage keys,
kubectl's short names and categories need. A resource served in several
versions (autoscaling v1 and v2) is one entry with several ``versions``: it is
stored once, in ``storage_version``, and converted at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Kind:
    group: str
    versions: tuple[str, ...]
    kind: str
    resource: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # Names are DNS-1123 subdomains unless the kind says label (namespaces,
    # services) or path segment (a few kinds accept any path-safe name).
    name_rule: str = "subdomain"
    storage_version: str = ""
    # Kinds whose spec is tracked by metadata.generation.
    has_generation: bool = False
    # (group, resource) of another kind whose storage this kind shares.
    storage_of: tuple[str, str] | tuple[()] = ()

    @property
    def preferred_version(self) -> str:
        return self.versions[0]

    @property
    def stored_version(self) -> str:
        return self.storage_version or self.versions[0]

    @property
    def group_version(self) -> str:
        return api_version(self.group, self.preferred_version)

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def qualified_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def key_prefix(self, namespace: str | None = None) -> str:
        """Storage key prefix: ``/registry/<group>/<resource>/[<namespace>/]``."""
        group, resource = self.storage_of or (self.group, self.resource)
        base = f"/registry/{group or 'core'}/{resource}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        return f"{self.key_prefix(namespace)}{name}"


@dataclass(frozen=True)
class GroupInfo:
    name: str
    versions: tuple[str, ...] = field(default_factory=tuple)


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


_WORKLOAD = ("all",)
_SCALE = ("scale",)

KINDS: tuple[Kind, ...] = (
    # core/v1
    Kind("", ("v1",), "Namespace", "namespaces", "namespace", False, ("ns",),
         subresources=("status", "finalize"), name_rule="label"),
    Kind("", ("v1",), "Pod", "pods", "pod", True, ("po",), _WORKLOAD,
         subresources=("status", "binding", "log", "exec", "attach", "portforward",
                       "proxy", "ephemeralcontainers", "eviction")),
    Kind("", ("v1",), "Node", "nodes", "node", False, ("no",), subresources=("status", "proxy")),
    Kind("", ("v1",), "Service", "services", "service", True, ("svc",), _WORKLOAD,
         subresources=("status", "proxy"), name_rule="dns1035",
         verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update",
                "watch")),
    Kind("", ("v1",), "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    Kind("", ("v1",), "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    Kind("", ("v1",), "Secret", "secrets", "secret", True),
    Kind("", ("v1",), "Event", "events", "event", True, ("ev",)),
    Kind("", ("v1",), "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",),
         subresources=("token",)),
    Kind("", ("v1",), "ReplicationController", "replicationcontrollers",
         "replicationcontroller", True, ("rc",), _WORKLOAD, subresources=("status", "scale"),
         has_generation=True),
    Kind("", ("v1",), "PersistentVolume", "persistentvolumes", "persistentvolume", False,
         ("pv",), subresources=("status",)),
    Kind("", ("v1",), "PersistentVolumeClaim", "persistentvolumeclaims",
         "persistentvolumeclaim", True, ("pvc",), subresources=("status",)),
    Kind("", ("v1",), "ResourceQuota", "resourcequotas", "resourcequota", True, ("quota",),
         subresources=("status",)),
    Kind("", ("v1",), "LimitRange", "limitranges", "limitrange", True, ("limits",)),
    # apps/v1
    Kind("apps", ("v1",), "Deployment", "deployments", "deployment", True, ("deploy",),
         _WORKLOAD, subresources=("status", "scale"), has_generation=True),
    Kind("apps", ("v1",), "ReplicaSet", "replicasets", "replicaset", True, ("rs",), _WORKLOAD,
         subresources=("status", "scale"), has_generation=True),
    Kind("apps", ("v1",), "StatefulSet", "statefulsets", "statefulset", True, ("sts",),
         _WORKLOAD, subresources=("status", "scale"), has_generation=True),
    Kind("apps", ("v1",), "DaemonSet", "daemonsets", "daemonset", True, ("ds",), _WORKLOAD,
         subresources=("status",), has_generation=True),
    Kind("apps", ("v1",), "ControllerRevision", "controllerrevisions", "controllerrevision",
         True),
    # autoscaling
    Kind("autoscaling", ("v2", "v1"), "HorizontalPodAutoscaler", "horizontalpodautoscalers",
         "horizontalpodautoscaler", True, ("hpa",), _WORKLOAD, subresources=("status",),
         storage_version="v2", has_generation=True),
    # batch/v1
    Kind("batch", ("v1",), "Job", "jobs", "job", True, (), _WORKLOAD, subresources=("status",),
         has_generation=True),
    Kind("batch", ("v1",), "CronJob", "cronjobs", "cronjob", True, ("cj",), _WORKLOAD,
         subresources=("status",), has_generation=True),
    # coordination.k8s.io/v1
    Kind("coordination.k8s.io", ("v1",), "Lease", "leases", "lease", True),
    # discovery.k8s.io/v1
    Kind("discovery.k8s.io", ("v1",), "EndpointSlice", "endpointslices", "endpointslice", True),
    # storage.k8s.io/v1
    Kind("storage.k8s.io", ("v1",), "StorageClass", "storageclasses", "storageclass", False,
         ("sc",)),
    # events.k8s.io/v1
    Kind("events.k8s.io", ("v1",), "Event", "events", "event", True, ("ev",),
         storage_of=("", "events")),
)

_BY_RESOURCE: dict[tuple[str, str], Kind] = {(k.group, k.resource): k for k in KINDS}
_BY_KIND: dict[tuple[str, str], Kind] = {(k.group, k.kind): k for k in KINDS}


def by_resource(group: str, resource: str) -> Kind | None:
    return _BY_RESOURCE.get((group, resource))


_BY_KEY_PREFIX: dict[str, Kind] = {k.key_prefix(): k for k in KINDS if not k.storage_of}


def by_key(key: str) -> Kind | None:
    """The kind a storage key belongs to (``/registry/apps/deployments/ns/x`` -> Deployment)."""
    parts = key.split("/", 4)
    return _BY_KEY_PREFIX.get("/".join(parts[:4]) + "/")


def storage_kind(kind: Kind) -> Kind:
    """The kind whose storage ``kind`` uses (itself, for all but events.k8s.io Events)."""
    if not kind.storage_of:
        return kind
    return _BY_RESOURCE[kind.storage_of]


def by_kind(group: str, kind: str) -> Kind | None:
    return _BY_KIND.get((group, kind))


def by_api_version(api_version_: str, kind: str) -> Kind | None:
    group, _, version = api_version_.rpartition("/")
    k = _BY_KIND.get((group, kind))
    if k is None or version not in k.versions:
        return None
    return k


def groups() -> list[GroupInfo]:
    """API groups in discovery order (the legacy core group excluded)."""
    order: list[str] = []
    versions: dict[str, list[str]] = {}
    for k in KINDS:
        if not k.group:
            continue
        if k.group not in versions:
            order.append(k.group)
            versions[k.group] = []
        for v in k.versions:
            if v not in versions[k.group]:
                versions[k.group].append(v)
    return [GroupInfo(g, tuple(versions[g])) for g in order]


def kinds_in(group: str, version: str) -> list[Kind]:
    return [k for k in KINDS if k.group == group and version in k.versions]
