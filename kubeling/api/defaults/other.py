"""Defaults of the small groups: EndpointSlice ports and StorageClass policies.

Lease and events.k8s.io Event have no defaults.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.defaults import defaulter

Obj = dict[str, Any]


@defaulter("discovery.k8s.io", "EndpointSlice")
def default_endpoint_slice(obj: Obj) -> None:
    for port in obj.get("ports") or []:
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


@defaulter("storage.k8s.io", "StorageClass")
def default_storage_class(obj: Obj) -> None:
    if not obj.get("reclaimPolicy"):
        obj["reclaimPolicy"] = "Delete"
    if not obj.get("volumeBindingMode"):
        obj["volumeBindingMode"] = "Immediate"
