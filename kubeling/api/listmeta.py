"""How lists merge, and which strings are quantities: facts the client models lack.

Kubernetes declares these on its Go types (``patchStrategy``,
``patchMergeKey``, ``+listType``, ``+listMapKey``); strategic merge patch and
server-side apply both depend on them. Keys are (definition name, JSON field
name). A list not named here is atomic: patches replace it whole.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ListMeta:
    list_type: str  # "atomic" | "set" | "map"
    map_keys: tuple[str, ...] = ()
    patch_strategy: str = ""  # "" | "merge" | "merge,retainKeys"
    merge_key: str = ""


def _map(merge_key: str, *extra_keys: str, strategy: str = "merge") -> ListMeta:
    return ListMeta("map", (merge_key, *extra_keys), strategy, merge_key)


_SET_MERGE = ListMeta("set", (), "merge", "")
_CONDITIONS = _map("type")
# Conditions that Kubernetes marks atomic for apply but mergeable by type for SMP.
_ATOMIC_CONDITIONS = ListMeta("atomic", (), "merge", "type")

_CONTAINER_LISTS: dict[str, ListMeta] = {
    "ports": _map("containerPort", "protocol"),
    "env": _map("name"),
    "volumeMounts": _map("mountPath"),
    "volumeDevices": _map("devicePath"),
}

_TABLE: dict[tuple[str, str], ListMeta] = {
    ("v1.ObjectMeta", "finalizers"): _SET_MERGE,
    ("v1.ObjectMeta", "ownerReferences"): _map("uid"),
    ("v1.PodSpec", "volumes"): _map("name", strategy="merge,retainKeys"),
    ("v1.PodSpec", "initContainers"): _map("name"),
    ("v1.PodSpec", "containers"): _map("name"),
    ("v1.PodSpec", "ephemeralContainers"): _map("name"),
    ("v1.PodSpec", "imagePullSecrets"): _map("name"),
    ("v1.PodSpec", "hostAliases"): _map("ip"),
    ("v1.PodSpec", "topologySpreadConstraints"): _map("topologyKey", "whenUnsatisfiable"),
    ("v1.PodSpec", "schedulingGates"): _map("name"),
    ("v1.PodSpec", "resourceClaims"): _map("name", strategy="merge,retainKeys"),
    ("v1.PodStatus", "conditions"): _CONDITIONS,
    ("v1.PodStatus", "podIPs"): _map("ip"),
    ("v1.PodStatus", "hostIPs"): _map("ip"),
    ("v1.NodeSpec", "podCIDRs"): _SET_MERGE,
    ("v1.NodeStatus", "conditions"): _CONDITIONS,
    ("v1.NodeStatus", "addresses"): _map("type"),
    ("v1.ServiceSpec", "ports"): _map("port", "protocol"),
    ("v1.ServiceStatus", "conditions"): _CONDITIONS,
    ("v1.NamespaceStatus", "conditions"): _CONDITIONS,
    ("v1.PersistentVolumeClaimStatus", "conditions"): _CONDITIONS,
    ("v1.ReplicationControllerStatus", "conditions"): _CONDITIONS,
    ("v1.ServiceAccount", "secrets"): _map("name"),
    ("v1.DeploymentStatus", "conditions"): _CONDITIONS,
    ("v1.ReplicaSetStatus", "conditions"): _CONDITIONS,
    ("v1.StatefulSetStatus", "conditions"): _CONDITIONS,
    ("v1.DaemonSetStatus", "conditions"): _CONDITIONS,
    ("v1.JobStatus", "conditions"): _ATOMIC_CONDITIONS,
    ("v2.HorizontalPodAutoscalerStatus", "conditions"): _CONDITIONS,
    ("v1.Condition", "conditions"): _CONDITIONS,
}
for _container in ("v1.Container", "v1.EphemeralContainer"):
    for _field, _meta in _CONTAINER_LISTS.items():
        _TABLE[(_container, _field)] = _meta


def list_meta(definition: str, field: str) -> ListMeta | None:
    return _TABLE.get((definition, field))


# String fields that are int-or-string in the API (the models type them "object").
_INT_OR_STRING: set[tuple[str, str]] = {
    ("v1.RollingUpdateDeployment", "maxSurge"),
    ("v1.RollingUpdateDeployment", "maxUnavailable"),
    ("v1.RollingUpdateDaemonSet", "maxSurge"),
    ("v1.RollingUpdateDaemonSet", "maxUnavailable"),
    ("v1.RollingUpdateStatefulSetStrategy", "maxUnavailable"),
    ("v1.ServicePort", "targetPort"),
    ("v1.HTTPGetAction", "port"),
    ("v1.TCPSocketAction", "port"),
    ("v1.PodDisruptionBudgetSpec", "minAvailable"),
    ("v1.PodDisruptionBudgetSpec", "maxUnavailable"),
    ("v1.EndpointPort", "port"),
}

# Quantity-valued fields outside resource maps.
_QUANTITY: set[tuple[str, str]] = {
    ("v1.EmptyDirVolumeSource", "sizeLimit"),
    ("v1.ResourceFieldSelector", "divisor"),
    ("v2.MetricTarget", "value"),
    ("v2.MetricTarget", "averageValue"),
    ("v2.MetricValueStatus", "value"),
    ("v2.MetricValueStatus", "averageValue"),
}

# dict(str, str) fields whose values are quantities (resource lists).
_QUANTITY_MAPS: set[tuple[str, str]] = {
    ("v1.ResourceRequirements", "limits"),
    ("v1.ResourceRequirements", "requests"),
    ("v1.VolumeResourceRequirements", "limits"),
    ("v1.VolumeResourceRequirements", "requests"),
    ("v1.NodeStatus", "capacity"),
    ("v1.NodeStatus", "allocatable"),
    ("v1.PersistentVolumeSpec", "capacity"),
    ("v1.PersistentVolumeClaimStatus", "capacity"),
    ("v1.PersistentVolumeClaimStatus", "allocatedResources"),
    ("v1.ResourceQuotaSpec", "hard"),
    ("v1.ResourceQuotaStatus", "hard"),
    ("v1.ResourceQuotaStatus", "used"),
    ("v1.LimitRangeItem", "max"),
    ("v1.LimitRangeItem", "min"),
    ("v1.LimitRangeItem", "default"),
    ("v1.LimitRangeItem", "defaultRequest"),
    ("v1.LimitRangeItem", "maxLimitRequestRatio"),
    ("v1.PodSpec", "overhead"),
}


def scalar_override(definition: str, field: str) -> str | None:
    if (definition, field) in _INT_OR_STRING:
        return "int-or-string"
    if (definition, field) in _QUANTITY:
        return "quantity"
    return None


def is_quantity_map(definition: str, field: str) -> bool:
    return (definition, field) in _QUANTITY_MAPS
