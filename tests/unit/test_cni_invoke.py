"""Running CNI plugins, against a fake plugin: environment, chaining, DEL, the cache, errors.

The fake is one Python script installed under every plugin name; it appends
what it was called with (its name, its CNI_* environment, its stdin) to a log
and answers as its configuration tells it (``fakeResult``, ``fakeError``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from kubeling.runtime.network import NetworkError, NetworkStatus, PodNetwork
from kubeling.runtime.protocol import PodSandboxConfig, PortMapping

FAKE = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
name = os.path.basename(sys.argv[0])
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open(os.environ["FAKE_CNI_LOG"], "a") as f:
    f.write(json.dumps({{"plugin": name, "env": env, "conf": conf}}) + "\\n")
cmd = env["CNI_COMMAND"]
err = (conf.get("fakeError") or {{}}).get(cmd)
if err:
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 7, "msg": err,
                      "details": "fake details"}}))
    sys.exit(1)
if cmd == "ADD":
    result = conf.get("prevResult") or conf.get("fakeResult") or {{
        "cniVersion": conf["cniVersion"], "interfaces": [], "ips": []}}
    print(json.dumps(result))
"""

RESULT = {"cniVersion": "1.0.0",
          "interfaces": [{"name": "eth0", "mac": "aa", "sandbox": "/x"}],
          "ips": [{"address": "10.77.0.9/24", "gateway": "10.77.0.1", "interface": 0}]}
CFG = PodSandboxConfig(uid="uid-1", namespace="ns", name="web",
                       port_mappings=(PortMapping(80, 8080),))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_CNI_LOG", str(log))
    bins = tmp_path / "bin"
    bins.mkdir()
    script = FAKE.format(python=sys.executable)
    for name in ("loopback", "first", "second", "ipam"):
        (bins / name).write_text(script)
        os.chmod(bins / name, 0o755)
    return tmp_path


def write_conf(root: Path, name: str = "00-test.conflist", **first: Any) -> None:
    conf_dir = root / "net.d"
    conf_dir.mkdir(exist_ok=True)
    doc = {"cniVersion": "1.0.0", "name": "testnet", "plugins": [
        {"type": "first", "ipam": {"type": "ipam"}, "fakeResult": RESULT, **first},
        {"type": "second", "capabilities": {"portMappings": True}}]}
    (conf_dir / name).write_text(json.dumps(doc))


def calls(root: Path) -> list[dict[str, Any]]:
    path = root / "calls.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def network(root: Path) -> PodNetwork:
    return PodNetwork(state_dir=root / "state", conf_dir=root / "net.d",
                      bin_dirs=[root / "bin"], netns_dir=root / "netns")


async def test_add_runs_loopback_then_the_list_in_order_with_chained_results(env: Path
                                                                             ) -> None:
    write_conf(env)
    status = await network(env).setup("sb1", "/some/netns", CFG)
    assert status == NetworkStatus(ip="10.77.0.9", ips=("10.77.0.9",), gateway="10.77.0.1")
    seen = calls(env)
    assert [c["plugin"] for c in seen] == ["loopback", "first", "second"]
    lo, first, second = seen
    assert lo["env"]["CNI_IFNAME"] == "lo"
    assert first["env"] == {
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "sb1", "CNI_NETNS": "/some/netns",
        "CNI_IFNAME": "eth0", "CNI_PATH": str(env / "bin"),
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;"
                    "K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1"}
    assert first["conf"]["name"] == "testnet" and first["conf"]["cniVersion"] == "1.0.0"
    assert "prevResult" not in first["conf"] and "runtimeConfig" not in first["conf"]
    assert second["conf"]["prevResult"] == RESULT
    assert second["conf"]["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}


async def test_setup_twice_is_one_add_and_teardown_uses_the_cache(env: Path) -> None:
    write_conf(env)
    n = network(env)
    first = await n.setup("sb1", "/some/netns", CFG)
    assert await network(env).setup("sb1", "/some/netns", CFG) == first  # after a restart
    assert len(calls(env)) == 3
    assert network(env).sandboxes() == ["sb1"]
    # The configuration changes (or goes away): DEL still uses what ADD used.
    for p in (env / "net.d").iterdir():
        p.unlink()
    (env / "calls.log").unlink()
    await network(env).teardown("sb1", "/some/netns", CFG)
    seen = calls(env)
    assert [c["plugin"] for c in seen] == ["second", "first"]
    assert all(c["env"]["CNI_COMMAND"] == "DEL" for c in seen)
    assert all(c["conf"]["prevResult"] == RESULT for c in seen)
    # The netns is not a bound namespace (here: no such file): CNI_NETNS is empty.
    assert all(c["env"]["CNI_NETNS"] == "" for c in seen)
    assert seen[0]["conf"]["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080
    assert network(env).sandboxes() == []
    (env / "calls.log").unlink()
    await network(env).teardown("sb1", "/some/netns", CFG)  # nothing cached, no config
    assert calls(env) == []


async def test_teardown_without_a_cache_dels_with_the_current_config(env: Path) -> None:
    write_conf(env)
    await network(env).teardown("never", "", CFG)
    seen = calls(env)
    assert [c["plugin"] for c in seen] == ["second", "first"]
    assert "prevResult" not in seen[0]["conf"]


async def test_a_failing_plugin_is_a_network_error_and_add_is_undone(env: Path) -> None:
    write_conf(env, fakeError={"ADD": "no more addresses"})
    n = network(env)
    with pytest.raises(NetworkError) as info:
        await n.setup("sb1", "/some/netns", CFG)
    assert str(info.value) == ('setting up the network of pod ns/web: plugin type="first" '
                               'failed (add): no more addresses: fake details')
    assert [(c["plugin"], c["env"]["CNI_COMMAND"]) for c in calls(env)] == [
        ("loopback", "ADD"), ("first", "ADD"), ("second", "DEL"), ("first", "DEL")]
    assert n.sandboxes() == []


async def test_a_failing_del_keeps_the_cache_for_a_retry(env: Path) -> None:
    write_conf(env, fakeError={"DEL": "busy"})
    n = network(env)
    await n.setup("sb1", "/some/netns", CFG)
    with pytest.raises(NetworkError, match='plugin type="first" failed \\(del\\): busy'):
        await n.teardown("sb1", "/some/netns", CFG)
    assert n.sandboxes() == ["sb1"]
    # Both plugins were asked even though one failed.
    assert [c["plugin"] for c in calls(env)][-2:] == ["second", "first"]


async def test_missing_config_or_plugin(env: Path) -> None:
    n = network(env)
    with pytest.raises(NetworkError, match="cni config uninitialized"):
        await n.setup("sb1", "/some/netns", CFG)
    write_conf(env)
    (env / "bin" / "second").unlink()
    assert n.ready() == f'failed to find plugin "second" in path [{env / "bin"}]'
    with pytest.raises(NetworkError, match='failed to find plugin "second"'):
        await n.setup("sb1", "/some/netns", CFG)


async def test_setup_in_another_netns_replaces_the_old_attachment(env: Path) -> None:
    write_conf(env)
    n = network(env)
    await n.setup("sb1", "/netns/a", CFG)
    await n.setup("sb1", "/netns/b", CFG)
    assert [(c["plugin"], c["env"]["CNI_COMMAND"]) for c in calls(env)][3:] == [
        ("second", "DEL"), ("first", "DEL"), ("loopback", "ADD"), ("first", "ADD"),
        ("second", "ADD")]
    cached = n.cache.load("sb1")
    assert cached is not None and cached.netns == "/netns/b"
