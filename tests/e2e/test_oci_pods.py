"""Pods as real containers, driven by the real kubectl: the OCI runtime end to end.

One server is also its node with ``--runtime oci``; the busybox test image
(built from Debian's busybox-static) is imported the way a user does it. Every
check is what a user sees: ``kubectl exec`` output from inside the containers,
``kubectl get`` columns and statuses, and the host itself once pods are gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import AGENT_NODE, REPO, Cluster, free_port, require, wait_for
from tests.imagebuild import build_image
from tests.ocipods import apply, ctr, exec_, node_ready, oci_data_dir, pod, pod_json, running
from tests.ocitools import leftovers, sweep

pytestmark = pytest.mark.root

CGROUP_PARENT = f"kubeling-e2e-{os.getpid()}"


def kubeling(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeling.cli.main", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def oci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = oci_data_dir(tmp_path_factory, "kubeling-oci")
    c = Cluster(data, free_port(), agent=True, runtime="oci")
    c.start("--cgroup-parent", CGROUP_PARENT)
    try:
        wait_for("the node to be Ready with a pod CIDR", lambda: node_ready(c), timeout=60)
        yield c
    finally:
        c.kubectl("delete", "pods", "--all", "--wait=false", check=False)
        c.stop()
        sweep(data / "agent", CGROUP_PARENT)


def test_the_readme_story(oci: Cluster, tmp_path: Path) -> None:
    """`kubeling images import`, `kubectl run`, then look inside with `kubectl exec`."""
    archive = tmp_path / "busybox.tar"
    build_image(archive, name="busybox:latest", fmt="docker")
    out = kubeling("images", "--data-dir", str(oci.data_dir), "import", str(archive))
    assert out.returncode == 0, out.stderr
    listing = kubeling("images", "--data-dir", str(oci.data_dir), "ls")
    assert "docker.io/library/busybox" in listing.stdout and "latest" in listing.stdout
    oci.kubectl("run", "box", "--image=busybox", "--", "sleep", "3600")
    box = running(oci, "box")
    assert exec_(oci, "box", "hostname").strip() == "box"
    ps = exec_(oci, "box", "ps", "-o", "pid,args")
    rows = [line.split(None, 1) for line in ps.strip().splitlines()[1:]]
    assert rows[0] == ["1", "sleep 3600"], ps  # its own PID namespace: sleep is PID 1
    assert all(args.startswith(("sleep", "ps")) for _pid, args in rows), ps
    ip = box["status"]["podIP"]
    assert ip.startswith("10.42."), ip
    assert f"inet {ip}/" in exec_(oci, "box", "ip", "addr", "show", "eth0")
    wide = oci.kubectl("get", "pods", "-o", "wide").stdout
    assert ip in wide and AGENT_NODE in wide
    # its own root filesystem: the host's files are not there
    assert oci.kubectl("exec", "box", "--", "cat", "/etc/debian_version",
                       check=False).returncode != 0


def test_pods_have_their_own_ips_and_talk_over_tcp(oci: Cluster) -> None:
    apply(oci, pod("server", ctr("nc", "sh", "-c", "while true; do echo pong | nc -l -p 8080; "
                                 "done")))
    apply(oci, pod("client", ctr("c", "sleep", "3600")))
    server, client = running(oci, "server"), running(oci, "client")
    assert server["status"]["podIP"] != client["status"]["podIP"]

    def reply() -> str:
        res = oci.kubectl("exec", "client", "--", "sh", "-c",
                          f"echo ping | nc -w 2 {server['status']['podIP']} 8080", check=False)
        return res.stdout.strip()

    assert wait_for("a reply across pods", reply, timeout=20) == "pong"


def test_containers_of_a_pod_share_localhost_and_nothing_else(oci: Cluster) -> None:
    apply(oci, pod("pair",
                   ctr("server", "sh", "-c", "while true; do echo hello | nc -l -p 9090; done"),
                   ctr("client", "sleep", "3600")))
    running(oci, "pair")
    wait_for("both containers ready", lambda: all(
        s.get("ready") for s in pod_json(oci, "pair")["status"].get("containerStatuses", [])),
        timeout=30)

    def reply() -> str:
        res = oci.kubectl("exec", "pair", "-c", "client", "--", "sh", "-c",
                          "echo hi | nc -w 2 127.0.0.1 9090", check=False)
        return res.stdout.strip()

    assert wait_for("a reply over localhost", reply, timeout=20) == "hello"
    procs = exec_(oci, "pair", "ps", "-o", "args", container="client")
    assert "nc -l" not in procs  # the other container's processes are not visible
    exec_(oci, "pair", "touch", "/tmp/mine", container="client")
    assert oci.kubectl("exec", "pair", "-c", "server", "--", "ls", "/tmp/mine",
                       check=False).returncode != 0  # each has its own root filesystem


def test_memory_over_the_limit_is_oomkilled(oci: Cluster) -> None:
    hog = ctr("hog", "sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
              resources={"limits": {"memory": "24Mi", "cpu": "500m"}})
    apply(oci, pod("hog", hog, restartPolicy="Never"))

    def terminated() -> dict | None:
        statuses = pod_json(oci, "hog")["status"].get("containerStatuses") or []
        return statuses[0]["state"].get("terminated") if statuses else None

    state = wait_for("the hog to be killed", terminated, timeout=60)
    assert state["reason"] == "OOMKilled" and state["exitCode"] == 137  # type: ignore[index]
    assert "OOMKilled" in oci.kubectl("get", "pod", "hog").stdout
    assert pod_json(oci, "hog")["status"]["qosClass"] == "Guaranteed"


def test_a_cpu_limit_is_in_the_containers_cgroup(oci: Cluster) -> None:
    apply(oci, pod("capped", ctr("c", "sleep", "3600",
                                 resources={"requests": {"cpu": "250m"},
                                            "limits": {"cpu": "500m", "memory": "64Mi"}})))
    running(oci, "capped")
    assert pod_json(oci, "capped")["status"]["qosClass"] == "Burstable"
    script = ("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares "
              "2>/dev/null || cat /sys/fs/cgroup/cpu.max")
    seen = exec_(oci, "capped", "sh", "-c", script).split()
    assert seen[:2] in (["50000", "256"], ["50000", "100000"]), seen


def test_security_context_reaches_the_process(oci: Cluster) -> None:
    apply(oci, pod("locked", ctr(
        "c", "sleep", "3600", securityContext={
            "runAsUser": 1234, "runAsGroup": 5678, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}})))
    running(oci, "locked")
    ident = exec_(oci, "locked", "id")
    assert "uid=1234" in ident and "gid=5678" in ident
    res = oci.kubectl("exec", "locked", "--", "touch", "/file", check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr + res.stdout
    caps = exec_(oci, "locked", "grep", "CapEff", "/proc/self/status")
    assert caps.split()[1] == "0000000000000000"


def test_deleting_pods_leaves_nothing_behind(oci: Cluster) -> None:
    apply(oci, pod("temporary", ctr("c", "sleep", "3600"), ctr("d", "sleep", "3600")))
    running(oci, "temporary")
    oci.kubectl("delete", "pods", "--all", "--wait=true", timeout=120)
    root = oci.data_dir / "agent"
    try:
        wait_for("no leftovers of deleted pods", lambda: not leftovers(root, CGROUP_PARENT),
                 timeout=30)
    finally:
        assert leftovers(root, CGROUP_PARENT) == {}


def test_images_are_pulled_from_a_registry_and_missing_ones_back_off(
        oci: Cluster, tmp_path: Path) -> None:
    require("docker-registry")
    from tests.registry import Registry

    built = build_image(tmp_path / "app.tar", name="app:1", cmd=["sleep", "3600"])
    with Registry(tmp_path / "registry") as registry:
        registry.push(built, "team/app", "1")
        image = f"{registry.host}/team/app:1"
        apply(oci, pod("pulled", {"name": "app", "image": image}))
        status = running(oci, "pulled")["status"]["containerStatuses"][0]
        assert status["imageID"].endswith(built.manifest_digest) or \
            built.config_digest in status["imageID"], status
        events = oci.kubectl("get", "events", "--field-selector",
                             "involvedObject.name=pulled").stdout
        assert f'Successfully pulled image "{image}"' in events
        apply(oci, pod("missing", {"name": "app", "image": f"{registry.host}/team/app:nope"}))

        def waiting() -> str:
            statuses = pod_json(oci, "missing")["status"].get("containerStatuses") or []
            state = statuses[0]["state"].get("waiting", {}) if statuses else {}
            return str(state.get("reason", ""))

        wait_for("ErrImagePull", lambda: waiting() == "ErrImagePull", timeout=30)
        wait_for("ImagePullBackOff", lambda: waiting() == "ImagePullBackOff", timeout=30)
        assert "ImagePullBackOff" in oci.kubectl("get", "pod", "missing").stdout
