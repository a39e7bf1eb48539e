"""Per-kind behaviour of writes: what a create resets, what an update keeps.

Kubernetes gives each resource a strategy (PrepareForCreate,
PrepareForUpdate, AllowCreateOnUpdate, ...). Ours are data plus a few
functions: status is owned by the status subresource, spec by the main
resource; generation moves only when the spec does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeling.api.defaults.core import qos_class
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.registry.admission import default_tolerations

Obj = dict[str, Any]

# Top-level fields that are not "spec" for generation purposes.
_NOT_SPEC = {"apiVersion", "kind", "metadata", "status"}


@dataclass(frozen=True)
class Strategy:
    # The main resource's writes keep the old status; status writes keep the rest.
    status_subresource: bool = False
    allow_create_on_update: bool = False
    # Fields (top level) owned by the status subresource.
    status_fields: tuple[str, ...] = ("status",)
    reset_on_create: Callable[[Obj], None] | None = None
    # Whether a delete returns the object (True) or a Status (False).
    return_deleted_object: bool = False
    # Whether status writes may also change annotations (Deployments: the controller records
    # the revision annotation with the status it computed, as Kubernetes lets it).
    status_annotations: bool = False


def _pod_create(obj: Obj) -> None:
    default_tolerations(obj)
    spec = obj.get("spec") or {}
    status: Obj = {"phase": "Pending", "qosClass": qos_class(spec)}
    obj["status"] = status


def _namespace_create(obj: Obj) -> None:
    obj["status"] = {"phase": "Active"}
    spec = obj.setdefault("spec", {})
    fins = spec.get("finalizers") or []
    if "kubernetes" not in fins:
        fins = [*fins, "kubernetes"]
    spec["finalizers"] = fins


def _clear_status(obj: Obj) -> None:
    obj.pop("status", None)


def _pvc_create(obj: Obj) -> None:
    obj["status"] = {"phase": "Pending"}


def _pv_create(obj: Obj) -> None:
    obj["status"] = {"phase": "Pending"}


def _deployment_like(obj: Obj) -> None:
    obj["status"] = {}


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("", "Pod"): Strategy(True, reset_on_create=_pod_create, return_deleted_object=True),
    ("", "Namespace"): Strategy(True, reset_on_create=_namespace_create,
                                return_deleted_object=True),
    ("", "Node"): Strategy(True),
    ("", "Service"): Strategy(True, reset_on_create=_clear_status),
    ("", "Endpoints"): Strategy(allow_create_on_update=True),
    ("", "Event"): Strategy(allow_create_on_update=True),
    ("", "ReplicationController"): Strategy(True, reset_on_create=_clear_status),
    ("", "PersistentVolume"): Strategy(True, reset_on_create=_pv_create),
    ("", "PersistentVolumeClaim"): Strategy(True, reset_on_create=_pvc_create),
    ("", "ResourceQuota"): Strategy(True, reset_on_create=_clear_status),
    ("apps", "Deployment"): Strategy(True, reset_on_create=_deployment_like,
                                     status_annotations=True),
    ("apps", "ReplicaSet"): Strategy(True, reset_on_create=_deployment_like),
    ("apps", "StatefulSet"): Strategy(True, reset_on_create=_deployment_like),
    ("apps", "DaemonSet"): Strategy(True, reset_on_create=_deployment_like),
    ("autoscaling", "HorizontalPodAutoscaler"): Strategy(True, reset_on_create=_clear_status),
    ("batch", "Job"): Strategy(True, reset_on_create=_clear_status),
    ("batch", "CronJob"): Strategy(True, reset_on_create=_clear_status),
    ("coordination.k8s.io", "Lease"): Strategy(allow_create_on_update=True),
    ("discovery.k8s.io", "EndpointSlice"): Strategy(allow_create_on_update=True),
    ("events.k8s.io", "Event"): Strategy(allow_create_on_update=True),
}

_DEFAULT = Strategy()


def strategy_for(kind: Kind) -> Strategy:
    return STRATEGIES.get((kind.group, kind.kind), _DEFAULT)


def spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in _NOT_SPEC}


def _keep_allocated(new: Obj, old: Obj) -> None:
    """A Service update that leaves out what the server allocated keeps it (as Kubernetes)."""
    nspec = new.get("spec")
    ospec = old.get("spec") or {}
    if not isinstance(nspec, dict):
        return
    if not nspec.get("clusterIP") and ospec.get("clusterIP"):
        nspec["clusterIP"] = ospec["clusterIP"]
        if ospec.get("clusterIPs") and not nspec.get("clusterIPs"):
            nspec["clusterIPs"] = ospec["clusterIPs"]
    external = ("NodePort", "LoadBalancer")
    if ospec.get("type") in external and nspec.get("type", "ClusterIP") not in external:
        # Leaving an external type drops what only such types have (dropTypeDependentFields).
        old_node_ports = {p.get("nodePort") for p in ospec.get("ports") or []}
        for p in nspec.get("ports") or []:
            if p.get("nodePort") in old_node_ports:
                p.pop("nodePort", None)
        if nspec.get("externalTrafficPolicy") == ospec.get("externalTrafficPolicy"):
            nspec.pop("externalTrafficPolicy", None)
        if nspec.get("healthCheckNodePort") == ospec.get("healthCheckNodePort"):
            nspec.pop("healthCheckNodePort", None)
    if nspec.get("type") in external:
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in ospec.get("ports") or []}
        for p in nspec.get("ports") or []:
            if not p.get("nodePort"):
                np = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                if np:
                    p["nodePort"] = np


def prepare_for_update(kind: Kind, new: Obj, old: Obj) -> None:
    """A write to the main resource: keep the old status, move generation if spec moved."""
    st = strategy_for(kind)
    if kind.kind == "Service" and not kind.group:
        _keep_allocated(new, old)
    if st.status_subresource:
        for f in st.status_fields:
            if f in old:
                new[f] = json_copy(old[f])
            else:
                new.pop(f, None)
    if kind.has_generation:
        gen = int((old.get("metadata") or {}).get("generation") or 1)
        if spec_of(new) != spec_of(old):
            gen += 1
        new["metadata"]["generation"] = gen


def prepare_for_status_update(kind: Kind, new: Obj, old: Obj) -> Obj:
    """A write to the status subresource: only status (and a few metadata fields) change."""
    st = strategy_for(kind)
    out = json_copy(old)
    for f in st.status_fields:
        if f in new:
            out[f] = new[f]
        else:
            out.pop(f, None)
    # Metadata stays as stored; only the resourceVersion precondition travels with it.
    new_meta = new.get("metadata") or {}
    out["metadata"]["resourceVersion"] = new_meta.get("resourceVersion")
    if st.status_annotations:
        if new_meta.get("annotations"):
            out["metadata"]["annotations"] = new_meta["annotations"]
        else:
            out["metadata"].pop("annotations", None)
    return out


def prepare_for_create(kind: Kind, obj: Obj) -> None:
    st = strategy_for(kind)
    if st.reset_on_create is not None:
        st.reset_on_create(obj)
    if kind.has_generation:
        obj["metadata"]["generation"] = 1
