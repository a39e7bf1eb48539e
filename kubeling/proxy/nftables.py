"""The nftables backend: programs the proxy's table with one ``nft -f -`` transaction per sync.

It remembers what it programmed, per Service, as :class:`PortRules`; a sync is
given the Services that changed and writes only the difference: new chains
are declared, chains whose rules changed are flushed and refilled, map
elements are deleted and added one by one, chains and affinity sets of gone
ports are deleted last (after nothing refers to them). A full sync deletes the
table and writes it again in the same transaction, so packets see either the
old or the new rules, never a half table; it runs at start (taking over the
rules a previous proxy left), periodically, and whenever an incremental
transaction fails (e.g. someone deleted the table).

``command_prefix`` runs nft elsewhere (``["ip", "netns", "exec", NS]``): the
tests program a throwaway network namespace with it. IPv4 only (an ``ip``
family table).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kubeling.proxy import nftrules
from kubeling.proxy.model import ServicePort
from kubeling.proxy.nftrules import PortRules

log = logging.getLogger("kubeling.proxy")

BRIDGE_SYSCTL = "net/bridge/bridge-nf-call-iptables"
FORWARD_SYSCTL = "net/ipv4/ip_forward"


# Gone objects go in this order: maps (they point at chains), chains, then affinity sets
# (rules pointing at them were flushed earlier in the transaction).
_DELETE_ORDER = {"map": 0, "chain": 1, "set": 2}


class NftError(RuntimeError):
    """nft refused a transaction (the message is nft's)."""


class NftRunner:
    """Runs ``nft`` (through an optional command prefix) with a script on stdin."""

    def __init__(self, command_prefix: Sequence[str] = (), nft: str = "nft") -> None:
        self.argv = [*command_prefix, nft]
        self.prefix = list(command_prefix)

    async def run(self, *args: str, script: str | None = None) -> str:
        argv = [*self.argv, *(args or ("-f", "-"))]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if script is not None else None,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(script.encode() if script is not None else None)
        if proc.returncode != 0:
            raise NftError(err.decode(errors="replace").strip()[-2000:] or
                           f"nft exited with {proc.returncode}")
        return out.decode(errors="replace")

    async def apply(self, script: str) -> None:
        await self.run("-f", "-", script=script)

    async def sysctl(self, key: str, value: str) -> bool:
        """Write a /proc/sys value where nft runs; False when it does not exist there."""
        if not self.prefix:
            path = Path("/proc/sys") / key
            if not path.exists():
                return False
            if path.read_text().strip() != value:
                path.write_text(value)
            return True
        proc = await asyncio.create_subprocess_exec(
            *self.prefix, "sh", "-c", f'test -e /proc/sys/{key} && echo {value} > '
            f'/proc/sys/{key}', stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        return await proc.wait() == 0


def _elements(verb: str, table: str, items: Iterable[tuple[tuple[str, str], str | None]]
              ) -> list[str]:
    by_map: dict[str, list[str]] = {}
    for (name, key), value in items:
        by_map.setdefault(name, []).append(key if value is None else f"{key} : {value}")
    return [f"{verb} element ip {table} {name} {{ {', '.join(keys)} }}"
            for name, keys in sorted(by_map.items())]


class NftablesBackend:
    """Owns table ``ip <table>``; knows what it wrote there."""

    def __init__(self, *, table: str = "kubeling", cluster_cidr: str = "10.42.0.0/16",
                 command_prefix: Sequence[str] = (), masquerade_all: bool = False) -> None:
        self.table = table
        self.cluster_cidr = cluster_cidr
        self.masquerade_all = masquerade_all
        self.runner = NftRunner(command_prefix)
        self.programmed: dict[str, PortRules] = {}
        self.last_script = ""

    @staticmethod
    def available() -> tuple[bool, str]:
        """Whether this process can program nftables, and why not."""
        if os.geteuid() != 0:
            return False, "not running as root"
        from shutil import which

        if which("nft") is None:
            return False, "no nft command"
        return True, "root and nft are available"

    async def setup(self) -> None:
        """Kernel settings the rules rely on: forwarding, and bridged pod traffic through
        netfilter (without it, a pod answering a pod on the same bridge skips the reverse
        NAT, so all service traffic is masqueraded instead)."""
        await self.runner.sysctl(FORWARD_SYSCTL, "1")
        if not await self.runner.sysctl(BRIDGE_SYSCTL, "1"):
            log.warning("br_netfilter is not loaded (no /proc/sys/%s): masquerading all "
                        "service traffic so replies come back through this node",
                        BRIDGE_SYSCTL)
            self.masquerade_all = True

    def rules_for(self, ports: Iterable[ServicePort]) -> PortRules:
        """The merged rules of one Service's ports."""
        out = PortRules()
        for sp in ports:
            out.merge(nftrules.port_rules(sp, cluster_cidr=self.cluster_cidr,
                                          masquerade_all=self.masquerade_all))
        return out

    async def sync(self, ports: Mapping[str, Sequence[ServicePort] | None], *,
                   full: bool) -> None:
        """Program the Services in ``ports`` (None: gone). ``full``: ``ports`` is every
        Service, and the table is written anew. Raises NftError when nft refuses."""
        if full:
            await self.sync_full({k: self.rules_for(v) for k, v in ports.items() if v})
        else:
            await self.sync_changes({k: self.rules_for(v) if v else None
                                     for k, v in ports.items()})

    async def stop(self, *, cleanup: bool) -> None:
        if cleanup:
            await self.cleanup()

    def counts(self) -> tuple[int, int]:
        """(service chains, endpoint chains) programmed."""
        chains = [n for pr in self.programmed.values() for n in pr.chains]
        return (sum(n.startswith("service-") for n in chains),
                sum(n.startswith("endpoint-") for n in chains))

    # ----- rendering ------------------------------------------------------------------

    def render_full(self, desired: Mapping[str, PortRules]) -> str:
        t = self.table
        lines = [f"add table ip {t}", f"delete table ip {t}",
                 nftrules.skeleton(t, cluster_cidr=self.cluster_cidr)]
        maps: list[str] = []
        rules: list[str] = []
        elements: list[tuple[tuple[str, str], str | None]] = []
        for pr in desired.values():
            for name, timeout in pr.sets.items():
                lines.append(f"add set ip {t} {name} {nftrules.set_decl(timeout)}")
            for name, body in pr.chains.items():
                lines.append(f"add chain ip {t} {name}")
                rules.extend(f"add rule ip {t} {name} {r}" for r in body)
            for name, elems in pr.vmaps.items():
                maps.append(f"add map ip {t} {name} {nftrules.VMAP_DECL}")
                maps.append(f"add element ip {t} {name} {{ {', '.join(elems)} }}")
            elements.extend(pr.elements.items())
        lines += maps + rules
        lines += _elements("add", t, elements)
        return "\n".join(lines) + "\n"

    def render_diff(self, changes: Mapping[str, PortRules | None]) -> str:
        """The transaction turning what is programmed for the changed Services into
        ``changes`` (None: the Service is gone). Empty when nothing differs.

        Order matters within the transaction: what is referred to is created before the
        rules and elements that refer to it, and deleted only after them."""
        t = self.table
        declare: list[str] = []
        maps: list[str] = []
        fills: list[str] = []
        del_elems: list[tuple[tuple[str, str], str | None]] = []
        add_elems: list[tuple[tuple[str, str], str | None]] = []
        flush_gone: list[str] = []
        delete_gone: list[str] = []
        empty = PortRules()
        for key, new in changes.items():
            old = self.programmed.get(key, empty)
            new = new or empty
            declare += [f"add set ip {t} {n} {nftrules.set_decl(to)}"
                        for n, to in new.sets.items() if n not in old.sets]
            declare += [f"add chain ip {t} {n}" for n in new.chains if n not in old.chains]
            for name, elems in new.vmaps.items():
                before = old.vmaps.get(name)
                if before == elems:
                    continue
                if before is None:
                    declare.append(f"add map ip {t} {name} {nftrules.VMAP_DECL}")
                else:
                    maps.append(f"flush map ip {t} {name}")
                maps.append(f"add element ip {t} {name} {{ {', '.join(elems)} }}")
            for name, body in new.chains.items():
                before_rules = old.chains.get(name)
                if before_rules == body:
                    continue
                if before_rules is not None:
                    fills.append(f"flush chain ip {t} {name}")
                fills.extend(f"add rule ip {t} {name} {r}" for r in body)
            del_elems += [(ek, None) for ek, v in old.elements.items()
                          if new.elements.get(ek) != v]
            add_elems += [(ek, v) for ek, v in new.elements.items()
                          if old.elements.get(ek) != v]
            gone = [n for n in old.chains if n not in new.chains]
            flush_gone += [f"flush chain ip {t} {n}" for n in gone]
            delete_gone += [f"delete chain ip {t} {n}" for n in gone]
            delete_gone += [f"delete map ip {t} {n}" for n in old.vmaps if n not in new.vmaps]
            delete_gone += [f"delete set ip {t} {n}" for n in old.sets if n not in new.sets]
        lines = [*declare, *maps, *fills, *_elements("delete", t, del_elems),
                 *_elements("add", t, add_elems), *flush_gone,
                 *sorted(delete_gone, key=lambda s: _DELETE_ORDER[s.split()[1]])]
        return "\n".join(lines) + "\n" if lines else ""

    # ----- applying --------------------------------------------------------------------

    async def sync_full(self, desired: Mapping[str, PortRules]) -> None:
        script = self.render_full(desired)
        self.last_script = script
        await self.runner.apply(script)
        self.programmed = dict(desired)

    async def sync_changes(self, changes: Mapping[str, PortRules | None]) -> bool:
        """Apply ``changes``; False when nothing had to be written."""
        script = self.render_diff(changes)
        if not script:
            return False
        self.last_script = script
        await self.runner.apply(script)
        for key, new in changes.items():
            if new is None:
                self.programmed.pop(key, None)
            else:
                self.programmed[key] = new
        return True

    async def table_present(self) -> bool:
        """Whether our table is still there (cheap: lists one small chain)."""
        try:
            await self.runner.run("list", "chain", "ip", self.table, "services")
        except NftError:
            return False
        return True

    async def cleanup(self) -> None:
        """Remove the table (kube-proxy --cleanup)."""
        await self.runner.apply(f"add table ip {self.table}\ndelete table ip {self.table}\n")
        self.programmed.clear()
