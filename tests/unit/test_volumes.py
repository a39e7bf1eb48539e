"""VolumeManager over a fake ObjectSource: every plugin, refreshes, mounts and teardown."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubeling.kubelet.context import KubeletContext, KubeletOptions
from kubeling.kubelet.interfaces import VolumeError
from kubeling.kubelet.volumes import VolumeManager, disk
from kubeling.utils.clock import FakeClock

Obj = dict[str, Any]
UID = "11111111-2222-3333-4444-555555555555"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tmpfs mounts)")


@dataclass
class FakeObjects:
    configmaps: dict[tuple[str, str], Obj] = field(default_factory=dict)
    secrets: dict[tuple[str, str], Obj] = field(default_factory=dict)
    pvcs: dict[tuple[str, str], Obj] = field(default_factory=dict)
    pvs: dict[str, Obj] = field(default_factory=dict)
    the_node: Obj | None = None

    def configmap(self, namespace: str, name: str) -> Obj | None:
        return self.configmaps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self.secrets.get((namespace, name))

    def pvc(self, namespace: str, name: str) -> Obj | None:
        return self.pvcs.get((namespace, name))

    def pv(self, name: str) -> Obj | None:
        return self.pvs.get(name)

    def node(self) -> Obj | None:
        return self.the_node


@dataclass
class Harness:
    manager: VolumeManager
    objects: FakeObjects
    options: KubeletOptions
    clock: FakeClock
    woken: list[str]

    def vol(self, plugin: str, name: str, uid: str = UID) -> Path:
        return self.options.volumes_dir(uid) / plugin / name


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    objects = FakeObjects()
    options = KubeletOptions(node_name="n1", root_dir=tmp_path / "agent")
    clock = FakeClock()
    ctx = KubeletContext(client=None, informers=None, runtime=None,  # type: ignore[arg-type]
                         options=options, recorder=None, objects=objects,  # type: ignore[arg-type]
                         clock=clock, node_ip="10.0.0.1")
    woken: list[str] = []
    manager = VolumeManager(ctx, wake=woken.append)
    yield Harness(manager, objects, options, clock, woken)
    await manager.cleanup_orphans(set())  # no tmpfs left mounted behind a test


def pod(volumes: list[Obj], *, containers: list[Obj] | None = None, uid: str = UID,
        labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "ns", "uid": uid,
                         "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"nodeName": "n1", "volumes": volumes,
                     "containers": containers or [{"name": "c", "command": ["true"]}]},
            "status": {}}


def cm(name: str, data: dict[str, str], binary: dict[str, bytes] | None = None) -> Obj:
    obj: Obj = {"metadata": {"name": name, "namespace": "ns"}, "data": data}
    if binary:
        obj["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return obj


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


# ----- emptyDir ---------------------------------------------------------------------------

async def test_empty_dir_is_shared_and_removed_with_the_pod(h: Harness) -> None:
    containers = [{"name": "a", "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]},
                  {"name": "b", "volumeMounts": [{"name": "scratch", "mountPath": "/in"}]}]
    p = pod([{"name": "scratch", "emptyDir": {}}], containers=containers)
    paths = await h.manager.setup(p)
    where = h.vol("kubernetes.io~empty-dir", "scratch")
    assert paths == {"scratch": str(where)}
    assert where.is_dir() and mode(where) == 0o777
    (where / "note").write_text("hello")
    assert await h.manager.setup(p) == paths
    assert (where / "note").read_text() == "hello"
    a = h.manager.mounts(p, containers[0], paths)
    b = h.manager.mounts(p, containers[1], paths)
    assert [(m.container_path, m.host_path, m.read_only) for m in a + b] == [
        ("/data", str(where), False), ("/in", str(where), False)]
    await h.manager.teardown(UID)
    assert not h.options.volumes_dir(UID).exists()


@root_only
async def test_memory_empty_dir_is_a_tmpfs_with_its_size_limit(h: Harness) -> None:
    p = pod([{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}}])
    paths = await h.manager.setup(p)
    where = os.path.realpath(paths["mem"])
    tmpfs = {m: t for m, t in disk.mount_points()}
    if tmpfs.get(where) != "tmpfs":
        pytest.fail(f"{where} is not a tmpfs mount")
    st = os.statvfs(where)
    assert st.f_blocks * st.f_frsize == 2 * 1024 * 1024
    await h.manager.setup(p)  # idempotent: not mounted twice
    assert [m for m, _ in disk.mount_points()].count(where) == 1
    await h.manager.teardown(UID)
    assert where not in {m for m, _ in disk.mount_points()}
    assert not os.path.exists(where)


async def test_teardown_does_not_follow_symlinks_out_of_the_pod(h: Harness,
                                                                 tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep").write_text("x")
    p = pod([{"name": "scratch", "emptyDir": {}},
             {"name": "host", "hostPath": {"path": str(outside)}}])
    paths = await h.manager.setup(p)
    assert paths["host"] == str(outside)
    os.symlink(outside, Path(paths["scratch"]) / "link")
    await h.manager.teardown(UID)
    await h.manager.teardown(UID)  # idempotent
    assert (outside / "keep").read_text() == "x"
    assert not h.options.volumes_dir(UID).exists()


async def test_cleanup_orphans_keeps_active_pods(h: Harness) -> None:
    other = "99999999-2222-3333-4444-555555555555"
    await h.manager.setup(pod([{"name": "s", "emptyDir": {}}]))
    await h.manager.setup(pod([{"name": "s", "emptyDir": {}}], uid=other))
    await h.manager.cleanup_orphans({UID})
    assert h.options.volumes_dir(UID).exists()
    assert not h.options.volumes_dir(other).exists()


# ----- hostPath -----------------------------------------------------------------------------

async def host_error(h: Harness, path: str, kind: str) -> str:
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(pod([{"name": "h", "hostPath": {"path": path, "type": kind}}]))
    return err.value.message


async def test_host_path_or_create_types_create_what_is_missing(h: Harness,
                                                                tmp_path: Path) -> None:
    d, f = tmp_path / "made" / "dir", tmp_path / "file"
    await h.manager.setup(pod([
        {"name": "d", "hostPath": {"path": str(d), "type": "DirectoryOrCreate"}},
        {"name": "f", "hostPath": {"path": str(f), "type": "FileOrCreate"}}]))
    assert d.is_dir() and f.is_file() and f.read_bytes() == b""


async def test_host_path_type_mismatches_read_like_kubernetes(h: Harness,
                                                              tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    missing = tmp_path / "missing"
    prefix = 'MountVolume.SetUp failed for volume "h" : '
    assert await host_error(h, str(missing), "Directory") == \
        f"{prefix}hostPath {missing} doesn't exist"
    assert await host_error(h, str(f), "Directory") == \
        f"{prefix}hostPath type check failed: {f} is not a directory, it's a File"
    assert await host_error(h, str(tmp_path), "File") == \
        f"{prefix}hostPath type check failed: {tmp_path} is not a file, it's a Directory"
    assert await host_error(h, str(f), "DirectoryOrCreate") == \
        f"{prefix}hostPath type check failed: {f} is not a directory, it's a File"
    assert await host_error(h, str(f), "Socket") == \
        f"{prefix}hostPath type check failed: {f} is not a socket file, it's a File"
    assert await host_error(h, "/dev/null", "BlockDevice") == \
        f"{prefix}hostPath type check failed: /dev/null is not a block device, it's a CharDevice"
    assert await host_error(h, str(f), "CharDevice") == \
        f"{prefix}hostPath type check failed: {f} is not a character device, it's a File"
    assert await host_error(h, str(f), "Weird") == f"{prefix}Weird is an invalid volume type"


async def test_host_path_matching_types_pass(h: Harness, tmp_path: Path) -> None:
    import socket

    sock_path = str(tmp_path / "s.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sock_path)
    try:
        paths = await h.manager.setup(pod([
            {"name": "s", "hostPath": {"path": sock_path, "type": "Socket"}},
            {"name": "c", "hostPath": {"path": "/dev/null", "type": "CharDevice"}},
            {"name": "any", "hostPath": {"path": str(tmp_path / "nothing")}}]))
    finally:
        sock.close()
    assert paths == {"s": sock_path, "c": "/dev/null", "any": str(tmp_path / "nothing")}


# ----- configMap and secret -------------------------------------------------------------------

async def test_configmap_all_keys_with_default_mode(h: Harness) -> None:
    h.objects.configmaps[("ns", "cfg")] = cm("cfg", {"a.conf": "A", "b": "B"},
                                              binary={"bin": b"\x00\x01"})
    paths = await h.manager.setup(pod([{"name": "c", "configMap": {"name": "cfg"}}]))
    where = Path(paths["c"])
    assert where == h.vol("kubernetes.io~configmap", "c")
    assert (where / "a.conf").read_text() == "A"
    assert (where / "bin").read_bytes() == b"\x00\x01"
    assert mode(where / "b") == 0o644
    assert os.readlink(where / "b") == "..data/b"


async def test_configmap_items_paths_and_modes(h: Harness) -> None:
    h.objects.configmaps[("ns", "cfg")] = cm("cfg", {"a": "A", "b": "B"})
    paths = await h.manager.setup(pod([{"name": "c", "configMap": {
        "name": "cfg", "defaultMode": 0o600,
        "items": [{"key": "a", "path": "sub/a.txt", "mode": 0o400}, {"key": "b", "path": "b"}]}}]))
    where = Path(paths["c"])
    assert sorted(p.name for p in where.iterdir() if not p.name.startswith("..")) == ["b", "sub"]
    assert (where / "sub" / "a.txt").read_text() == "A"
    assert mode(where / "sub" / "a.txt") == 0o400
    assert mode(where / "b") == 0o600


async def test_missing_configmap_and_key_read_like_kubernetes(h: Harness) -> None:
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(pod([{"name": "c", "configMap": {"name": "nope"}}]))
    assert err.value.message == \
        'MountVolume.SetUp failed for volume "c" : configmap "nope" not found'
    assert err.value.reason == "FailedMount"
    h.objects.configmaps[("ns", "cfg")] = cm("cfg", {"a": "A"})
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(pod([{"name": "c", "configMap": {
            "name": "cfg", "items": [{"key": "zzz", "path": "z"}]}}]))
    assert err.value.message.endswith("configmap references non-existent config key: zzz")


async def test_optional_configmap_missing_is_an_empty_volume(h: Harness) -> None:
    p = pod([{"name": "c", "configMap": {"name": "later", "optional": True}}])
    paths = await h.manager.setup(p)
    assert [x for x in os.listdir(paths["c"]) if not x.startswith("..")] == []
    h.objects.configmaps[("ns", "later")] = cm("later", {"k": "v"})
    await h.manager.refresh()
    assert (Path(paths["c"]) / "k").read_text() == "v"


async def test_secret_is_decoded_with_its_modes(h: Harness) -> None:
    h.objects.secrets[("ns", "s")] = {"metadata": {"name": "s", "namespace": "ns"},
                                      "data": {"password": base64.b64encode(b"hunter2").decode()}}
    paths = await h.manager.setup(pod([{"name": "sec", "secret": {
        "secretName": "s", "items": [{"key": "password", "path": "pw", "mode": 0o400}]}}]))
    where = Path(paths["sec"])
    assert where == h.vol("kubernetes.io~secret", "sec")
    assert (where / "pw").read_bytes() == b"hunter2"
    assert mode(where / "pw") == 0o400
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(pod([{"name": "x", "secret": {"secretName": "absent"}}]))
    assert err.value.message.endswith(': secret "absent" not found')
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(pod([{"name": "x", "secret": {
            "secretName": "s", "items": [{"key": "nokey", "path": "k"}]}}]))
    assert err.value.message.endswith("references non-existent secret key: nokey")


# ----- refreshes ------------------------------------------------------------------------------

async def test_configmap_edit_reaches_the_file_on_the_refresh_loop(h: Harness) -> None:
    h.objects.configmaps[("ns", "cfg")] = cm("cfg", {"k": "v1"})
    paths = await h.manager.setup(pod([{"name": "c", "configMap": {"name": "cfg"}}]))
    file = Path(paths["c"]) / "k"
    version = os.readlink(Path(paths["c"]) / "..data")
    h.manager.start()
    try:
        await h.clock.advance(h.options.volume_refresh_interval)
        assert os.readlink(Path(paths["c"]) / "..data") == version  # nothing changed: no write
        h.objects.configmaps[("ns", "cfg")] = cm("cfg", {"k": "v2"})
        assert file.read_text() == "v1"
        await h.clock.advance(h.options.volume_refresh_interval)
        assert file.read_text() == "v2"
    finally:
        await h.manager.stop()


async def test_missing_configmap_appearing_wakes_the_pod_worker(h: Harness) -> None:
    p = pod([{"name": "c", "configMap": {"name": "late"}}])
    with pytest.raises(VolumeError):
        await h.manager.setup(p)
    await h.manager.refresh()
    assert h.woken == []
    h.objects.configmaps[("ns", "late")] = cm("late", {"k": "v"})
    await h.manager.refresh()
    assert h.woken == [UID]
    paths = await h.manager.setup(p)
    assert (Path(paths["c"]) / "k").read_text() == "v"
    await h.manager.refresh()
    assert h.woken == [UID]


async def test_torn_down_pod_is_not_refreshed(h: Harness) -> None:
    h.objects.configmaps[("ns", "cfg")] = cm("cfg", {"k": "v"})
    await h.manager.setup(pod([{"name": "c", "configMap": {"name": "cfg"}}]))
    await h.manager.teardown(UID)
    await h.manager.refresh()
    assert not h.options.volumes_dir(UID).exists()


# ----- downwardAPI and projected --------------------------------------------------------------

DOWNWARD = {"name": "info", "downwardAPI": {"items": [
    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
    {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
    {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
    {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}, "mode": 0o600},
    {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory",
                                         "divisor": "1Mi"}},
    {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu"}},
    {"path": "req", "resourceFieldRef": {"containerName": "c", "resource": "requests.cpu",
                                         "divisor": "1m"}},
]}}


async def test_downward_api_files(h: Harness) -> None:
    h.objects.the_node = {"status": {"allocatable": {"cpu": "3500m", "memory": "8Gi"}}}
    container = {"name": "c", "resources": {"limits": {"memory": "100M"},
                                            "requests": {"cpu": "250m"}}}
    p = pod([DOWNWARD], containers=[container], labels={"tier": "web", "app": "a b"},
            annotations={"note": 'say "hi"\n'})
    where = Path((await h.manager.setup(p))["info"])
    assert where == h.vol("kubernetes.io~downward-api", "info")
    assert (where / "labels").read_text() == 'app="a b"\ntier="web"'
    assert (where / "annotations").read_text() == 'note="say \\"hi\\"\\n"'
    assert (where / "name").read_text() == "web"
    assert (where / "ns").read_text() == "ns"
    assert (where / "uid").read_text() == UID
    assert (where / "tier").read_text() == "web"
    assert mode(where / "tier") == 0o600
    assert (where / "mem").read_text() == "96"  # ceil(100e6 / 2**20)
    assert (where / "cpu").read_text() == "4"  # node allocatable, ceil(3.5)
    assert (where / "req").read_text() == "250"


async def test_downward_labels_follow_the_latest_pod(h: Harness) -> None:
    p = pod([DOWNWARD], labels={"tier": "web"})
    where = Path((await h.manager.setup(p))["info"])
    p2 = pod([DOWNWARD], labels={"tier": "db", "extra": "1"})
    await h.manager.setup(p2)
    assert (where / "labels").read_text() == 'extra="1"\ntier="db"'
    assert (where / "tier").read_text() == "db"


async def test_projected_sources_share_one_directory(h: Harness) -> None:
    h.objects.configmaps[("ns", "cfg")] = cm("cfg", {"app.conf": "x=1"})
    h.objects.secrets[("ns", "s")] = {"metadata": {"name": "s", "namespace": "ns"},
                                      "data": {"token": base64.b64encode(b"t0k").decode()}}
    p = pod([{"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cfg"}},
        {"secret": {"name": "s", "items": [{"key": "token", "path": "creds/token",
                                            "mode": 0o400}]}},
        {"downwardAPI": {"items": [{"path": "podname",
                                    "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"configMap": {"name": "absent", "optional": True}}]}}])
    where = Path((await h.manager.setup(p))["all"])
    assert where == h.vol("kubernetes.io~projected", "all")
    assert (where / "app.conf").read_text() == "x=1"
    assert mode(where / "app.conf") == 0o440
    assert (where / "creds" / "token").read_bytes() == b"t0k"
    assert mode(where / "creds" / "token") == 0o400
    assert (where / "podname").read_text() == "web"


async def test_projected_service_account_token_is_not_available_yet(h: Harness) -> None:
    p = pod([{"name": "tok", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}}])
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(p)
    assert "serviceAccountToken" in err.value.message and "TokenRequest" in err.value.message


# ----- persistentVolumeClaim ------------------------------------------------------------------

def claim(phase: str = "Bound", volume: str = "pv1") -> Obj:
    return {"metadata": {"name": "data", "namespace": "ns", "uid": "c1"},
            "spec": {"volumeName": volume}, "status": {"phase": phase}}


async def test_claim_errors(h: Harness) -> None:
    p = pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(p)
    assert err.value.message.endswith(': persistentvolumeclaim "data" not found')
    h.objects.pvcs[("ns", "data")] = claim("Pending", "")
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(p)
    assert 'persistentvolumeclaim "data" is not bound' in err.value.message
    h.objects.pvcs[("ns", "data")] = claim()
    h.objects.pvs["pv1"] = {"metadata": {"name": "pv1"}, "spec": {"nfs": {"path": "/x"}}}
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(p)
    assert "neither hostPath nor local" in err.value.message


async def test_claim_bound_to_host_path_and_local_volumes(h: Harness, tmp_path: Path) -> None:
    h.objects.pvcs[("ns", "data")] = claim()
    h.objects.pvs["pv1"] = {"metadata": {"name": "pv1"}, "spec": {
        "hostPath": {"path": str(tmp_path / "pv"), "type": "DirectoryOrCreate"},
        "claimRef": {"name": "data", "namespace": "ns", "uid": "c1"}}}
    container = {"name": "c", "volumeMounts": [{"name": "d", "mountPath": "/data"}]}
    p = pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}],
            containers=[container])
    paths = await h.manager.setup(p)
    assert paths == {"d": str(tmp_path / "pv")} and (tmp_path / "pv").is_dir()
    assert h.manager.mounts(p, container, paths)[0].read_only
    h.objects.pvs["pv1"] = {"metadata": {"name": "pv1"},
                            "spec": {"local": {"path": str(tmp_path)}}}
    assert (await h.manager.setup(p)) == {"d": str(tmp_path)}
    await h.manager.teardown(UID)
    assert tmp_path.is_dir() and (tmp_path / "pv").is_dir()


# ----- mounts ---------------------------------------------------------------------------------

async def test_mounts_sub_paths_and_read_only(h: Harness) -> None:
    h.objects.configmaps[("ns", "cfg")] = cm("cfg", {"app.conf": "x"})
    container = {"name": "c", "volumeMounts": [
        {"name": "scratch", "mountPath": "/work", "subPath": "a/b"},
        {"name": "scratch", "mountPath": "/ro", "readOnly": True},
        {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
        {"name": "cfg", "mountPath": "/etc/app"}]}
    p = pod([{"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}],
            containers=[container])
    paths = await h.manager.setup(p)
    mounts = h.manager.mounts(p, container, paths)
    scratch = os.path.realpath(paths["scratch"])
    assert [(m.container_path, m.host_path, m.read_only) for m in mounts] == [
        ("/work", f"{scratch}/a/b", False),
        ("/ro", paths["scratch"], True),
        ("/etc/app.conf", f"{paths['cfg']}/app.conf", True),
        ("/etc/app", paths["cfg"], True)]
    assert Path(scratch, "a", "b").is_dir()


@pytest.mark.parametrize("sub", ["../escape", "a/../../x", "/etc"])
async def test_sub_path_escapes_are_refused(h: Harness, sub: str) -> None:
    container = {"name": "c", "volumeMounts": [{"name": "s", "mountPath": "/x", "subPath": sub}]}
    p = pod([{"name": "s", "emptyDir": {}}], containers=[container])
    paths = await h.manager.setup(p)
    with pytest.raises(VolumeError):
        h.manager.mounts(p, container, paths)


async def test_sub_path_through_a_planted_symlink_is_refused(h: Harness) -> None:
    container = {"name": "c", "volumeMounts": [{"name": "s", "mountPath": "/x",
                                                "subPath": "evil/passwd"}]}
    p = pod([{"name": "s", "emptyDir": {}}], containers=[container])
    paths = await h.manager.setup(p)
    os.symlink("/etc", Path(paths["s"]) / "evil")
    with pytest.raises(VolumeError) as err:
        h.manager.mounts(p, container, paths)
    assert "not within volume path" in err.value.message


async def test_sub_path_expr_expands_the_container_env(h: Harness) -> None:
    container = {"name": "c",
                 "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "DIR", "value": "logs-$(POD)"}],
                 "volumeMounts": [{"name": "s", "mountPath": "/logs", "subPathExpr": "$(DIR)"}]}
    p = pod([{"name": "s", "emptyDir": {}}], containers=[container])
    paths = await h.manager.setup(p)
    [m] = h.manager.mounts(p, container, paths)
    assert m.host_path == os.path.join(os.path.realpath(paths["s"]), "logs-web")


async def test_mount_of_an_unknown_volume(h: Harness) -> None:
    container = {"name": "c", "volumeMounts": [{"name": "ghost", "mountPath": "/g"}]}
    p = pod([], containers=[container])
    with pytest.raises(VolumeError) as err:
        h.manager.mounts(p, container, await h.manager.setup(p))
    assert err.value.message == 'cannot find volume "ghost" to mount into container "c"'


async def test_unsupported_volume_type(h: Harness) -> None:
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(pod([{"name": "n", "nfs": {"server": "x", "path": "/"}}]))
    assert "nfs is not supported" in err.value.message


@root_only
async def test_secret_volume_is_kept_in_memory(h: Harness) -> None:
    h.objects.secrets[("ns", "s")] = {"metadata": {"name": "s", "namespace": "ns"},
                                      "data": {"k": base64.b64encode(b"v").decode()}}
    paths = await h.manager.setup(pod([{"name": "sec", "secret": {"secretName": "s"}}]))
    where = os.path.realpath(paths["sec"])
    assert dict(disk.mount_points()).get(where) == "tmpfs"
    assert (Path(where) / "k").read_bytes() == b"v"
    await h.manager.teardown(UID)
    assert where not in dict(disk.mount_points())
    assert not os.path.exists(where)


async def test_memory_empty_dir_without_root_is_a_plain_directory(
        h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(disk, "can_mount", lambda: False)
    caplog.set_level("INFO", logger="kubeling.kubelet.volumes")
    paths = await h.manager.setup(pod([{"name": "mem", "emptyDir": {"medium": "Memory"}}]))
    assert Path(paths["mem"]).is_dir()
    assert os.path.realpath(paths["mem"]) not in dict(disk.mount_points())
    assert "medium Memory needs root" in caplog.text


async def test_claim_whose_volume_is_bound_elsewhere(h: Harness, tmp_path: Path) -> None:
    h.objects.pvcs[("ns", "data")] = claim()
    h.objects.pvs["pv1"] = {"metadata": {"name": "pv1"}, "spec": {
        "hostPath": {"path": str(tmp_path)},
        "claimRef": {"name": "other", "namespace": "ns", "uid": "c2"}}}
    with pytest.raises(VolumeError) as err:
        await h.manager.setup(pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]))
    assert "bound to a different claim" in err.value.message


@pytest.mark.parametrize(("value", "quoted"), [
    ("plain", '"plain"'), ('q"b\\', '"q\\"b\\\\"'), ("tab\there", '"tab\\there"'),
    ("\x01", '"\\x01"'), ("héllo ☃", '"héllo ☃"'), ("\u200b", '"\\u200b"')])
def test_labels_are_quoted_as_go_quotes_them(value: str, quoted: str) -> None:
    from kubeling.kubelet.downward import go_quote

    assert go_quote(value) == quoted
