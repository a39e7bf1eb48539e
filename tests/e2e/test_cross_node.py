"""Two nodes, one pod network: pods on different nodes talk by pod IP over host-gw routes.

Each "node" is a network namespace on the shared test bridge (tests/netns.py)
running a real ``kubeling agent --runtime oci`` with its own data dir, CNI
bridge, IPAM state and cgroup parent; the API server (scheduler, controllers,
node IPAM) runs on the host, reached at 10.200.0.1. The controller manager
gives each node a /24 of 10.42.0.0/16; each agent writes its bridge conflist
for it and routes the other node's /24 via that node's address. A pod on node
A serves TCP; a pod on node B reaches it by pod IP, pings it, and reaches node
A itself. kubectl drives everything (exec goes through the API server's node
proxy to each agent's kubelet port on its node address).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import REPO, Cluster, free_port, kill_containers, require, wait_for
from tests.imagebuild import build_image
from tests.netns import HOST_IP, Node

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="nodes in netns need root")]

IMAGE = "busybox:1.36"
CNI_BIN = Path("/usr/lib/cni")
# The server pod: "hi" on 8080 (nc), and on 8081 a CGI that answers the caller's address.
CGI = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n'
SERVER = ("mkdir -p /www/cgi-bin && cat > /www/cgi-bin/ip <<'EOF'\n" + CGI + "EOF\n"
          "chmod +x /www/cgi-bin/ip && httpd -p 8081 -h /www && exec nc -ll -p 8080 -e echo hi")


@dataclass
class NodeAgent:
    node: Node
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def log_path(self) -> Path:
        return self.data_dir / "agent.log"

    def start(self, server: str, token: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = self.node.popen(
                [sys.executable, "-m", "kubeling.cli.main", "agent", "--server", server,
                 "--token", token, "--data-dir", str(self.data_dir),
                 "--node-name", self.name, "--node-ip", self.node.ip,
                 "--runtime", "oci", "--cgroup-parent", f"kubeling-{self.name}",
                 "--kubelet-port", "10250", "--kubelet-health-port", "0"],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _prerequisites() -> None:
    for tool in ("runc", "busybox", "ip", "nsenter", "kubectl"):
        require(tool)
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        if not (CNI_BIN / plugin).exists():
            if os.environ.get("CI") == "true":
                pytest.fail(f"CNI plugin {plugin} is required in CI")
            pytest.skip(f"CNI plugin {plugin} is not installed")


def _remove_cgroups(parent: str) -> None:
    """Drop what is left of a node's cgroup tree (empty directories only)."""
    for top in Path("/sys/fs/cgroup").iterdir():
        root = top / parent
        if not root.is_dir():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            root.rmdir()
        except OSError:
            pass


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[Cluster, NodeAgent, NodeAgent]]:
    _prerequisites()
    image = build_image(tmp_path / "busybox.tar", name=IMAGE)
    cluster = Cluster(tmp_path / "server", free_port())
    cluster.data_dir.mkdir()
    agents: list[NodeAgent] = []
    with Node("nodea", 121) as a, Node("nodeb", 122) as b:
        try:
            cluster.start("--listen", f"0.0.0.0:{cluster.port}",
                          "--advertise-address", HOST_IP)
            server, token_value = join_line(cluster)
            for node in (a, b):
                agent = NodeAgent(node, tmp_path / node.name)
                # The image, imported into the node's store before the agent starts.
                imp = subprocess.run(
                    [sys.executable, "-m", "kubeling.cli.main", "images", "--images-dir",
                     str(agent.data_dir / "images"), "import", str(image.path)],
                    cwd=REPO, capture_output=True, text=True, check=False)
                assert imp.returncode == 0, imp.stdout + imp.stderr
                agent.start(server, token_value)
                agents.append(agent)
            yield cluster, agents[0], agents[1]
        except BaseException:
            print("---- server log\n" + cluster.log_tail())
            for agent in agents:
                print(f"---- {agent.name} log\n" + agent.log_tail())
            raise
        finally:
            try:
                cluster.kubectl("delete", "pod", "--all", "--wait=true", "--timeout=60s",
                                check=False, timeout=90)
            finally:
                for agent in agents:
                    agent.stop()
                    kill_containers(agent.data_dir)
                cluster.stop()
                for agent in agents:
                    _remove_cgroups(f"kubeling-{agent.name}")
                    _unmount_under(agent.data_dir)


def _unmount_under(root: Path) -> None:
    """Anything a failed run left mounted under ``root`` (rootfs overlays, netns files)."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(root) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True, check=False)


def join_line(cluster: Cluster) -> tuple[str, str]:
    pattern = re.compile(r"kubeling agent --server (\S+) --token (\S+)")
    found = wait_for("the server to print the join line",
                     lambda: pattern.search(cluster.log_path.read_text(errors="replace")),
                     timeout=30, interval=0.1)
    assert isinstance(found, re.Match)
    return found.group(1), found.group(2)


def nodes(cluster: Cluster) -> dict[str, Any]:
    out = cluster.kubectl("get", "nodes", "-o", "json").stdout
    return {n["metadata"]["name"]: n for n in json.loads(out)["items"]}


def ready_with_cidrs(cluster: Cluster, names: list[str]) -> dict[str, Any] | None:
    found = nodes(cluster)
    for name in names:
        n = found.get(name)
        if n is None or not (n.get("spec") or {}).get("podCIDR"):
            return None
        conds = {c["type"]: c["status"] for c in (n.get("status") or {}).get("conditions") or []}
        if conds.get("Ready") != "True":
            return None
    return found


def pod(name: str, node: str, command: list[str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": IMAGE,
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": command}]}}


def running_ip(cluster: Cluster, name: str) -> str | None:
    res = cluster.kubectl("get", "pod", name, "-o", "json", check=False)
    if res.returncode != 0:
        return None
    obj = json.loads(res.stdout)
    status = obj.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return None
    return str(status["podIP"])


def test_pods_on_two_nodes_talk_by_pod_ip(
        two_nodes: tuple[Cluster, NodeAgent, NodeAgent]) -> None:
    cluster, a, b = two_nodes
    for agent in (a, b):
        assert agent.proc is not None
    found = wait_for("both nodes Ready with a pod CIDR",
                     lambda: ready_with_cidrs(cluster, [a.name, b.name]), timeout=90,
                     interval=0.5)
    assert isinstance(found, dict)
    cidr_a, cidr_b = (found[n.name]["spec"]["podCIDR"] for n in (a, b))
    assert cidr_a != cidr_b
    # Each node routes the other's pods through it (proto 75: kubeling's routes).
    wait_for(f"{a.name} to route {cidr_b} via {b.node.ip}",
             lambda: any(r.startswith(f"{cidr_b} via {b.node.ip}")
                         for r in a.node.routes()), timeout=40, interval=0.2)
    wait_for(f"{b.name} to route {cidr_a} via {a.node.ip}",
             lambda: any(r.startswith(f"{cidr_a} via {a.node.ip}")
                         for r in b.node.routes()), timeout=40, interval=0.2)

    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        pod("server", a.name, ["sh", "-c", SERVER])))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        pod("client", b.name, ["sleep", "3600"])))
    server_ip = wait_for("the server pod Running with an IP",
                         lambda: running_ip(cluster, "server"), timeout=90, interval=0.3)
    client_ip = wait_for("the client pod Running with an IP",
                         lambda: running_ip(cluster, "client"), timeout=90, interval=0.3)
    assert isinstance(server_ip, str) and isinstance(client_ip, str)
    assert server_ip.rsplit(".", 1)[0] == cidr_a.rsplit(".", 1)[0]
    assert client_ip.rsplit(".", 1)[0] == cidr_b.rsplit(".", 1)[0]

    # The client's own view: its address on eth0.
    addr = cluster.kubectl("exec", "client", "--", "ip", "addr").stdout
    assert f"inet {client_ip}/24" in addr

    # Node B's pod → node A's pod, by pod IP, over TCP (the listener answers "hi").
    def talk() -> str | None:
        res = cluster.kubectl("exec", "client", "--", "nc", "-w", "3", server_ip, "8080",
                              check=False, input="")
        return res.stdout if "hi" in res.stdout else None

    assert wait_for(f"client ({client_ip}) to reach server {server_ip}:8080", talk,
                    timeout=30, interval=0.5)
    ping = cluster.kubectl("exec", "client", "--", "ping", "-c", "1", "-W", "3", server_ip,
                           check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # The server sees the client's own pod IP: no NAT between pods.
    # (busybox-static's wget crashes here: HTTP by hand over nc.)
    seen = cluster.kubectl("exec", "-i", "client", "--", "nc", "-w", "3", server_ip, "8081",
                           input="GET /cgi-bin/ip HTTP/1.0\r\n\r\n", check=False)
    answer = seen.stdout.strip().splitlines()[-1:]  # httpd on :: says [::ffff:a.b.c.d]
    assert [a.removeprefix("[::ffff:").rstrip("]") for a in answer] == [client_ip], \
        seen.stdout + seen.stderr
    # Pod → the other node's own address.
    ping = cluster.kubectl("exec", "client", "--", "ping", "-c", "1", "-W", "3", a.node.ip,
                           check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # And back: node A's pod reaches node B's pod.
    ping = cluster.kubectl("exec", "server", "--", "ping", "-c", "1", "-W", "3", client_ip,
                           check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr

    # Deleting the pods leaves no veth on either node's bridge.
    cluster.kubectl("delete", "pod", "server", "client", "--wait=true", "--timeout=60s",
                    timeout=90)
    for agent in (a, b):
        wait_for(f"no pod veth left on {agent.name}",
                 lambda agent=agent: not agent.node.ip_cmd(
                     "link", "show", "master", "kubeling0", check=False).stdout.strip(),
                 timeout=30, interval=0.2)
        netns_left = list(agent.data_dir.rglob("netns/*"))
        assert netns_left == [], netns_left

