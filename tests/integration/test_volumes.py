"""Volumes over a real registry and informers: API edits reach the files within seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubeling.client.informer import Informers
from kubeling.client.interface import Obj
from kubeling.kubelet.context import KubeletContext, KubeletOptions
from kubeling.kubelet.interfaces import VolumeError
from kubeling.kubelet.volumes import VolumeManager
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

CM = kind("", "configmaps")
SECRETS = kind("", "secrets")
UID = "0b0b0b0b-1111-2222-3333-444444444444"


class InformerObjects:
    def __init__(self, informers: Informers) -> None:
        self.cms = informers.informer(CM)
        self.secrets = informers.informer(SECRETS)

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


def pod(volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default", "uid": UID},
            "spec": {"volumes": volumes, "containers": [{"name": "c"}]}}


async def test_configmap_and_secret_edits_reach_the_files(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as reg:
        c = client(reg)
        await c.create(CM, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "cfg"}, "data": {"k": "v1"}})
        informers = Informers(c)
        objects = InformerObjects(informers)
        informers.start()
        await informers.wait_synced()
        options = KubeletOptions(node_name="n1", root_dir=tmp_path / "agent",
                                 volume_refresh_interval=0.2)
        ctx = KubeletContext(client=c, informers=informers, runtime=None,  # type: ignore[arg-type]
                             options=options, recorder=None,  # type: ignore[arg-type]
                             objects=objects)
        woken: list[str] = []
        volumes = VolumeManager(ctx, wake=woken.append)
        volumes.start()
        try:
            p = pod([{"name": "cfg", "configMap": {"name": "cfg"}},
                     {"name": "sec", "secret": {"secretName": "creds"}}])
            try:
                await volumes.setup(p)
                raise AssertionError("setup succeeded without the secret")
            except VolumeError as e:
                assert e.message == \
                    'MountVolume.SetUp failed for volume "sec" : secret "creds" not found'
            await c.create(SECRETS, "default", {"apiVersion": "v1", "kind": "Secret",
                                                "metadata": {"name": "creds"},
                                                "stringData": {"password": "s3cret"}})
            await wait_for_async("the pod worker woken once the secret exists",
                                 lambda: woken == [UID], timeout=5)
            paths = await volumes.setup(p)
            file = Path(paths["cfg"]) / "k"
            assert file.read_text() == "v1"
            assert (Path(paths["sec"]) / "password").read_text() == "s3cret"

            obj = dict(await c.get(CM, "default", "cfg"))
            obj["data"] = {"k": "v2", "new": "n"}
            await c.update(CM, obj)
            await wait_for_async("the edited ConfigMap in the file",
                                 lambda: file.read_text() == "v2", timeout=5)
            assert (Path(paths["cfg"]) / "new").read_text() == "n"
        finally:
            await volumes.stop()
            await volumes.teardown(UID)
            await informers.stop()
        assert not options.volumes_dir(UID).exists()
