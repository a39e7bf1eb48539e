"""Running CNI plugins: the environment, the per-plugin configuration, the result cache.

A plugin is an executable found in ``CNI_PATH``, called with the operation in
its environment (``CNI_COMMAND``, ``CNI_CONTAINERID``, ``CNI_NETNS``,
``CNI_IFNAME``, ``CNI_ARGS``, ``CNI_PATH``) and its network configuration on
stdin. A list runs in order for ADD, each plugin getting the previous one's
result as ``prevResult``, and in reverse for DEL, each getting the cached ADD
result. What the runtime knows at call time (here the pod's hostPorts) is given
only to plugins that declare the matching capability, under ``runtimeConfig``.

As libcni does, the runtime caches what it added with (the network
configuration, the arguments, the result): DEL then works after an agent
restart and after the configuration directory changed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.runtime.network.conflist import find_plugin
from kubeling.runtime.network.result import NetworkError, plugin_error
from kubeling.runtime.protocol import PodSandboxConfig, PortMapping

PLUGIN_TIMEOUT = 60.0


def cni_args(sandbox_id: str, config: PodSandboxConfig) -> str:
    """``CNI_ARGS`` as the kubelet's runtimes pass them."""
    pairs = [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", config.namespace),
             ("K8S_POD_NAME", config.name), ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id),
             ("K8S_POD_UID", config.uid)]
    return ";".join(f"{k}={v}" for k, v in pairs)


def port_mappings(ports: Sequence[PortMapping]) -> list[dict[str, Any]]:
    """The ``portMappings`` capability: only ports published on the host."""
    out: list[dict[str, Any]] = []
    for p in ports:
        if p.host_port <= 0:
            continue
        m: dict[str, Any] = {"hostPort": p.host_port, "containerPort": p.container_port,
                             "protocol": (p.protocol or "TCP").lower()}
        if p.host_ip:
            m["hostIP"] = p.host_ip
        out.append(m)
    return out


def plugin_config(conflist: Mapping[str, Any], plugin: Mapping[str, Any], *,
                  runtime_config: Mapping[str, Any],
                  prev_result: Mapping[str, Any] | None) -> dict[str, Any]:
    """What one plugin of a list reads on stdin."""
    conf = dict(plugin)
    conf["cniVersion"] = conflist.get("cniVersion", "1.0.0")
    conf["name"] = conflist.get("name", "")
    caps = plugin.get("capabilities") or {}
    given = {k: v for k, v in runtime_config.items() if caps.get(k)}
    if given:
        conf["runtimeConfig"] = given
    else:
        conf.pop("runtimeConfig", None)
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return conf


@dataclass(frozen=True)
class Call:
    """The environment shared by every plugin of one operation on one sandbox."""

    command: str  # ADD | DEL | CHECK
    container_id: str
    netns: str
    ifname: str
    args: str
    bin_dirs: tuple[Path, ...]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(CNI_COMMAND=self.command, CNI_CONTAINERID=self.container_id,
                   CNI_NETNS=self.netns, CNI_IFNAME=self.ifname, CNI_ARGS=self.args,
                   CNI_PATH=os.pathsep.join(str(d) for d in self.bin_dirs))
        return env


async def run_plugin(call: Call, conf: Mapping[str, Any],
                     timeout: float = PLUGIN_TIMEOUT) -> dict[str, Any] | None:
    """Run the plugin ``conf["type"]``; its result document (None when it printed none).
    A failure raises NetworkError with the plugin's own error message."""
    ptype = str(conf.get("type") or "")
    binary = find_plugin(ptype, call.bin_dirs)
    if binary is None:
        dirs = " ".join(str(d) for d in call.bin_dirs)
        raise NetworkError(f'failed to find plugin "{ptype}" in path [{dirs}]')
    proc = await asyncio.create_subprocess_exec(
        str(binary), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=call.env())
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(conf).encode()),
                                          timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NetworkError(f'plugin type="{ptype}" ({call.command.lower()}) did not answer '
                           f"within {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise plugin_error(ptype, call.command, proc.returncode or 0, out, err)
    if not out.strip():
        return None
    try:
        doc = json.loads(out)
    except ValueError:
        raise NetworkError(f'plugin type="{ptype}" ({call.command.lower()}) printed a result '
                           f"that is not JSON: {out[:200]!r}") from None
    return doc if isinstance(doc, dict) else None


async def add_list(call: Call, conflist: Mapping[str, Any],
                   runtime_config: Mapping[str, Any]) -> dict[str, Any]:
    """ADD every plugin in order, chaining results; the final result."""
    result: dict[str, Any] | None = None
    for plugin in conflist.get("plugins") or []:
        conf = plugin_config(conflist, plugin, runtime_config=runtime_config,
                             prev_result=result)
        out = await run_plugin(call, conf)
        if out is not None:
            result = out
    if result is None:
        raise NetworkError(f"network {conflist.get('name')!r} gave no result")
    return result


async def del_list(call: Call, conflist: Mapping[str, Any], runtime_config: Mapping[str, Any],
                   result: Mapping[str, Any] | None) -> None:
    """DEL every plugin in reverse order with the ADD result; every plugin is tried, the
    first failure is raised at the end."""
    first: NetworkError | None = None
    for plugin in reversed(list(conflist.get("plugins") or [])):
        conf = plugin_config(conflist, plugin, runtime_config=runtime_config,
                             prev_result=result)
        try:
            await run_plugin(call, conf)
        except NetworkError as exc:
            first = first or exc
    if first is not None:
        raise first


@dataclass
class CacheEntry:
    """What a sandbox's network was added with."""

    sandbox_id: str
    netns: str
    ifname: str
    args: str
    conflist: dict[str, Any]
    runtime_config: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"sandboxId": self.sandbox_id, "netns": self.netns, "ifName": self.ifname,
                "cniArgs": self.args, "config": self.conflist,
                "runtimeConfig": self.runtime_config, "result": self.result}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CacheEntry:
        return cls(sandbox_id=str(doc["sandboxId"]), netns=str(doc.get("netns") or ""),
                   ifname=str(doc.get("ifName") or "eth0"), args=str(doc.get("cniArgs") or ""),
                   conflist=dict(doc["config"]), runtime_config=dict(doc.get("runtimeConfig")
                                                                     or {}),
                   result=dict(doc.get("result") or {}))


class Cache:
    """One JSON file per sandbox under ``<dir>``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _path(self, sandbox_id: str) -> Path:
        if not sandbox_id or "/" in sandbox_id or sandbox_id.startswith("."):
            raise ValueError(f"bad sandbox id {sandbox_id!r}")
        return self.dir / f"{sandbox_id}.json"

    def load(self, sandbox_id: str) -> CacheEntry | None:
        try:
            doc = json.loads(self._path(sandbox_id).read_text())
            return CacheEntry.from_json(doc)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, entry: CacheEntry) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.sandbox_id)
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(json.dumps(entry.to_json()))
        os.replace(tmp, path)

    def remove(self, sandbox_id: str) -> None:
        self._path(sandbox_id).unlink(missing_ok=True)

    def ids(self) -> list[str]:
        try:
            return sorted(p.stem for p in self.dir.glob("*.json"))
        except OSError:
            return []
