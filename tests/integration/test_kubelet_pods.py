"""Pod workers over a real registry and real host processes: what a user sees in the API.

The pieces the lead's ``Agent`` wires are wired the same way here: informers on the pods
bound to the node, the status manager, volumes, probes and the pod workers.
"""


from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from kubeling.api.errors import StatusError
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer, Informers
from kubeling.client.inprocess import InProcessClient
from kubeling.client.interface import Obj
from kubeling.kubelet.context import KubeletContext, KubeletOptions
from kubeling.kubelet.podworkers import PodWorkers
from kubeling.kubelet.probes import ProbeManager
from kubeling.kubelet.status import StatusManager
from kubeling.kubelet.volumes import VolumeManager
from kubeling.runtime import RuntimeOptions, open_runtime
from tests.apiharness import client, kind, node, running_registry
from tests.cluster import wait_for_async

PODS = kind("", "pods")
NODES = kind("", "nodes")
EVENTS = kind("", "events")
NODE = "n1"


class Objects:
    def __init__(self, informers: Informers) -> None:
        self.cms = informers.informer(("", "configmaps"))
        self.secrets = informers.informer(("", "secrets"))

    def configmap(self, namespace: str, name: str) -> Obj | None:
        return self.cms.get(namespace, name)

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self.secrets.get(namespace, name)

    def pvc(self, namespace: str, name: str) -> Obj | None:
        return None

    def pv(self, name: str) -> Obj | None:
        return None

    def node(self) -> Obj | None:
        return None


@dataclass
class Kubelet:
    client: InProcessClient
    ctx: KubeletContext
    workers: PodWorkers
    status: StatusManager
    pods: Informer

    async def create(self, name: str, containers: list[Obj], **spec: Any) -> Obj:
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": NODE, "containers": containers, **spec}}
        return await self.client.create(PODS, "default", body)

    async def pod(self, name: str) -> Obj:
        return await self.client.get(PODS, "default", name)

    async def events(self, name: str) -> list[tuple[str, str, str]]:
        await self.ctx.recorder.flush()
        items = (await self.client.list(EVENTS, "default")).items
        return [(e["type"], e["reason"], e["message"]) for e in items
                if e["involvedObject"]["name"] == name]


def container(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script], **extra}


@asynccontextmanager
async def kubelet(tmp_path: Path, **options: Any) -> AsyncIterator[Kubelet]:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "kubelet")
        await c.create(NODES, None, node(NODE))
        opts = KubeletOptions(node_name=NODE, root_dir=tmp_path / "agent",
                              relist_interval=0.2, housekeeping_interval=0.5, **options)
        runtime = open_runtime("process", RuntimeOptions(root_dir=opts.runtime_dir,
                                                         node_ip="127.0.0.1"))
        informers = Informers(c)
        pods = informers.informer(PODS, field_selector=f"spec.nodeName={NODE}")
        recorder = EventRecorder(c, "kubelet", host=NODE)
        ctx = KubeletContext(client=c, informers=informers, runtime=runtime, options=opts,
                             recorder=recorder, objects=Objects(informers),
                             node_ip="127.0.0.1")
        status = StatusManager(ctx)
        workers: PodWorkers | None = None

        def wake(uid: str) -> None:
            if workers is not None:
                workers.wake(uid)

        volumes = VolumeManager(ctx, wake=wake)
        probes = ProbeManager(ctx, status=status, wake=wake)
        workers = PodWorkers(ctx, volumes=volumes, probes=probes, status=status)
        informers.start()
        await informers.wait_synced()
        await workers.adopt()
        for part in (status, volumes, probes, workers):
            part.start()
        pods.add_handlers(add=workers.update, update=lambda _old, p: workers.update(p),
                          delete=lambda p: workers.remove(p["metadata"]["uid"]))
        try:
            kl = Kubelet(c, ctx, workers, status, pods)
            yield kl
        finally:
            await kl.workers.stop()
            await probes.stop()
            await volumes.stop()
            await status.stop()
            await informers.stop()
            for sb in await runtime.list_pod_sandboxes():
                await runtime.stop_pod_sandbox(sb.id)
                await runtime.remove_pod_sandbox(sb.id)
            await runtime.close()


async def _phase(k: Any, name: str) -> str:
    return str((await k.pod(name)).get("status", {}).get("phase"))


async def test_a_pod_runs_reports_its_status_and_is_deleted_gracefully(tmp_path: Path) -> None:
    async with kubelet(tmp_path) as k:
        await k.create("web", [container("c", "trap 'exit 0' TERM; echo hi; "
                                              "while true; do sleep 0.1; done")],
                       terminationGracePeriodSeconds=5)

        async def running() -> bool:
            s = (await k.pod("web")).get("status", {})
            cs = (s.get("containerStatuses") or [{}])[0]
            return s.get("phase") == "Running" and cs.get("ready") is True

        await wait_for_async("the pod Running and ready", running, timeout=10)
        pod = await k.pod("web")
        status = pod["status"]
        cs = status["containerStatuses"][0]
        assert cs["containerID"].startswith("process://")
        assert cs["started"] is True and cs["restartCount"] == 0
        assert "running" in cs["state"] and cs["state"]["running"]["startedAt"]
        assert status["hostIP"] == "127.0.0.1" and status["podIP"]
        assert status["startTime"] and status["qosClass"] == "BestEffort"
        assert [c["type"] for c in status["conditions"]] == [
            "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
            "PodScheduled"]
        assert all(c["status"] == "True" for c in status["conditions"])
        events = await k.events("web")
        assert ("Normal", "Created", "Created container: c") in events
        assert ("Normal", "Started", "Started container c") in events
        pid = (await k.ctx.runtime.list_containers())[0].pid
        assert psutil.pid_exists(pid)

        await k.client.delete(PODS, "default", "web")

        async def gone() -> bool:
            try:
                await k.pod("web")
            except StatusError as e:
                return e.code == 404
            return False

        await wait_for_async("the pod deleted for good", gone, timeout=10)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert ("Normal", "Killing", "Stopping container c") in await k.events("web")


async def test_restarted_workers_adopt_the_running_container(tmp_path: Path) -> None:
    async with kubelet(tmp_path) as k:
        await k.create("keep", [container("c", "while true; do sleep 0.1; done")])

        async def running() -> bool:
            return await _phase(k, "keep") == "Running"

        await wait_for_async("the pod Running", running, timeout=10)
        before = (await k.pod("keep"))["status"]["containerStatuses"][0]["containerID"]
        await k.workers.stop()
        fresh = PodWorkers(k.ctx, volumes=k.workers.volumes, probes=k.workers.probes,
                           status=k.status)
        await fresh.adopt()
        assert k.workers.known() <= set(fresh.adopted)
        for p in k.pods.list():
            fresh.update(p)
        fresh.start()
        k.workers = fresh
        await wait_for_async("a sync by the new workers", lambda: fresh.syncs > 0, timeout=5)
        pod = await k.pod("keep")
        cs = pod["status"]["containerStatuses"][0]
        assert cs["containerID"] == before and cs["restartCount"] == 0
        assert len(await k.ctx.runtime.list_containers()) == 1
