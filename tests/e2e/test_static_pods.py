"""A static pod end to end: a manifest dropped in the node's manifest directory runs without
the API, shows in kubectl as a mirror pod, survives the mirror's deletion and stops with its
file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psutil

from tests.cluster import AGENT_NODE, Cluster, require, wait_for

MARK = "36007"  # the sleep's argument, to find its process among the other tests'
MANIFEST = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: static-web
  labels: {{app: static-web}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: busybox:1.36
    command: [sleep, "{MARK}"]
"""
MIRROR = f"static-web-{AGENT_NODE}"


def sleepers() -> set[int]:
    """Our static pod's processes (and those left by an earlier run of this test)."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if len(cmd) == 2 and Path(cmd[0]).name == "sleep" and cmd[1] == MARK:
            found.add(proc.pid)
    return found


def get_mirror(cluster: Cluster) -> dict[str, Any] | None:
    res = cluster.kubectl("get", "pod", MIRROR, "-n", "default", "-o", "json", check=False)
    if res.returncode != 0:
        assert "NotFound" in res.stderr, res.stderr
        return None
    pod: dict[str, Any] = json.loads(res.stdout)
    return pod


def running_mirror(cluster: Cluster) -> dict[str, Any] | None:
    pod = get_mirror(cluster)
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return None
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if pod["status"].get("phase") != "Running" or not statuses:
        return None
    return pod


def test_static_pod_and_its_mirror(agent_cluster: Cluster) -> None:
    require("kubectl")
    cluster = agent_cluster
    manifests = cluster.data_dir / "manifests"
    earlier = sleepers()
    staged = manifests / ".static-web.yaml"  # dot files are not read: write, then rename
    staged.write_text(MANIFEST)
    staged.rename(manifests / "static-web.yaml")
    try:
        pod = wait_for("the mirror pod Running", lambda: running_mirror(cluster), timeout=30)
        assert isinstance(pod, dict)
        meta = pod["metadata"]
        assert meta["annotations"]["kubernetes.io/config.source"] == "file"
        assert meta["annotations"]["kubernetes.io/config.mirror"] == \
            meta["annotations"]["kubernetes.io/config.hash"]
        assert meta["ownerReferences"][0]["kind"] == "Node"
        assert meta["ownerReferences"][0]["name"] == AGENT_NODE
        assert pod["spec"]["nodeName"] == AGENT_NODE
        container_id = pod["status"]["containerStatuses"][0]["containerID"]
        assert wait_for("the static pod's process", lambda: sleepers() - earlier, timeout=10)
        pids = sleepers() - earlier
        assert len(pids) == 1

        listed = cluster.kubectl("get", "pods", "-n", "default").stdout
        row = next(line for line in listed.splitlines() if line.startswith(MIRROR))
        assert "1/1" in row.split() and "Running" in row.split()
        described = cluster.kubectl("describe", "pod", MIRROR, "-n", "default").stdout
        assert re.search(rf"Controlled By:\s+Node/{AGENT_NODE}\n", described), described
        assert "kubernetes.io/config.mirror" in described

        # Deleting the mirror (as a user would, gracefully) does not stop the static pod.
        cluster.kubectl("delete", "pod", MIRROR, "-n", "default", timeout=90)
        try:
            back = wait_for("the mirror pod back and Running",
                            lambda: (p := running_mirror(cluster)) is not None
                            and p["metadata"]["uid"] != meta["uid"] and p, timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the mirror: {get_mirror(cluster)}") from None
        assert isinstance(back, dict)
        assert back["status"]["containerStatuses"][0]["containerID"] == container_id
        assert back["status"]["containerStatuses"][0]["restartCount"] == 0
        assert sleepers() - earlier == pids
    finally:
        (manifests / "static-web.yaml").unlink(missing_ok=True)

    wait_for("the mirror pod gone", lambda: get_mirror(cluster) is None, timeout=30)
    wait_for("the static pod's process gone", lambda: not sleepers() & pids, timeout=30)
