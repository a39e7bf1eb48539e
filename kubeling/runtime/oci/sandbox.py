"""A pod sandbox's own parts: the pause container's bundle and the pod's /etc files.

The pause container only holds namespaces: the pod's network namespace (which
the CNI plugins configured before it starts), and new IPC and UTS namespaces
(hostname = the pod's) that every container of the pod joins. It runs
busybox-static's ``sleep`` (busybox picks the applet from argv[0]) from a tiny
read-only root filesystem shared by every sandbox of the runtime, so a sandbox
needs no image.

Each container bind-mounts the sandbox's ``hosts``, ``hostname`` and
``resolv.conf``, so every container of a pod resolves the same way. What they
say is the kubelet's choice (dnsPolicy, subdomain, hostAliases): the runtime
writes the resolver settings it is given, and the host's (minus loopback
nameservers) only when it is given none.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

from kubeling.runtime.oci import bundle
from kubeling.runtime.oci.users import User
from kubeling.runtime.protocol import PodSandboxConfig, RuntimeFailure, Security

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
PAUSE_ARGV = ("/sleep", "infinity")


def busybox() -> Path:
    for candidate in BUSYBOX_PATHS:
        if os.path.isfile(candidate):
            return Path(candidate)
    raise RuntimeFailure("CreatePodSandboxError",
                         "busybox (Debian's busybox-static) is needed for the pause container")


def pause_rootfs(root: Path) -> Path:
    """``root/pause/rootfs``: /sleep (a static busybox) and the mount points runc needs."""
    rootfs = root / "pause" / "rootfs"
    sleep = rootfs / "sleep"
    if sleep.is_file():
        return rootfs
    for d in ("proc", "dev", "sys", "etc"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    tmp = rootfs / f".sleep.{os.getpid()}"
    shutil.copyfile(busybox(), tmp)
    tmp.chmod(0o755)
    os.replace(tmp, sleep)
    return rootfs


def hostname(config: PodSandboxConfig) -> str:
    if config.host_network:
        return socket.gethostname()
    return (config.hostname or config.name)[:63]


def hosts_file(ip: str, name: str, *, domain: str = "",
               aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> str:
    """The pod's /etc/hosts as the kubelet manages it: loopback names, the pod's own name
    (fully qualified first when it has a subdomain), then its hostAliases."""
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes",
             "fe00::2\tip6-allrouters"]
    if ip:
        lines.append(f"{ip}\t{name}.{domain}\t{name}" if domain else f"{ip}\t{name}")
    return "\n".join(lines) + "\n" + alias_entries(aliases)


def alias_entries(aliases: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    if not aliases:
        return ""
    lines = ["", "# Entries added by HostAliases."]
    lines.extend(f"{ip}\t{chr(9).join(names)}" for ip, names in aliases)
    return "\n".join(lines) + "\n"


def host_network_hosts(config: PodSandboxConfig, path: str = "/etc/hosts") -> str:
    """A host-network pod sees the node's own /etc/hosts, plus its hostAliases."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return hosts_file("", "", aliases=config.host_aliases)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + alias_entries(config.host_aliases)


def host_nameservers(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str], list[str]]:
    """The host's resolver settings, minus loopback nameservers (a pod cannot reach the
    host's 127.0.0.53)."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError:
        return servers, searches, options
    for line in lines:
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            if not words[1].startswith("127.") and words[1] != "::1":
                servers.append(words[1])
        elif words[0] == "search":
            searches = words[1:]
        elif words[0] == "options":
            options = words[1:]
    return servers, searches, options


def resolv_conf(config: PodSandboxConfig) -> str:
    if config.dns_servers or config.dns_searches or config.dns_options:
        servers = list(config.dns_servers)
        searches = list(config.dns_searches)
        options = list(config.dns_options)
    else:
        servers, searches, options = host_nameservers()
    lines = [f"nameserver {s}" for s in servers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + ("\n" if lines else "")


def write_files(directory: Path, config: PodSandboxConfig, ip: str) -> dict[str, str]:
    """The pod's /etc files; returns container path -> host path."""
    name = hostname(config)
    hosts = host_network_hosts(config) if config.host_network else hosts_file(
        ip, name, domain=config.hostname_domain, aliases=config.host_aliases)
    files = {"hosts": hosts, "hostname": name + "\n",
             "resolv.conf": resolv_conf(config)}
    found = {}
    for file_name, content in files.items():
        path = directory / file_name
        tmp = path.with_name(file_name + ".tmp")
        tmp.write_text(content)
        tmp.chmod(0o644)
        os.replace(tmp, path)
        found[f"/etc/{file_name}"] = str(path)
    return found


def etc_files(directory: Path) -> dict[str, str]:
    return {f"/etc/{n}": str(directory / n) for n in ("hosts", "hostname", "resolv.conf")
            if (directory / n).exists()}


def pause_spec(config: PodSandboxConfig, *, rootfs: Path, netns: str, cgroups_path: str,
               resources: dict[str, Any]) -> dict[str, Any]:
    mounts = [m for m in bundle.system_mounts(False)
              if m["destination"] in ("/proc", "/dev", "/dev/shm", "/dev/mqueue")]
    host_net = config.host_network
    return bundle.spec(
        args=PAUSE_ARGV, env=[f"PATH={bundle.DEFAULT_PATH}"], cwd="/", user=User(0, 0),
        tty=False, security=Security(drop_capabilities=("ALL",)), readonly_root=True,
        mounts=mounts,
        linux_namespaces=bundle.namespaces(
            network=None if host_net else netns, ipc=None, uts=None,
            new_uts=not host_net, new_ipc=not config.host_ipc),
        cgroups_path=cgroups_path, resources=resources,
        hostname="" if host_net else hostname(config),
        sysctls=None if host_net else dict(config.sysctls), root=str(rootfs))
