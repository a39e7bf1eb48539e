"""A real registry over a real SQLite store in a temporary folder, without HTTP.

Integration tests of clients, informers, controllers and the scheduler use it
with the in-process client: the same admission and validation as the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kubeling.api import kinds
from kubeling.api.kinds import Kind
from kubeling.client.inprocess import InProcessClient
from kubeling.registry.registry import Registry
from kubeling.storage import open_store
from kubeling.utils.tasks import cancel_all


@asynccontextmanager
async def running_registry(folder: Path) -> AsyncIterator[Registry]:
    store = open_store(f"sqlite://{folder / 'state.db'}")
    registry = Registry(store)
    await registry.start()
    try:
        yield registry
    finally:
        await cancel_all()
        await registry.stop()
        await store.close()


def kind(group: str, resource: str) -> Kind:
    k = kinds.by_resource(group, resource)
    assert k is not None
    return k


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
         labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None,
         ) -> dict[str, Any]:
    """A Ready node as a node agent would register it."""
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "kubernetes.io/os": "linux",
                                                  **(labels or {})}},
            "spec": spec,
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}]}}


def client(registry: Registry, manager: str = "test") -> InProcessClient:
    return InProcessClient(registry, manager=manager)
