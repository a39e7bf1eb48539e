"""The CNI configuration: what we write, when a user's wins, readiness, results and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kubeling.runtime.network import NetworkError, NetworkStatus, PodNetwork, conflist
from kubeling.runtime.network.cni import cni_args, plugin_config, port_mappings
from kubeling.runtime.network.result import plugin_error, status_from_result
from kubeling.runtime.protocol import PodSandboxConfig, PortMapping


def net(tmp_path: Path, bin_dirs: list[Path] | None = None) -> PodNetwork:
    return PodNetwork(state_dir=tmp_path / "state", conf_dir=tmp_path / "net.d",
                      bin_dirs=bin_dirs if bin_dirs is not None else [tmp_path / "bin"],
                      netns_dir=tmp_path / "netns", bridge="kltestbr9")


def fake_bins(d: Path, *names: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_text("#!/bin/sh\nexit 0\n")
        os.chmod(d / n, 0o755)
    return d


def test_our_conflist_is_bridge_host_local_and_portmap(tmp_path: Path) -> None:
    doc = conflist.kubeling_conflist("10.42.3.7/24", bridge="kubeling0",
                                     ipam_dir=tmp_path / "ipam")
    assert doc["cniVersion"] == "1.0.0" and doc["name"] == "kubeling"
    bridge, portmap = doc["plugins"]
    assert bridge == {
        "type": "bridge", "bridge": "kubeling0", "isGateway": True, "ipMasq": True,
        "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.42.3.0/24"}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(tmp_path / "ipam")}}
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    assert conflist.plugin_types(doc) == ["bridge", "host-local", "portmap"]


def test_configure_writes_ours_and_rewrites_it_when_the_cidr_changes(tmp_path: Path) -> None:
    n = net(tmp_path)
    assert n.ready() == "cni config uninitialized"
    n.configure("10.42.1.0/24")
    path = tmp_path / "net.d" / "10-kubeling.conflist"
    doc = json.loads(path.read_text())
    assert doc["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.42.1.0/24"}]]
    assert doc["plugins"][0]["ipam"]["dataDir"] == str(tmp_path / "state" / "ipam")
    mtime = path.stat().st_mtime_ns
    n.configure("10.42.1.0/24")
    assert path.stat().st_mtime_ns == mtime  # unchanged: not rewritten
    n.configure("10.42.2.0/24")
    doc = json.loads(path.read_text())
    assert doc["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.42.2.0/24"}]]
    assert [p.name for p in (tmp_path / "net.d").iterdir()] == ["10-kubeling.conflist"]


def test_a_users_config_that_sorts_first_wins(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "05-mine.conf").write_text(json.dumps(
        {"cniVersion": "0.4.0", "name": "mine", "type": "ptp",
         "ipam": {"type": "static"}}))
    n = net(tmp_path, [fake_bins(tmp_path / "bin", "ptp", "static")])
    n.configure("10.42.1.0/24")
    assert not (conf_dir / "10-kubeling.conflist").exists()
    path, doc = conflist.first_config(conf_dir) or (None, {})
    assert path == conf_dir / "05-mine.conf"
    assert doc == {"cniVersion": "0.4.0", "name": "mine",
                   "plugins": [{"type": "ptp", "ipam": {"type": "static"}}]}
    assert n.ready() is None


def test_a_users_config_that_sorts_after_ours_loses(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "99-late.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "late", "plugins": [{"type": "ptp"}]}))
    net(tmp_path).configure("10.42.1.0/24")
    found = conflist.first_config(conf_dir)
    assert found is not None and found[0].name == "10-kubeling.conflist"


def test_broken_files_are_skipped(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "01-broken.conflist").write_text("{not json")
    (conf_dir / "02-noplugins.conflist").write_text(json.dumps({"name": "x", "plugins": []}))
    (conf_dir / "03-notes.txt").write_text("ignored")
    (conf_dir / "04-ok.json").write_text(json.dumps({"name": "ok", "type": "bridge"}))
    found = conflist.first_config(conf_dir)
    assert found is not None and found[0].name == "04-ok.json"


def test_ready_names_the_missing_plugin_and_the_path(tmp_path: Path) -> None:
    bins = fake_bins(tmp_path / "bin", "bridge", "host-local")
    n = net(tmp_path, [bins, tmp_path / "other"])
    n.configure("10.42.1.0/24")
    assert n.ready() == f'failed to find plugin "portmap" in path [{bins} {tmp_path / "other"}]'
    fake_bins(tmp_path / "other", "portmap")
    assert n.ready() is None


def test_cni_args_carry_the_pod_identity() -> None:
    cfg = PodSandboxConfig(uid="u-1", namespace="ns1", name="web")
    assert cni_args("abc", cfg) == ("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;"
                                    "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1")


def test_port_mappings_only_published_ports_lowercase_protocols() -> None:
    ports = (PortMapping(80), PortMapping(80, 8080),
             PortMapping(53, 5353, "UDP", "10.0.0.1"))
    assert port_mappings(ports) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "10.0.0.1"}]


def test_runtime_config_only_for_declared_capabilities() -> None:
    lst = {"cniVersion": "1.0.0", "name": "n"}
    rc = {"portMappings": [{"hostPort": 1}], "bandwidth": {}}
    assert plugin_config(lst, {"type": "bridge"}, runtime_config=rc, prev_result=None) == \
        {"type": "bridge", "cniVersion": "1.0.0", "name": "n"}
    conf = plugin_config(lst, {"type": "portmap", "capabilities": {"portMappings": True}},
                         runtime_config=rc, prev_result={"ips": []})
    assert conf["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
    assert conf["prevResult"] == {"ips": []}


def test_results_of_every_version_give_the_pod_ip() -> None:
    v1 = {"cniVersion": "1.0.0",
          "interfaces": [{"name": "kubeling0", "mac": "aa"}, {"name": "veth1", "mac": "bb"},
                         {"name": "eth0", "mac": "cc", "sandbox": "/run/netns/x"}],
          "ips": [{"address": "fd00::5/64", "gateway": "fd00::1", "interface": 2},
                  {"address": "10.42.0.5/24", "gateway": "10.42.0.1", "interface": 2},
                  {"address": "192.168.9.9/24", "interface": 0}]}
    assert status_from_result(v1) == NetworkStatus(
        ip="10.42.0.5", ips=("10.42.0.5", "fd00::5"), gateway="10.42.0.1")
    v031 = {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.0.2/16"}]}
    assert status_from_result(v031).ip == "10.1.0.2"
    v020 = {"cniVersion": "0.2.0", "ip4": {"ip": "10.2.0.3/16", "gateway": "10.2.0.1"}}
    assert status_from_result(v020) == NetworkStatus(ip="10.2.0.3", ips=("10.2.0.3",),
                                                     gateway="10.2.0.1")
    with pytest.raises(NetworkError, match="no IP address"):
        status_from_result({"cniVersion": "1.0.0", "ips": []})


def test_plugin_errors_say_which_plugin_and_what_it_said() -> None:
    doc = json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "failed to allocate",
                      "details": "range is full"}).encode()
    assert str(plugin_error("host-local", "ADD", 1, doc, b"")) == \
        'plugin type="host-local" failed (add): failed to allocate: range is full'
    assert str(plugin_error("bridge", "DEL", 1, b"", b"boom\n")) == \
        'plugin type="bridge" failed (del): boom'
    assert str(plugin_error("bridge", "ADD", 2, b"", b"")) == \
        'plugin type="bridge" failed (add): exit status 2'
