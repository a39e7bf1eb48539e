"""A node's pod network: its CNI configuration, and each sandbox's namespace and addresses.

The OCI runtime asks this for everything network: ``configure`` when the node
learns its pod CIDR, ``ready`` for the node's NetworkReady condition,
``create_netns`` + ``setup`` when a sandbox starts, ``teardown`` +
``remove_netns`` when it stops. Every operation is idempotent, as the
runtime retries after crashes: a second setup of a sandbox returns what the
first one gave, a teardown of something already gone does nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubeling.runtime.network import bridge as bridgelink
from kubeling.runtime.network import conflist, netns
from kubeling.runtime.network.cni import Cache, CacheEntry, Call, add_list, cni_args, del_list
from kubeling.runtime.network.cni import port_mappings as port_mapping_config
from kubeling.runtime.network.result import NetworkError, NetworkStatus, status_from_result
from kubeling.runtime.protocol import PodSandboxConfig

log = logging.getLogger("kubeling.runtime.network")

IFNAME = "eth0"
LOOPBACK_CONF = {"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [
    {"type": "loopback"}]}
UNINITIALIZED = "cni config uninitialized"


class PodNetwork:
    """The CNI network of one node agent. ``state_dir`` holds the result cache and the IPAM
    state; ``conf_dir`` the network configurations; ``bin_dirs`` the plugins; ``netns_dir``
    the sandboxes' bound namespaces; ``bridge`` the name of our bridge."""

    def __init__(self, *, state_dir: Path, conf_dir: Path, bin_dirs: Sequence[Path],
                 netns_dir: Path, bridge: str = "kubeling0") -> None:
        self.state_dir = Path(state_dir)
        self.conf_dir = Path(conf_dir)
        self.bin_dirs = tuple(Path(d) for d in bin_dirs)
        self.netns_dir = Path(netns_dir)
        self.bridge = bridge
        self.pod_cidr = ""
        self.cache = Cache(self.state_dir / "results")
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def ipam_dir(self) -> Path:
        return self.state_dir / "ipam"

    @property
    def our_file(self) -> Path:
        return self.conf_dir / conflist.OUR_FILE

    # ----- configuration --------------------------------------------------------------

    def configure(self, pod_cidr: str) -> None:
        """Write our network for ``pod_cidr`` unless a configuration of the user's sorts
        first in the configuration directory."""
        cidr = str(ipaddress.ip_network(pod_cidr, strict=False))
        self.pod_cidr = cidr
        others = [p for p in conflist.config_files(self.conf_dir) if p.name != conflist.OUR_FILE]
        if others and others[0].name < conflist.OUR_FILE:
            log.info("CNI: using %s (ours is not written)", others[0])
            return
        doc = conflist.kubeling_conflist(cidr, bridge=self.bridge, ipam_dir=self.ipam_dir)
        if conflist.write(self.our_file, doc):
            log.info("CNI: wrote %s for the pod CIDR %s (bridge %s)", self.our_file, cidr,
                     self.bridge)
        # A bridge left with another CIDR's gateway (the node's CIDR changed, or another
        # agent used the name) would refuse every pod: made again when no pod is on it.
        bridgelink.reset_if_stale(self.bridge, cidr)

    def ready(self) -> str | None:
        """None when the node's network can be set up, else why not."""
        found = conflist.first_config(self.conf_dir)
        if found is None:
            return UNINITIALIZED
        for t in conflist.plugin_types(found[1]):
            if conflist.find_plugin(t, self.bin_dirs) is None:
                dirs = " ".join(str(d) for d in self.bin_dirs)
                return f'failed to find plugin "{t}" in path [{dirs}]'
        return None

    # ----- namespaces -----------------------------------------------------------------

    def create_netns(self, sandbox_id: str) -> str:
        """The sandbox's network namespace, bound at ``<netns_dir>/<sandbox_id>``."""
        if not sandbox_id or "/" in sandbox_id or sandbox_id.startswith("."):
            raise ValueError(f"bad sandbox id {sandbox_id!r}")
        return netns.create(self.netns_dir / sandbox_id)

    def remove_netns(self, path: str) -> None:
        if path:
            netns.remove(Path(path))

    # ----- CNI ADD / DEL --------------------------------------------------------------

    def _lock(self, sandbox_id: str) -> asyncio.Lock:
        lock = self._locks.get(sandbox_id)
        if lock is None:
            lock = self._locks[sandbox_id] = asyncio.Lock()
        return lock

    async def setup(self, sandbox_id: str, netns_path: str, config: PodSandboxConfig
                    ) -> NetworkStatus:
        """Attach the sandbox's namespace to the network (loopback up, then the node's
        network list); its addresses. On failure nothing of it is left attached."""
        async with self._lock(sandbox_id):
            cached = self.cache.load(sandbox_id)
            if cached is not None and cached.netns == netns_path and cached.result:
                return status_from_result(cached.result, cached.ifname)
            if cached is not None:
                await self._teardown(sandbox_id, cached.netns)
            found = conflist.first_config(self.conf_dir)
            if found is None:
                raise NetworkError(UNINITIALIZED)
            doc = found[1]
            await self._loopback(sandbox_id, netns_path)
            entry = CacheEntry(sandbox_id=sandbox_id, netns=netns_path, ifname=IFNAME,
                               args=cni_args(sandbox_id, config), conflist=doc,
                               runtime_config=self._runtime_config(config))
            call = Call("ADD", sandbox_id, netns_path, IFNAME, entry.args, self.bin_dirs)
            try:
                entry.result = await add_list(call, doc, entry.runtime_config)
                status = status_from_result(entry.result, IFNAME)
            except NetworkError as exc:
                try:
                    await del_list(Call("DEL", sandbox_id, netns_path, IFNAME, entry.args,
                                        self.bin_dirs), doc, entry.runtime_config, None)
                except NetworkError as undo:
                    log.warning("CNI: undoing the failed ADD of %s: %s", sandbox_id[:12], undo)
                raise NetworkError(f"setting up the network of pod {config.namespace}/"
                                   f"{config.name}: {exc}") from exc
            self.cache.save(entry)
            log.debug("CNI: sandbox %s has %s", sandbox_id[:12], ", ".join(status.ips))
            return status

    async def teardown(self, sandbox_id: str, netns_path: str,
                       config: PodSandboxConfig | None = None) -> None:
        """Detach the sandbox from the network (CNI DEL with what it was added with)."""
        async with self._lock(sandbox_id):
            await self._teardown(sandbox_id, netns_path, config)
        self._locks.pop(sandbox_id, None)

    async def _teardown(self, sandbox_id: str, netns_path: str,
                        config: PodSandboxConfig | None = None) -> None:
        entry = self.cache.load(sandbox_id)
        if entry is None:
            if config is None:
                return
            # No record of an ADD (it failed half way, or the cache was lost): DEL with
            # the current configuration, which the plugins answer kindly when unknown.
            found = conflist.first_config(self.conf_dir)
            if found is None:
                return
            entry = CacheEntry(sandbox_id=sandbox_id, netns=netns_path, ifname=IFNAME,
                               args=cni_args(sandbox_id, config), conflist=found[1],
                               runtime_config=self._runtime_config(config))
        ns = netns_path or entry.netns
        if not netns.is_netns(ns):
            ns = ""  # gone: the plugins release what lives outside it (IPAM, host rules)
        call = Call("DEL", sandbox_id, ns, entry.ifname, entry.args, self.bin_dirs)
        try:
            await del_list(call, entry.conflist, entry.runtime_config, entry.result or None)
        except NetworkError as exc:
            raise NetworkError(f"tearing down the network of sandbox {sandbox_id[:12]}: "
                               f"{exc}") from exc
        self.cache.remove(sandbox_id)

    async def _loopback(self, sandbox_id: str, netns_path: str) -> None:
        call = Call("ADD", sandbox_id, netns_path, "lo", "", self.bin_dirs)
        if conflist.find_plugin("loopback", self.bin_dirs) is not None:
            await add_list(call, LOOPBACK_CONF, {})
            return
        proc = await asyncio.create_subprocess_exec(
            "nsenter", f"--net={netns_path}", "ip", "link", "set", "lo", "up",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise NetworkError(f"bringing up lo in {netns_path}: {err.decode().strip()}")

    @staticmethod
    def _runtime_config(config: PodSandboxConfig) -> dict[str, Any]:
        ports = port_mapping_config(config.port_mappings)
        return {"portMappings": ports} if ports else {}

    def remove_bridge(self) -> bool:
        """Delete our bridge if no pod is attached to it (a node leaving, a test's end);
        True if it was deleted. The next setup makes it again."""
        if bridgelink.ports(self.bridge):
            return False
        return bridgelink.delete(self.bridge)

    def sandboxes(self) -> list[str]:
        """The sandboxes with a network set up (from the cache)."""
        return self.cache.ids()
