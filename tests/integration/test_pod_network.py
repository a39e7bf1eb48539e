"""The pod network with the real CNI plugins (bridge, host-local, portmap, loopback), as root.

Everything happens inside a throwaway "node" (tests/netns.py): the bridge, the
masquerade and hostPort rules land in its namespace, not the host's. Pods are
bare network namespaces made by ``PodNetwork.create_netns``; busybox run in
them (``nsenter --net``) plays the pods' processes.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeling.kubelet.routes import NAT_CHAIN, IpRouteTable, IptablesExemptions, RouteError
from kubeling.runtime.network import PodNetwork
from kubeling.runtime.network import netns as netnsmod
from kubeling.runtime.protocol import PodSandboxConfig, PortMapping
from tests.cluster import require, wait_for
from tests.netns import Node

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

CIDR = "10.244.7.0/24"
CNI_BIN = Path("/usr/lib/cni")
BRIDGE = "kubeling0"


@pytest.fixture
def node() -> Iterator[Node]:
    require("ip")
    require("nsenter")
    require("busybox")
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        if not (CNI_BIN / plugin).exists():
            if os.environ.get("CI") == "true":
                pytest.fail(f"CNI plugin {plugin} is required in CI")
            pytest.skip(f"CNI plugin {plugin} is not installed")
    with Node("podnet", 101) as n:
        yield n


@pytest.fixture
def net(tmp_path: Path, node: Node) -> Iterator[PodNetwork]:
    with node.entered():
        n = PodNetwork(state_dir=tmp_path / "net", conf_dir=tmp_path / "net.d",
                       bin_dirs=[CNI_BIN], netns_dir=tmp_path / "netns", bridge=BRIDGE)
        n.configure(CIDR)
        yield n
    for f in (tmp_path / "netns").glob("*"):  # a failed test's leftovers
        netnsmod.remove(f)


def pod(name: str, *ports: PortMapping) -> PodSandboxConfig:
    return PodSandboxConfig(uid=f"uid-{name}", namespace="default", name=name,
                            port_mappings=ports)


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def in_pod(ns: str, *argv: str, timeout: float = 10.0, **kw: object
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={ns}", "--", *argv], capture_output=True,
                          text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload]


def listen(ns: str, port: int, reply: str) -> subprocess.Popen[str]:
    """busybox nc in the pod answering ``reply`` to one connection, printing what it got."""
    proc = subprocess.Popen(["nsenter", f"--net={ns}", "--", "busybox", "nc", "-l", "-p",
                             str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdin is not None
    proc.stdin.write(reply)
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the port is open in the pod
        out = in_pod(ns, "busybox", "netstat", "-ltn").stdout
        if f":{port} " in out:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"nothing listens on {port} in {ns}")


def bridge_ports() -> list[str]:
    out = subprocess.run(["ip", "-br", "link", "show", "master", BRIDGE], capture_output=True,
                         text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def reservations(net: PodNetwork) -> list[str]:
    d = net.ipam_dir / "kubeling"
    return sorted(p.name for p in d.iterdir()
                  if p.name not in ("lock",) and not p.name.startswith("last_reserved_ip"))


async def test_two_pods_get_addresses_and_talk(net: PodNetwork, node: Node) -> None:
    with node.entered():
        assert net.ready() is None
        a_ns, b_ns = net.create_netns("sandbox-a"), net.create_netns("sandbox-b")
        a = await net.setup("sandbox-a", a_ns, pod("a"))
        b = await net.setup("sandbox-b", b_ns, pod("b"))
        subnet = ipaddress.ip_network(CIDR)
        assert ipaddress.ip_address(a.ip) in subnet and ipaddress.ip_address(b.ip) in subnet
        assert a.ip != b.ip and a.gateway == b.gateway == "10.244.7.1"
        assert sorted(reservations(net)) == sorted([a.ip, b.ip])
        assert len(bridge_ports()) == 2
        # Each pod: lo up, eth0 with its address, a default route via the bridge.
        addr = in_pod(a_ns, "ip", "-br", "addr").stdout
        assert f"{a.ip}/24" in addr and "127.0.0.1/8" in addr
        assert "default via 10.244.7.1" in in_pod(a_ns, "ip", "route").stdout
        # Pod → pod, pod → bridge (the node), by ICMP.
        for target in (b.ip, "10.244.7.1"):
            ping = in_pod(a_ns, "busybox", "ping", "-c", "1", "-W", "3", target)
            assert ping.returncode == 0, ping.stdout + ping.stderr
        # Pod → pod by TCP (no DNS anywhere).
        server = listen(b_ns, 7000, "from-b\n")
        client = in_pod(a_ns, "busybox", "nc", "-w", "3", b.ip, "7000", input="from-a\n")
        assert "from-b" in client.stdout
        out, _ = server.communicate(timeout=10)
        assert "from-a" in out
        # The node reaches pods too (the bridge is the gateway).
        assert sh("busybox", "ping", "-c", "1", "-W", "3", b.ip).returncode == 0
        for sid, ns in (("sandbox-a", a_ns), ("sandbox-b", b_ns)):
            await net.teardown(sid, ns, pod(sid))
            net.remove_netns(ns)
        assert bridge_ports() == []
        assert reservations(net) == []
        assert list((net.netns_dir).iterdir()) == []
        assert net.sandboxes() == []
        rules = sh("iptables-save").stdout
        assert "sandbox-a" not in rules and "sandbox-b" not in rules


async def test_host_port_reaches_the_pod_from_outside_the_node(net: PodNetwork,
                                                               node: Node) -> None:
    with node.entered():
        ns = net.create_netns("sandbox-web")
        web = pod("web", PortMapping(container_port=80, host_port=18080))
        status = await net.setup("sandbox-web", ns, web)
        assert status.ip.startswith("10.244.7.")
        rules = sh("iptables-save", "-t", "nat").stdout
        assert "18080" in rules
    # From the host (another machine, for the node): node IP:hostPort.
    server = listen(ns, 80, "hello from the pod\n")
    with socket.create_connection((node.ip, 18080), timeout=5) as s:
        s.sendall(b"hi\n")
        got = s.recv(100)
    assert got == b"hello from the pod\n"
    server.communicate(timeout=10)
    with node.entered():
        await net.teardown("sandbox-web", ns, web)
        net.remove_netns(ns)
        rules = sh("iptables-save", "-t", "nat").stdout
        assert "18080" not in rules and "sandbox-web" not in rules
        assert bridge_ports() == [] and reservations(net) == []


async def test_teardown_after_the_netns_is_gone_still_frees_the_address(
        net: PodNetwork, node: Node) -> None:
    with node.entered():
        ns = net.create_netns("sandbox-gone")
        status = await net.setup("sandbox-gone", ns, pod("gone"))
        assert reservations(net) == [status.ip]
        net.remove_netns(ns)  # the veth dies with the namespace
        net.remove_netns(ns)  # idempotent
        assert not Path(ns).exists()
        await net.teardown("sandbox-gone", ns, pod("gone"))
        await net.teardown("sandbox-gone", ns, pod("gone"))  # idempotent
        assert reservations(net) == []
        # The kernel frees a namespace (and the veth in it) a moment after its last user.
        wait_for("the veth to go with its namespace", lambda: bridge_ports() == [])


def test_netns_files_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "ns1"
    first = netnsmod.create(path)
    try:
        assert netnsmod.is_netns(path)
        inode = os.stat(path).st_ino
        assert netnsmod.create(path) == first and os.stat(path).st_ino == inode
        # A new namespace, not ours: only lo, down.
        links = in_pod(first, "ip", "-br", "link").stdout.split()
        assert links[0] == "lo" and "DOWN" in links
        own = os.readlink("/proc/self/ns/net")
        assert os.readlink("/proc/thread-self/ns/net") == own  # the caller stayed home
    finally:
        netnsmod.remove(path)
    assert not path.exists()
    netnsmod.remove(path)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(path) not in mounts


async def test_route_table_changes_only_its_own_routes(node: Node) -> None:
    table = IpRouteTable()
    with node.entered():
        sh("ip", "route", "add", "10.42.50.0/24", "via", "10.200.0.1")  # not ours
        await table.replace("10.42.51.0/24", "10.200.0.1")
        await table.replace("10.42.52.0/24", "10.200.0.1")
        await table.replace("10.42.52.0/24", "10.200.0.1")  # idempotent
        assert await table.list() == {"10.42.51.0/24": "10.200.0.1",
                                      "10.42.52.0/24": "10.200.0.1"}
        assert "10.42.51.0/24 via 10.200.0.1 dev eth0 proto 75" in sh("ip", "route").stdout
        await table.delete("10.42.51.0/24")
        with pytest.raises(RouteError):
            await table.delete("10.42.50.0/24")  # someone else's: left alone
        with pytest.raises(RouteError):
            await table.replace("10.42.53.0/24", "10.99.99.99")  # no such neighbour
        assert await table.list() == {"10.42.52.0/24": "10.200.0.1"}
        assert "10.42.50.0/24 via 10.200.0.1" in sh("ip", "route").stdout


async def test_pod_to_pod_traffic_is_exempt_from_the_masquerade(node: Node) -> None:
    nat = IptablesExemptions()
    with node.entered():
        await nat.set("10.42.0.0/24", [])  # nothing to exempt: no chain made
        assert NAT_CHAIN not in sh("iptables-save", "-t", "nat").stdout
        await nat.set("10.42.0.0/24", ["10.42.2.0/24", "10.42.1.0/24", "fd00::/64"])
        await nat.set("10.42.0.0/24", ["10.42.1.0/24", "10.42.2.0/24"])  # unchanged
        rules = sh("iptables", "-t", "nat", "-S").stdout.splitlines()
        jumps = [r for r in rules if r.startswith("-A POSTROUTING")]
        assert jumps[0] == f"-A POSTROUTING -j {NAT_CHAIN}" and len(jumps) == 1
        mine = [r.split(" -m comment")[0] for r in rules if r.startswith(f"-A {NAT_CHAIN}")]
        assert mine == [f"-A {NAT_CHAIN} -s 10.42.0.0/24 -d 10.42.1.0/24",
                        f"-A {NAT_CHAIN} -s 10.42.0.0/24 -d 10.42.2.0/24"]
        await nat.set("10.42.0.0/24", ["10.42.2.0/24"])
        mine = [r for r in sh("iptables", "-t", "nat", "-S", NAT_CHAIN).stdout.splitlines()
                if r.startswith("-A")]
        assert len(mine) == 1 and "-d 10.42.2.0/24" in mine[0]


async def test_a_bridge_left_with_another_cidr_is_made_again(tmp_path: Path,
                                                             node: Node) -> None:
    with node.entered():
        old = PodNetwork(state_dir=tmp_path / "old", conf_dir=tmp_path / "old.d",
                         bin_dirs=[CNI_BIN], netns_dir=tmp_path / "netns", bridge=BRIDGE)
        old.configure("10.244.8.0/24")
        ns = old.create_netns("sandbox-old")
        await old.setup("sandbox-old", ns, pod("old"))
        # Another CIDR while a pod still uses the bridge: left alone (that pod keeps working).
        new = PodNetwork(state_dir=tmp_path / "new", conf_dir=tmp_path / "new.d",
                         bin_dirs=[CNI_BIN], netns_dir=tmp_path / "netns", bridge=BRIDGE)
        new.configure("10.244.9.0/24")
        assert "10.244.8.1/24" in sh("ip", "-br", "addr", "show", BRIDGE).stdout
        await old.teardown("sandbox-old", ns, pod("old"))
        old.remove_netns(ns)
        wait_for("the old pod's veth to go", lambda: bridge_ports() == [])
        new.configure("10.244.9.0/24")  # the bridge is idle now: deleted, made again
        ns = new.create_netns("sandbox-new")
        status = await new.setup("sandbox-new", ns, pod("new"))
        assert status.ip.startswith("10.244.9.") and status.gateway == "10.244.9.1"
        addrs = sh("ip", "-br", "addr", "show", BRIDGE).stdout
        assert "10.244.9.1/24" in addrs and "10.244.8.1" not in addrs
        assert not new.remove_bridge()  # a pod is on it
        await new.teardown("sandbox-new", ns, pod("new"))
        new.remove_netns(ns)
        wait_for("the new pod's veth to go", lambda: bridge_ports() == [])
        assert new.remove_bridge()
        assert sh("ip", "link", "show", BRIDGE).returncode != 0
