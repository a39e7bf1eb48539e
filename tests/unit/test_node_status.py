"""The Node the agent reports: capacity, labels, conditions and their transitions, nodeInfo."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from kubeling.kubelet import node
from kubeling.kubelet.context import KubeletOptions
from kubeling.runtime.protocol import ImageInfo
from kubeling.utils.clock import rfc3339

GI = 1024 ** 3
MI = 1024 ** 2
T0 = 1_700_000_000.0


def reading(**changes: int) -> node.Reading:
    base = dict(memory_total=16 * GI, memory_available=8 * GI, disk_total=100 * GI,
                disk_available=50 * GI, pid_max=4_194_304, pids=300)
    base.update(changes)
    return node.Reading(**base)


def options(**changes: object) -> KubeletOptions:
    return KubeletOptions(node_name="n1", root_dir=Path("/nonexistent")).replace(**changes)


def by_type(conds: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conds}


def test_healthy_machine_has_the_kubelets_four_conditions() -> None:
    conds, changes = node.conditions(reading(), now=T0)
    c = by_type(conds)
    assert [x["type"] for x in conds] == ["MemoryPressure", "DiskPressure", "PIDPressure",
                                          "Ready"]
    assert (c["MemoryPressure"]["status"], c["MemoryPressure"]["reason"],
            c["MemoryPressure"]["message"]) == (
        "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
    assert (c["DiskPressure"]["reason"], c["DiskPressure"]["message"]) == (
        "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
    assert (c["PIDPressure"]["reason"], c["PIDPressure"]["message"]) == (
        "KubeletHasSufficientPID", "kubelet has sufficient PID available")
    assert (c["Ready"]["status"], c["Ready"]["reason"], c["Ready"]["message"]) == (
        "True", "KubeletReady", "kubelet is posting ready status")
    assert all(x["lastTransitionTime"] == rfc3339(T0) for x in conds)
    # Everything is new: one event per condition, as the kubelet records on first status.
    assert [t.event for t in changes] == ["NodeHasSufficientMemory", "NodeHasNoDiskPressure",
                                          "NodeHasSufficientPID", "NodeReady"]


def test_pressure_follows_the_default_eviction_thresholds() -> None:
    low_memory = reading(memory_available=99 * MI)
    assert node.under_pressure(low_memory)["MemoryPressure"]
    assert not node.under_pressure(reading(memory_available=101 * MI))["MemoryPressure"]
    assert node.under_pressure(reading(disk_available=9 * GI))["DiskPressure"]
    assert not node.under_pressure(reading(disk_available=11 * GI))["DiskPressure"]
    assert node.under_pressure(reading(pid_max=1000, pids=990))["PIDPressure"]
    conds, _ = node.conditions(low_memory, now=T0)
    mem = by_type(conds)["MemoryPressure"]
    assert (mem["status"], mem["reason"], mem["message"]) == (
        "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
    assert by_type(conds)["Ready"]["status"] == "True"  # pressure alone does not unready


def test_transition_times_are_kept_until_the_status_changes() -> None:
    first, _ = node.conditions(reading(), now=T0)
    later, changes = node.conditions(reading(), now=T0 + 60, previous=first)
    assert changes == []
    for c in later:
        assert c["lastTransitionTime"] == rfc3339(T0)
        assert c["lastHeartbeatTime"] == rfc3339(T0 + 60)
    pressed, changes = node.conditions(reading(disk_available=GI), now=T0 + 120,
                                       previous=later)
    disk = by_type(pressed)["DiskPressure"]
    assert (disk["status"], disk["lastTransitionTime"]) == ("True", rfc3339(T0 + 120))
    assert by_type(pressed)["MemoryPressure"]["lastTransitionTime"] == rfc3339(T0)
    assert [(t.type, t.event) for t in changes] == [("DiskPressure", "NodeHasDiskPressure")]


def test_not_ready_when_the_runtime_is_down_and_ready_again() -> None:
    ok, _ = node.conditions(reading(), now=T0)
    down, changes = node.conditions(reading(), now=T0 + 10, previous=ok,
                                    not_ready=["container runtime is down"])
    ready = by_type(down)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "KubeletNotReady", "container runtime is down")
    assert [t.event for t in changes] == ["NodeNotReady"]
    back, changes = node.conditions(reading(), now=T0 + 20, previous=down)
    assert by_type(back)["Ready"]["lastTransitionTime"] == rfc3339(T0 + 20)
    assert [t.event for t in changes] == ["NodeReady"]


def test_a_node_marked_unknown_by_the_controller_turns_ready_with_a_new_transition() -> None:
    ok, _ = node.conditions(reading(), now=T0)
    unknown = [dict(c, status="Unknown", reason="NodeStatusUnknown") for c in ok]
    again, changes = node.conditions(reading(), now=T0 + 50, previous=unknown)
    assert by_type(again)["Ready"]["lastTransitionTime"] == rfc3339(T0 + 50)
    assert "NodeReady" in [t.event for t in changes]


def test_capacity_and_allocatable() -> None:
    capacity, allocatable = node.resources(reading(), options(max_pods=42), cpus=8)
    assert capacity == {"cpu": "8", "ephemeral-storage": f"{100 * GI // 1024}Ki",
                        "memory": f"{16 * GI // 1024}Ki", "pods": "42"}
    # Allocatable leaves out the hard eviction thresholds: 100Mi of memory, 10% of disk.
    assert allocatable["memory"] == f"{(16 * GI - 100 * MI) // 1024}Ki"
    assert allocatable["ephemeral-storage"] == str(int(100 * GI * 0.9))
    assert (allocatable["cpu"], allocatable["pods"]) == ("8", "42")


def test_labels_role_and_extra_labels() -> None:
    worker = node.node_labels(options(node_labels={"disk": "ssd"}))
    assert worker["kubernetes.io/hostname"] == "n1"
    assert worker["kubernetes.io/os"] == worker["beta.kubernetes.io/os"] == "linux"
    assert worker["kubernetes.io/arch"] == worker["beta.kubernetes.io/arch"]
    assert worker["disk"] == "ssd"
    assert "node-role.kubernetes.io/control-plane" not in worker
    server = node.node_labels(options(control_plane=True))
    assert server["node-role.kubernetes.io/control-plane"] == ""


def test_node_object_carries_taints_addresses_port_and_node_info() -> None:
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    opts = options(register_with_taints=[taint])
    conds, _ = node.conditions(reading(), now=T0)
    status = node.node_status(reading(), opts, node_ip="10.1.2.3", port=12345,
                              runtime_version="process://0.1.0", conds=conds,
                              image_list=[])
    obj = node.node_object(opts, status)
    assert obj["metadata"]["name"] == "n1"
    assert obj["spec"]["taints"] == [taint]
    assert status["addresses"] == [{"type": "InternalIP", "address": "10.1.2.3"},
                                   {"type": "Hostname", "address": "n1"}]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 12345}}
    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"] == "process://0.1.0"
    assert info["kubeletVersion"] == "v1.32.0+kubeling"
    assert info["operatingSystem"] == "linux"
    assert info["kernelVersion"] and info["osImage"] and info["architecture"]
    boot = Path("/proc/sys/kernel/random/boot_id")
    if boot.exists():
        assert info["bootID"] == boot.read_text().strip()


def test_os_image_is_the_pretty_name(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert node.os_image(str(release)) == "Debian GNU/Linux 12 (bookworm)"
    assert node.os_image(str(tmp_path / "missing")) == "Linux"


def test_images_biggest_first_with_at_most_five_names() -> None:
    infos = [ImageInfo(id="sha256:a", repo_tags=("small:1",), size=10),
             ImageInfo(id="sha256:b", repo_tags=tuple(f"big:{i}" for i in range(7)),
                       repo_digests=("big@sha256:b",), size=1000),
             ImageInfo(id="sha256:c", size=5)]
    out = node.images(infos)
    assert [i["sizeBytes"] for i in out] == [1000, 10, 5]
    assert out[0]["names"] == ["big@sha256:b", "big:0", "big:1", "big:2", "big:3"]
    assert out[2]["names"] == ["sha256:c"]


def test_status_changed_ignores_heartbeat_times_only() -> None:
    conds, _ = node.conditions(reading(), now=T0)
    opts = options()
    a = node.node_status(reading(), opts, node_ip="10.0.0.1", port=1,
                         runtime_version="process://1", conds=conds, image_list=[])
    later, _ = node.conditions(reading(), now=T0 + 10, previous=conds)
    b = node.node_status(reading(), opts, node_ip="10.0.0.1", port=1,
                         runtime_version="process://1", conds=later, image_list=[])
    assert not node.status_changed(a, b)
    c = node.node_status(reading(), opts, node_ip="10.0.0.2", port=1,
                         runtime_version="process://1", conds=later, image_list=[])
    assert node.status_changed(a, c)
    assert node.status_changed(None, a)
    # The API leaves out empty lists: no images reads the same as an empty list of them.
    assert a["images"] == []
    assert not node.status_changed({k: v for k, v in a.items() if k != "images"}, a)
    with_image = dict(a, images=[{"names": ["x"], "sizeBytes": 1}])
    assert node.status_changed(a, with_image)


def test_detect_node_ip_is_an_address() -> None:
    ipaddress.ip_address(node.detect_node_ip())


def test_read_machine_measures_this_machine(tmp_path: Path) -> None:
    r = node.read_machine(tmp_path / "not-yet" / "created")
    assert r.memory_total > r.memory_available > 0
    assert r.disk_total >= r.disk_available > 0
    assert r.pid_max > r.pids > 0
