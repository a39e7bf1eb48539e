"""Mirror pods against a real registry: created, put back after deletion, removed with the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeling.api.errors import StatusError
from kubeling.kubelet.context import CONFIG_HASH, CONFIG_MIRROR
from kubeling.kubelet.mirror import MirrorPods, is_mirror_pod
from kubeling.kubelet.staticpods import StaticPodSource
from tests.apiharness import client, kind, node, running_registry

PODS = kind("", "pods")
NODES = kind("", "nodes")
NODE = "node-a"

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: busybox
    command: [sleep, "3600"]
"""


async def test_mirror_pod_follows_the_static_pod(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(MANIFEST)
    source = StaticPodSource(manifests, NODE)
    async with running_registry(tmp_path) as registry:
        api = client(registry)
        the_node = await api.create(NODES, None, node(NODE))
        mirrors = MirrorPods(api, NODE)
        static = source.scan()
        static_uid = next(iter(static))
        await mirrors.sync(static)

        mirror = await api.get(PODS, "default", "web-node-a")
        meta = mirror["metadata"]
        assert is_mirror_pod(mirror)
        assert meta["annotations"][CONFIG_MIRROR] == static_uid
        assert meta["annotations"][CONFIG_HASH] == static_uid
        assert meta["uid"] != static_uid
        assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": NODE,
                                            "uid": the_node["metadata"]["uid"],
                                            "controller": True}]
        assert mirror["spec"]["nodeName"] == NODE
        ref = mirrors.mirror_of(static_uid)
        assert ref is not None and ref.uid == meta["uid"]

        await mirrors.sync(source.scan())  # nothing to do: the same mirror stays
        assert (await api.get(PODS, "default", "web-node-a"))["metadata"]["uid"] == meta["uid"]

        # Deleted through the API (gracefully, as kubectl does): it comes back.
        await api.delete(PODS, "default", "web-node-a")
        await mirrors.sync(source.scan())
        back = await api.get(PODS, "default", "web-node-a")
        assert back["metadata"]["uid"] != meta["uid"]
        assert not back["metadata"].get("deletionTimestamp")

        # Deleted at once: it comes back too.
        await api.delete(PODS, "default", "web-node-a", options={"gracePeriodSeconds": 0})
        await mirrors.sync(source.scan())
        back = await api.get(PODS, "default", "web-node-a")
        assert is_mirror_pod(back)

        # The manifest changes: the mirror is replaced by one with the new hash.
        (manifests / "web.yaml").write_text(MANIFEST.replace("3600", "60"))
        static = source.scan()
        new_uid = next(iter(static))
        assert new_uid != static_uid
        await mirrors.sync(static)
        changed = await api.get(PODS, "default", "web-node-a")
        assert changed["metadata"]["annotations"][CONFIG_MIRROR] == new_uid
        assert changed["spec"]["containers"][0]["command"] == ["sleep", "60"]

        # The file goes: so does the mirror.
        (manifests / "web.yaml").unlink()
        await mirrors.sync(source.scan())
        with pytest.raises(StatusError) as gone:
            await api.get(PODS, "default", "web-node-a")
        assert gone.value.code == 404
        assert mirrors.mirror_of(new_uid) is None


async def test_api_pods_are_left_alone(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as registry:
        api = client(registry)
        await api.create(NODES, None, node(NODE))
        await api.create(PODS, "default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]}})
        await MirrorPods(api, NODE).sync({})
        assert (await api.get(PODS, "default", "plain"))["metadata"]["name"] == "plain"


async def test_mirrors_wait_for_the_node(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(MANIFEST)
    static = StaticPodSource(manifests, NODE).scan()
    async with running_registry(tmp_path) as registry:
        api = client(registry)
        mirrors = MirrorPods(api, NODE)
        await mirrors.sync(static)
        assert (await api.list(PODS, "default")).items == []
        await api.create(NODES, None, node(NODE))
        await mirrors.sync(static)
        assert len((await api.list(PODS, "default")).items) == 1
