"""Several "nodes" on one machine: network namespaces on a shared test bridge.

A ``Node`` is a network namespace ``kl-<name>`` with its own address on
10.200.0.0/24 and a default route via the host (10.200.0.1, on the host's
``kltest0``). The nodes and the host meet on a bridge that lives in a "switch"
namespace of its own (``kl-switch``), not in the host's: with br_netfilter
loaded, frames bridged in the host namespace would go through the host's
iptables, where the host's own pods' masquerade rules could rewrite the
nodes' pod traffic. Agents started inside one
(``node.popen``) see only their namespace's links, routes and iptables, so
pod networks and host-gw routes are exercised without touching the host's.
A component on the host listening on 0.0.0.0 or 10.200.0.1 is reachable from
every node.

Commands run in a node through ``nsenter --net`` rather than ``ip netns exec``:
only the network namespace changes, so mounts made inside (a pod's bound
netns, a container's rootfs) are the host's, visible to the test and still
there after the process that made them ends. ``entered()`` moves the calling
thread itself into the node (its sockets and the processes it spawns).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

HOST_BRIDGE = "kltest0"  # the host's link to the switch (a veth, despite the name)
SWITCH = "kl-switch"
HOST_IP = "10.200.0.1"
PREFIX = 24
CLONE_NEWNET = 0x40000000
_lock = threading.Lock()
_users = 0


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _bridge_up() -> None:
    global _users
    with _lock:
        _users += 1
        if ip("link", "show", "dev", HOST_BRIDGE, check=False).returncode != 0:
            ip("netns", "del", SWITCH, check=False)
            ip("netns", "add", SWITCH)
            ip("-n", SWITCH, "link", "add", "br0", "type", "bridge")
            ip("-n", SWITCH, "link", "set", "br0", "up")
            ip("link", "add", HOST_BRIDGE, "type", "veth", "peer", "name", "uplink",
               "netns", SWITCH)
            ip("-n", SWITCH, "link", "set", "uplink", "master", "br0", "up")
            ip("addr", "add", f"{HOST_IP}/{PREFIX}", "dev", HOST_BRIDGE)
            ip("link", "set", HOST_BRIDGE, "up")


def _bridge_down() -> None:
    global _users
    with _lock:
        _users -= 1
        if _users <= 0:
            _users = 0
            ip("netns", "del", SWITCH, check=False)  # its veths go with it
            ip("link", "del", "dev", HOST_BRIDGE, check=False)


class Node:
    """A network namespace that plays a machine. ``index`` (1..200) picks its address
    10.200.0.<10 + index>."""

    def __init__(self, name: str, index: int) -> None:
        if not 1 <= index <= 200:
            raise ValueError("index must be in 1..200")
        self.name = name
        self.netns = f"kl-{name}"
        self.ip = f"10.200.0.{10 + index}"
        self.host_veth = f"klh{index}"
        self._up = False

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        _bridge_up()
        self._up = True
        ip("netns", "del", self.netns, check=False)  # a leftover of a killed run
        ip("-n", SWITCH, "link", "del", "dev", self.host_veth, check=False)
        ip("netns", "add", self.netns)
        ip("-n", SWITCH, "link", "add", self.host_veth, "type", "veth", "peer", "name", "eth0",
           "netns", self.netns)
        ip("-n", SWITCH, "link", "set", self.host_veth, "master", "br0", "up")
        self.ip_cmd("addr", "add", f"{self.ip}/{PREFIX}", "dev", "eth0")
        self.ip_cmd("link", "set", "eth0", "up")
        self.ip_cmd("link", "set", "lo", "up")
        self.ip_cmd("route", "add", "default", "via", HOST_IP)

    def stop(self) -> None:
        if not self._up:
            return
        self._up = False
        ip("netns", "del", self.netns, check=False)
        ip("-n", SWITCH, "link", "del", "dev", self.host_veth, check=False)
        _bridge_down()

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the node."""
        return ["nsenter", f"--net={self.netns_path}", "--", *argv]

    @contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside the node for the block (and back after)."""
        with enter_netns(self.netns_path):
            yield

    def run(self, argv: Sequence[str], *, check: bool = False, timeout: float = 30.0,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        return subprocess.run(self.argv(argv), text=True, check=check, timeout=timeout,
                              **kwargs)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.argv(argv), **kwargs)

    def ip_cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return ip("-n", self.netns, *args, check=check)

    def routes(self) -> list[str]:
        return self.ip_cmd("route", "show").stdout.splitlines()


@contextmanager
def enter_netns(path: str) -> Iterator[None]:
    """The calling thread in the network namespace bound at ``path`` for the block."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original netns")
    finally:
        os.close(own)
        os.close(target)
