"""A second machine joins: ``kubeling agent --server ... --token ...`` (the line the server
prints) registers a second node that kubectl shows Ready and that runs the pods pinned to it;
a token that is wrong, or pins another CA, is refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeling.apiserver.certs import Pki, join_token
from tests.cluster import AGENT_NODE, REPO, Cluster, kill_containers, wait_for

SECOND = "kubeling-agent-2"


class AgentProcess:
    """A ``kubeling agent`` process with its own data dir."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "agent.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubeling.cli.main", "agent", "--data-dir",
                 str(data_dir), "--kubelet-port", "0", "--kubelet-health-port", "0",
                 "--runtime", "process", *args],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def printed_token(cluster: Cluster) -> tuple[str, str]:
    """(server, token) from the ``kubeling agent`` line the server printed on start."""
    pattern = re.compile(r"kubeling agent --server (\S+) --token (\S+)")
    found = wait_for("the server to print the join line",
                     lambda: pattern.search(cluster.log_path.read_text(errors="replace")),
                     timeout=30, interval=0.1)
    assert isinstance(found, re.Match)
    return found.group(1), found.group(2)


def nodes_wide(cluster: Cluster) -> dict[str, dict[str, str]]:
    out = cluster.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    if not out:  # "No resources found" (on stderr): no node has registered yet
        return {}
    header = re.split(r"\s{2,}", out[0].strip())
    rows = {}
    for line in out[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = dict(zip(header, cells, strict=False))
    return rows


def both_ready(cluster: Cluster) -> dict[str, dict[str, str]] | None:
    rows = nodes_wide(cluster)
    if all(rows.get(n, {}).get("STATUS") == "Ready" for n in (AGENT_NODE, SECOND)):
        return rows
    return None


@pytest.fixture
def second_agent(fresh_agent_cluster: Cluster, tmp_path: Path) -> Iterator[AgentProcess]:
    server, token = printed_token(fresh_agent_cluster)
    agent = AgentProcess(tmp_path / "agent-2", "--server", server, "--token", token,
                         "--node-name", SECOND, "--node-labels", "example.com/second=yes")
    yield agent
    agent.stop()
    kill_containers(agent.data_dir)


def test_a_second_agent_joins_and_runs_its_pods(fresh_agent_cluster: Cluster,
                                                second_agent: AgentProcess) -> None:
    cluster = fresh_agent_cluster

    def ready() -> dict[str, dict[str, str]] | None:
        assert second_agent.proc.poll() is None, f"agent exited:\n{second_agent.log()}"
        return both_ready(cluster)

    rows = wait_for("both nodes Ready", ready, timeout=60, interval=0.5)
    assert isinstance(rows, dict)
    for name in (AGENT_NODE, SECOND):
        row = rows[name]
        assert re.fullmatch(r"[0-9a-f.:]+", row["INTERNAL-IP"]), row
        assert row["OS-IMAGE"] not in ("", "<unknown>"), row
        assert row["KERNEL-VERSION"] == os.uname().release, row
        assert row["CONTAINER-RUNTIME"].startswith("process://"), row
        assert row["VERSION"] == "v1.32.0+kubeling", row
    assert rows[AGENT_NODE]["ROLES"] == "control-plane"
    assert rows[SECOND]["ROLES"] == "<none>"
    node = json.loads(cluster.kubectl("get", "node", SECOND, "-o", "json").stdout)
    assert node["metadata"]["labels"]["example.com/second"] == "yes"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    lease = json.loads(cluster.kubectl("get", "lease", SECOND, "-n", "kube-node-lease",
                                       "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == SECOND
    # The agent keeps its credentials: a kubeconfig pinned to the cluster's CA.
    assert (second_agent.data_dir / "kubeconfig.yaml").exists()
    assert (second_agent.data_dir / "pki" / "ca.crt").read_bytes() == cluster.ca.read_bytes()

    cluster.kubectl("apply", "-f", "-", input=f"""\
apiVersion: v1
kind: Pod
metadata: {{name: on-second}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {SECOND}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'echo hello from $(hostname); sleep 3600']
""")

    def running() -> dict[str, object] | None:
        pod = json.loads(cluster.kubectl("get", "pod", "on-second", "-o", "json").stdout)
        return pod if pod.get("status", {}).get("phase") == "Running" else None

    pod = wait_for("the pod Running on the second node", running, timeout=60, interval=0.5)
    assert isinstance(pod, dict)
    assert pod["spec"]["nodeName"] == SECOND
    # Its log comes from the second agent's kubelet API, through the API server.
    logs = wait_for("the pod's log", lambda: cluster.kubectl(
        "logs", "on-second", check=False).stdout, timeout=20, interval=0.5)
    assert "hello from" in str(logs)
    cluster.kubectl("delete", "pod", "on-second", "--wait=true", timeout=60)


def test_wrong_tokens_are_refused(agent_cluster: Cluster, tmp_path: Path) -> None:
    pki = Pki(agent_cluster.data_dir / "pki")
    right = join_token(pki)
    ca_hash = right[3:3 + 64]
    wrong_secret = AgentProcess(tmp_path / "a", "--server", agent_cluster.url, "--token",
                                f"K10{ca_hash}::node:not-the-secret", "--node-name", "bad-1")
    other_ca = AgentProcess(tmp_path / "b", "--server", agent_cluster.url, "--token",
                            "K10" + "0" * 64 + right[3 + 64:], "--node-name", "bad-2")
    try:
        assert wrong_secret.proc.wait(30) != 0
        assert "refused the join token" in wrong_secret.log()
        assert other_ca.proc.wait(30) != 0
        assert "does not match the hash in the join token" in other_ca.log()
    finally:
        wrong_secret.stop()
        other_ca.stop()
    names = agent_cluster.kubectl("get", "nodes", "-o", "name").stdout
    assert "bad-1" not in names and "bad-2" not in names
    assert not (tmp_path / "a" / "kubeconfig.yaml").exists()
