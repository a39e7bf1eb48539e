"""A node agent killed and started again finds its OCI containers and sandboxes.

Its own cluster and cgroup parent, in a module of its own: no other test's pods
share its host while it checks that a deleted pod leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from tests.cluster import AGENT_NODE, Cluster, free_port, require, wait_for
from tests.imagebuild import build_image
from tests.ocipods import IMAGE, apply, ctr, exec_, node_ready, pod, pod_json, running
from tests.ocitools import leftovers, sweep

pytestmark = pytest.mark.root

CGROUP_PARENT = f"kubeling-e2e-restart-{os.getpid()}"


def test_a_restarted_agent_finds_its_containers_and_sandboxes_again(tmp_path: Path) -> None:
    for tool in ("runc", "busybox", "iptables"):
        require(tool)
    parent = CGROUP_PARENT
    data = tmp_path / "data"
    (data / "agent" / "images-import").mkdir(parents=True)
    build_image(data / "agent" / "images-import" / "busybox.tar", name=IMAGE)
    c = Cluster(data, free_port(), agent=True, runtime="oci")
    c.start("--cgroup-parent", parent)
    try:
        wait_for("the node Ready with a pod CIDR", lambda: node_ready(c), timeout=60)
        apply(c, pod("survivor", ctr("c", "sleep", "7200")))
        before = running(c, "survivor")
        status = before["status"]["containerStatuses"][0]

        def sleepers() -> list[int]:
            return [p.pid for p in psutil.process_iter(["cmdline"])
                    if (p.info["cmdline"] or [])[-2:] == ["sleep", "7200"]]

        pids = wait_for("the container's process", sleepers, timeout=10)
        c.kill()  # SIGKILL: the agent gets no chance to clean up
        assert sleepers() == pids, "the container must outlive its agent"
        c.start("--cgroup-parent", parent)
        wait_for("the restarted agent ready", lambda: c.log_path.read_text(
            errors="replace").count(f"node agent {AGENT_NODE} ready") >= 2, timeout=60)
        after = running(c, "survivor")
        again = after["status"]["containerStatuses"][0]
        assert (again["containerID"], again["restartCount"]) == (status["containerID"], 0)
        assert after["status"]["podIP"] == before["status"]["podIP"]
        assert exec_(c, "survivor", "hostname").strip() == "survivor"
        psutil.Process(pids[0]).kill()  # type: ignore[index]

        def restarted() -> dict | None:
            p = pod_json(c, "survivor")
            cs = (p["status"].get("containerStatuses") or [{}])[0]
            return p if cs.get("restartCount") == 1 and "running" in cs["state"] else None

        third = wait_for("the adopted container's restart", restarted, timeout=30)
        assert third["status"]["podIP"] == before["status"]["podIP"]  # type: ignore[index]
        c.kubectl("delete", "pod", "survivor", "--wait=true", timeout=60)
        wait_for("nothing left of the deleted pod",
                 lambda: not leftovers(data / "agent", parent), timeout=30)
    finally:
        c.stop()
        sweep(data / "agent", parent)
