"""The CNI network configuration: the one kubeling writes and the one the node uses.

As libcni reads a configuration directory, the first file by name among
``*.conf``, ``*.conflist`` and ``*.json`` is the node's network. kubeling
writes ``10-kubeling.conflist`` there once it knows the node's pod CIDR: a
``bridge`` (the node's pods on one Linux bridge whose address is their
gateway, masqueraded when leaving the node) with ``host-local`` IPAM over the
pod CIDR, then ``portmap`` for hostPorts. The IPAM state lives under the
agent's own state directory, so several agents on one machine (tests, nodes
in network namespaces) never hand out each other's addresses. A user's
configuration that sorts first wins and is never overwritten.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OUR_FILE = "10-kubeling.conflist"
NETWORK_NAME = "kubeling"
CNI_VERSION = "1.0.0"
EXTENSIONS = (".conf", ".conflist", ".json")


class ConfigError(Exception):
    """A configuration file that cannot be used."""


def kubeling_conflist(pod_cidr: str, *, bridge: str, ipam_dir: Path) -> dict[str, Any]:
    """Our network: bridge + host-local over ``pod_cidr``, then portmap."""
    subnet = str(ipaddress.ip_network(pod_cidr, strict=False))
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def config_files(conf_dir: Path) -> list[Path]:
    """The configuration files of ``conf_dir`` in the order libcni tries them."""
    try:
        names = sorted(p.name for p in conf_dir.iterdir() if p.is_file())
    except FileNotFoundError:
        return []
    return [conf_dir / n for n in names if n.endswith(EXTENSIONS)]


def load(path: Path) -> dict[str, Any]:
    """A configuration file as a conflist (a single-plugin ``.conf`` is wrapped in one)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a JSON object")
    if path.name.endswith(".conflist"):
        plugins = doc.get("plugins")
        if not isinstance(plugins, list) or not plugins or \
                not all(isinstance(p, dict) and p.get("type") for p in plugins):
            raise ConfigError(f"{path}: a conflist needs a non-empty plugins list with types")
        if not doc.get("name"):
            raise ConfigError(f"{path}: the network has no name")
        return doc
    if not doc.get("type"):
        raise ConfigError(f"{path}: the network has no plugin type")
    plugin = {k: v for k, v in doc.items() if k not in ("cniVersion", "name")}
    return {"cniVersion": doc.get("cniVersion", CNI_VERSION), "name": doc.get("name", ""),
            "plugins": [plugin]}


def first_config(conf_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The node's network: the first file of ``conf_dir`` that loads (None when none does)."""
    for path in config_files(conf_dir):
        try:
            return path, load(path)
        except ConfigError:
            continue
    return None


def plugin_types(conflist: dict[str, Any]) -> list[str]:
    """Every plugin binary a conflist needs, IPAM plugins included, in order."""
    out: list[str] = []
    for p in conflist.get("plugins") or []:
        for t in (p.get("type"), (p.get("ipam") or {}).get("type")):
            if isinstance(t, str) and t and t not in out:
                out.append(t)
    return out


def find_plugin(name: str, bin_dirs: Sequence[Path]) -> Path | None:
    for d in bin_dirs:
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def write(path: Path, conflist: dict[str, Any]) -> bool:
    """Write ``conflist`` at ``path`` atomically unless it already holds it; True if written."""
    text = json.dumps(conflist, indent=2) + "\n"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")  # not a config name while half written
    tmp.write_text(text)
    os.replace(tmp, path)
    return True
