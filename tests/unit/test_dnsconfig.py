"""Pods' resolv.conf per dnsPolicy and dnsConfig, as the kubelet computes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubeling.kubelet import dnsconfig
from kubeling.kubelet.context import KubeletOptions
from kubeling.kubelet.dnsconfig import DnsConfig, parse_resolv_conf, pod_dns, render
from kubeling.kubelet.podsandbox import hostname_and_domain, sandbox_config

HOST = DnsConfig(("192.0.2.53",), ("corp.example", "example"), ("timeout:2",))
CLUSTER = ("10.43.0.10",)


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def dns(p: dict[str, Any], cluster: tuple[str, ...] = CLUSTER,
        host: DnsConfig = HOST) -> dnsconfig.PodDns:
    return pod_dns(p, cluster_dns=cluster, cluster_domain="cluster.local", host=host)


def test_cluster_first_is_the_default() -> None:
    result = dns(pod())
    assert result.config == DnsConfig(
        ("10.43.0.10",),
        ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example",
         "example"),
        ("ndots:5",))
    assert result.warnings == []
    assert dns(pod(dnsPolicy="ClusterFirst")).config == result.config


def test_cluster_first_on_host_network_is_default() -> None:
    assert dns(pod(hostNetwork=True)).config == HOST
    assert dns(pod(hostNetwork=True)).warnings == []


def test_cluster_first_with_host_net_keeps_cluster_dns() -> None:
    config = dns(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")).config
    assert config.servers == CLUSTER
    assert config.searches[0] == "shop.svc.cluster.local"
    assert config.options == ("ndots:5",)


def test_default_is_the_host() -> None:
    assert dns(pod(dnsPolicy="Default")).config == HOST


def test_none_is_only_dns_config() -> None:
    result = dns(pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.1.1.1"], "searches": ["a.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}))
    assert result.config == DnsConfig(("1.1.1.1",), ("a.example",), ("ndots:2", "edns0"))


def test_dns_config_merges_on_top() -> None:
    result = dns(pod(dnsConfig={
        "nameservers": ["10.43.0.10", "1.1.1.1"],
        "searches": ["cluster.local", "extra.example"],
        "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}))
    assert result.config.servers == ("10.43.0.10", "1.1.1.1")
    assert result.config.searches == ("shop.svc.cluster.local", "svc.cluster.local",
                                      "cluster.local", "corp.example", "example",
                                      "extra.example")
    assert result.config.options == ("ndots:1", "single-request")


def test_options_merged_by_name_later_wins() -> None:
    assert dnsconfig.merge_options(["ndots:5", "edns0", "timeout:1"],
                                   [{"name": "edns0", "value": "x"},
                                    {"name": "timeout"}, {"name": ""}]) == \
        ["ndots:5", "edns0:x", "timeout"]


def test_nameservers_cut_at_three_with_a_warning() -> None:
    result = dns(pod(dnsConfig={"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]}))
    assert result.config.servers == ("10.43.0.10", "1.1.1.1", "8.8.8.8")
    assert result.warnings == [(
        "DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been "
        "omitted, the applied nameserver line is: 10.43.0.10 1.1.1.1 8.8.8.8")]


def test_searches_cut_at_32_entries() -> None:
    many = [f"d{i}.example" for i in range(40)]
    result = dns(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"],
                                                   "searches": many}))
    assert result.config.searches == tuple(many[:32])
    assert result.warnings[0][0] == "DNSConfigForming"
    assert result.warnings[0][1].startswith("Search Line limits were exceeded")


def test_search_line_cut_at_2048_characters() -> None:
    long = [("x" * 60) + f".d{i:02d}.example" for i in range(31)]
    result = dns(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"],
                                                   "searches": long}))
    line = " ".join(result.config.searches)
    assert len(line) <= 2048
    assert len(line) + 1 + len(long[len(result.config.searches)]) > 2048
    assert result.config.searches == tuple(long[:len(result.config.searches)])
    assert result.warnings


def test_overlong_search_domains_dropped() -> None:
    result = dns(pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.1.1.1"], "searches": ["a" * 254, "ok.example"]}))
    assert result.config.searches == ("ok.example",)


def test_missing_cluster_dns_falls_back_to_default() -> None:
    result = dns(pod(), cluster=())
    assert result.config == HOST
    assert result.warnings == [(
        "MissingClusterDNS",
        'pod: "web_shop(u1)". kubelet does not have ClusterDNS IP configured and cannot '
        'create Pod using "ClusterFirst" policy. Falling back to "Default" policy.')]
    assert dns(pod(dnsPolicy="Default"), cluster=()).warnings == []


def test_parse_resolv_conf() -> None:
    text = ("# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\n"
            "search a.example. . b.example\noptions edns0 trust-ad\n; x\n")
    assert parse_resolv_conf(text) == DnsConfig(("192.0.2.1",), ("a.example", "b.example"),
                                                ("edns0", "trust-ad"))
    assert parse_resolv_conf(text, drop_loopback=False).servers == \
        ("127.0.0.53", "192.0.2.1", "::1")


def test_render() -> None:
    assert render(DnsConfig(("1.1.1.1",), ("a", "b"), ("ndots:5",))) == \
        "nameserver 1.1.1.1\nsearch a b\noptions ndots:5\n"
    assert render(DnsConfig()) == ""


def options(tmp_path: Path, **kw: Any) -> KubeletOptions:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.9\nsearch lan\n")
    return KubeletOptions(node_name="n1", root_dir=tmp_path, resolv_conf=resolv, **kw)


class Services:
    def __init__(self, *svcs: dict[str, Any]) -> None:
        self.svcs = svcs

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return next((s for s in self.svcs if s["metadata"]["namespace"] == namespace
                     and s["metadata"]["name"] == name), None)

    def services(self, namespace: str) -> list[dict[str, Any]]:
        return [s for s in self.svcs if s["metadata"]["namespace"] == namespace]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def test_sandbox_config_uses_the_flag(tmp_path: Path) -> None:
    config = sandbox_config(pod(), options(tmp_path, cluster_dns=("10.43.0.10",)), attempt=0)
    assert config.dns_servers == ("10.43.0.10",)
    assert config.dns_searches == ("shop.svc.cluster.local", "svc.cluster.local",
                                   "cluster.local", "lan")
    assert config.dns_options == ("ndots:5",)


def test_sandbox_config_discovers_kube_dns(tmp_path: Path) -> None:
    kube_dns = {"metadata": {"namespace": "kube-system", "name": "kube-dns"},
                "spec": {"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"]}}
    config = sandbox_config(pod(), options(tmp_path), attempt=0, objects=Services(kube_dns))
    assert config.dns_servers == ("10.43.0.10",)


def test_sandbox_config_without_cluster_dns_warns(tmp_path: Path) -> None:
    recorder = Recorder()
    config = sandbox_config(pod(), options(tmp_path), attempt=0, objects=Services(),
                            recorder=recorder)  # type: ignore[arg-type]
    assert config.dns_servers == ("192.0.2.9",)  # the host's, loopback dropped
    assert config.dns_searches == ("lan",)
    assert [(t, r) for t, r, _ in recorder.events] == [("Warning", "MissingClusterDNS")]


def test_host_network_keeps_loopback_nameservers(tmp_path: Path) -> None:
    config = sandbox_config(pod(hostNetwork=True), options(tmp_path), attempt=0)
    assert config.dns_servers == ("127.0.0.53", "192.0.2.9")


def test_hostname_domain_and_aliases(tmp_path: Path) -> None:
    p = pod(hostname="db-0", subdomain="db", hostAliases=[
        {"ip": "192.0.2.7", "hostnames": ["foo.local", "bar.local"]}])
    assert hostname_and_domain(p, "cluster.local") == ("db-0", "db.shop.svc.cluster.local")
    assert hostname_and_domain(pod(), "cluster.local") == ("web", "")
    config = sandbox_config(p, options(tmp_path), attempt=0)
    assert config.hostname == "db-0"
    assert config.hostname_domain == "db.shop.svc.cluster.local"
    assert config.host_aliases == (("192.0.2.7", ("foo.local", "bar.local")),)


def test_hosts_file_with_domain_and_aliases() -> None:
    from kubeling.runtime.oci.sandbox import hosts_file

    text = hosts_file("10.42.0.5", "db-0", domain="db.shop.svc.cluster.local",
                      aliases=(("192.0.2.7", ("foo.local", "bar.local")),))
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "10.42.0.5\tdb-0.db.shop.svc.cluster.local\tdb-0" in lines
    assert lines[-2:] == ["# Entries added by HostAliases.", "192.0.2.7\tfoo.local\tbar.local"]
    assert "10.42.0.5\tweb" in hosts_file("10.42.0.5", "web").splitlines()
