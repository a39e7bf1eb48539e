"""The kubelet's image handling above the runtime: pull policy fallbacks, image garbage
collection, the pod CIDR hand-over and the pod cgroup layout, on a fake runtime."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kubeling.kubelet.imagegc import DiskUsage, ImageGC
from kubeling.kubelet.podcidr import PodCidr
from kubeling.kubelet.podimages import ImagePuller, StartError
from kubeling.kubelet.podsandbox import cgroup_parent
from kubeling.runtime.protocol import ContainerState, ContainerStatus, ImageInfo, RuntimeFailure
from kubeling.utils.clock import FakeClock
from tests.unit.kubelet_fakes import FakeRuntime, fake_context, make_pod


class ImageRuntime(FakeRuntime):
    """FakeRuntime with an image list, a scripted pull failure and a pod CIDR record."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.images: dict[str, ImageInfo] = {}
        self.pull_failure: RuntimeFailure | None = None
        self.removed: list[str] = []
        self.cidrs: list[str] = []

    async def pull_image(self, image: str, *, auth: object = None) -> str:
        if self.pull_failure is not None:
            raise self.pull_failure
        self.images[image] = ImageInfo(id=f"sha256:{image}", repo_tags=(image,), size=10)
        return self.images[image].id

    async def image_status(self, image: str) -> ImageInfo | None:
        return self.images.get(image)

    async def list_images(self) -> list[ImageInfo]:
        return list(self.images.values())

    async def remove_image(self, image: str) -> None:
        self.removed.append(image)
        self.images = {k: v for k, v in self.images.items() if v.id != image}

    async def update_runtime_config(self, pod_cidr: str) -> None:
        self.cidrs.append(pod_cidr)


@pytest.fixture
def setup(tmp_path: Path):
    clock = FakeClock()
    ctx, _, recorder = fake_context(tmp_path, clock)
    runtime = ImageRuntime(clock)
    ctx.runtime = runtime  # type: ignore[assignment]
    return ctx, runtime, recorder


async def test_always_falls_back_to_a_local_image_only_when_the_registry_is_unreachable(
        setup) -> None:
    ctx, runtime, recorder = setup
    pod = make_pod([])
    container = {"name": "c", "image": "busybox:latest"}
    runtime.images["busybox:latest"] = ImageInfo(id="sha256:local", repo_tags=("busybox",))
    runtime.pull_failure = RuntimeFailure("RegistryUnavailable", "dial tcp: connection refused")
    assert await ImagePuller(ctx).ensure(pod, container) == "sha256:local"
    assert any("using the image present on the machine" in m for _, _, m in recorder.events)
    runtime.pull_failure = RuntimeFailure("ErrImagePull", "pull access denied")
    with pytest.raises(StartError) as err:
        await ImagePuller(ctx).ensure(pod, container)
    assert err.value.reason == "ErrImagePull"


async def test_an_unreachable_registry_without_a_local_copy_is_err_image_pull(
        setup) -> None:
    ctx, runtime, _ = setup
    runtime.pull_failure = RuntimeFailure("RegistryUnavailable", "connection refused")
    with pytest.raises(StartError) as err:
        await ImagePuller(ctx).ensure(make_pod([]), {"name": "c", "image": "nginx"})
    assert err.value.reason == "ErrImagePull" and "connection refused" in err.value.message


def _container(image_id: str) -> ContainerStatus:
    return ContainerStatus(id=image_id, sandbox_id="s", name="c", attempt=0,
                           state=ContainerState.EXITED, image=image_id, image_ref=image_id,
                           created_at=1.0)


async def test_image_gc_removes_unused_images_until_below_the_low_threshold(
        setup) -> None:
    ctx, runtime, recorder = setup
    for name in ("a", "b", "c", "d"):
        runtime.images[name] = ImageInfo(id=f"sha256:{name}", repo_tags=(name,), size=10)
    runtime.containers["x"] = _container("sha256:a")  # an exited container keeps its image
    used = {"value": 90}
    gc = ImageGC(ctx, measure=lambda: DiskUsage(total=100, used=used["value"]))
    assert await gc.collect() == 1  # 90% → 80%: 10 bytes, one image
    assert "sha256:a" not in runtime.removed and len(runtime.removed) == 1
    used["value"] = 84
    assert await gc.collect() == 0  # under the high threshold: nothing
    used["value"] = 200  # more than can be freed: all unused go, and an event says so
    assert await gc.collect() == 2
    assert [i.id for i in await runtime.list_images()] == ["sha256:a"]
    assert recorder.events[-1][1] == "FreeDiskSpaceFailed"


async def test_least_recently_used_images_go_first(setup) -> None:
    ctx, runtime, _ = setup
    for name in ("old", "new"):
        runtime.images[name] = ImageInfo(id=f"sha256:{name}", repo_tags=(name,), size=10)
    gc = ImageGC(ctx, measure=lambda: DiskUsage(total=100, used=50))
    runtime.containers["1"] = _container("sha256:old")
    await gc.collect()
    await ctx.clock.advance(60)
    runtime.containers["1"] = replace(_container("sha256:new"), id="1")
    await gc.collect()
    del runtime.containers["1"]
    gc.measure = lambda: DiskUsage(total=100, used=90)
    await gc.collect()
    assert runtime.removed == ["sha256:old"]


async def test_pod_cidr_reaches_the_runtime_once_per_change(
        setup, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, runtime, _ = setup
    node: dict[str, object] = {"spec": {}}
    monkeypatch.setattr(ctx.objects, "node", lambda: node)
    cidr = PodCidr(ctx)
    await cidr.sync()
    assert runtime.cidrs == [] and not await cidr.wait(0)
    node["spec"] = {"podCIDR": "10.42.3.0/24"}
    await cidr.sync()
    await cidr.sync()
    assert runtime.cidrs == ["10.42.3.0/24"] and await cidr.wait(0)


@pytest.mark.parametrize(("resources", "parent"), [
    ({}, "kubepods/besteffort/podU"),
    ({"requests": {"cpu": "100m"}}, "kubepods/burstable/podU"),
    ({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
     "kubepods/podU"),
])
def test_pod_cgroups_follow_the_qos_class(resources: dict[str, object], parent: str) -> None:
    pod = make_pod([{"name": "c", "image": "i", "resources": resources}], uid="U")
    assert cgroup_parent(pod) == parent


def _secret(kind: str, field: str, doc: dict[str, object]) -> dict[str, object]:
    import base64
    import json

    return {"type": kind, "data": {field: base64.b64encode(json.dumps(doc).encode()).decode()}}


def test_pull_secrets_give_the_matching_registrys_credentials() -> None:
    from kubeling.kubelet.pullsecrets import credentials, registry_of

    secrets = {
        "hub": _secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", {"auths": {
            "https://index.docker.io/v1/": {"username": "u", "password": "p"}}}),
        "local": _secret("kubernetes.io/dockercfg", ".dockercfg", {
            "127.0.0.1:5000": {"auth": "dTpw"}}),
    }

    class Objects:
        def secret(self, namespace: str, name: str) -> dict[str, object] | None:
            return secrets.get(name) if namespace == "ns" else None

    pod = {"metadata": {"name": "p", "namespace": "ns"},
           "spec": {"imagePullSecrets": [{"name": "missing"}, {"name": "local"},
                                         {"name": "hub"}]}}
    assert registry_of("busybox") == "docker.io" and registry_of("a.b/c") == "a.b"
    objects: Any = Objects()
    assert credentials(pod, "busybox:1.36", objects) == {"username": "u", "password": "p"}
    assert credentials(pod, "127.0.0.1:5000/x:1", objects) == {"auth": "dTpw"}
    assert credentials(pod, "quay.io/x", objects) is None
