"""What a pod sees of names and Services from inside, on the OCI runtime: its resolv.conf
per dnsPolicy, its /etc/hosts (subdomain name, hostAliases, the node's on the host network)
and the Service environment variables, all read with ``kubectl exec``.

One server is its own node with ``--runtime oci``, without its own cluster DNS: the
test publishes a ``kube-system/kube-dns`` Service whose cluster IP the kubelet finds
through its Services informer. (While the pod sync does not yet hand the kubelet's
objects to ``sandbox_config``, the same address is given with ``--cluster-dns``.)
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeling.kubelet.dnsconfig import parse_resolv_conf
from kubeling.kubelet.sync import PodSyncer
from tests.cluster import Cluster, free_port, wait_for
from tests.ocipods import apply, ctr, exec_, node_ready, oci_data_dir, pod, running
from tests.ocitools import sweep

pytestmark = pytest.mark.root

CGROUP_PARENT = f"kubeling-poddns-{os.getpid()}"
CLUSTER_DNS = "10.43.0.123"
DISCOVERS = "objects=" in inspect.getsource(PodSyncer._ensure_sandbox)
KUBE_DNS = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": CLUSTER_DNS, "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}


@pytest.fixture(scope="module")
def oci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = oci_data_dir(tmp_path_factory, "kubeling-poddns")
    c = Cluster(data, free_port(), agent=True, runtime="oci")
    flags = () if DISCOVERS else ("--cluster-dns", CLUSTER_DNS)
    c.start("--cgroup-parent", CGROUP_PARENT, "--disable-dns", *flags)
    try:
        wait_for("the node to be Ready with a pod CIDR", lambda: node_ready(c), timeout=60)
        c.kubectl("apply", "-f", "-", input=json.dumps(KUBE_DNS))
        yield c
    finally:
        c.kubectl("delete", "pods", "--all", "--wait=false", check=False)
        c.stop()
        sweep(data / "agent", CGROUP_PARENT)


def sleeper(name: str, **spec: object) -> dict:
    return pod(name, ctr("c", "sleep", "3600"), **spec)


def test_resolv_conf_per_dns_policy(oci: Cluster) -> None:
    apply(oci, sleeper("first"))
    apply(oci, sleeper("custom", dnsPolicy="None", dnsConfig={
        "nameservers": ["192.0.2.1"], "searches": ["a.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}))
    apply(oci, sleeper("merged", dnsConfig={
        "nameservers": ["192.0.2.2"], "options": [{"name": "ndots", "value": "1"}]}))
    apply(oci, sleeper("hostdns", dnsPolicy="Default"))
    host = parse_resolv_conf(Path("/etc/resolv.conf").read_text())
    searches = " ".join(["default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                         *host.searches])

    running(oci, "first")
    assert exec_(oci, "first", "cat", "/etc/resolv.conf").splitlines() == [
        f"nameserver {CLUSTER_DNS}", f"search {searches}", "options ndots:5"]
    running(oci, "custom")
    assert exec_(oci, "custom", "cat", "/etc/resolv.conf").splitlines() == [
        "nameserver 192.0.2.1", "search a.example", "options ndots:2 edns0"]
    running(oci, "merged")
    assert exec_(oci, "merged", "cat", "/etc/resolv.conf").splitlines() == [
        f"nameserver {CLUSTER_DNS}", "nameserver 192.0.2.2", f"search {searches}",
        "options ndots:1"]
    running(oci, "hostdns")
    lines = exec_(oci, "hostdns", "cat", "/etc/resolv.conf").splitlines()
    assert [f"nameserver {s}" for s in host.servers] == [
        x for x in lines if x.startswith("nameserver")]
    assert not any("cluster.local" in x or "ndots:5" in x for x in lines)


def test_etc_hosts_names(oci: Cluster) -> None:
    apply(oci, sleeper("db-0", hostname="db-0", subdomain="db", hostAliases=[
        {"ip": "192.0.2.7", "hostnames": ["foo.local", "bar.local"]}]))
    apply(oci, sleeper("onhost", hostNetwork=True, hostAliases=[
        {"ip": "192.0.2.8", "hostnames": ["baz.local"]}]))
    ip = running(oci, "db-0")["status"]["podIP"]
    hosts = exec_(oci, "db-0", "cat", "/etc/hosts").splitlines()
    assert f"{ip}\tdb-0.db.default.svc.cluster.local\tdb-0" in hosts
    assert hosts[-2:] == ["# Entries added by HostAliases.", "192.0.2.7\tfoo.local\tbar.local"]
    assert exec_(oci, "db-0", "hostname").strip() == "db-0"
    running(oci, "onhost")
    on_host = exec_(oci, "onhost", "cat", "/etc/hosts")
    assert on_host.startswith(Path("/etc/hosts").read_text().rstrip("\n") + "\n")
    assert on_host.splitlines()[-1] == "192.0.2.8\tbaz.local"


def test_service_environment_variables(oci: Cluster) -> None:
    oci.kubectl("create", "namespace", "envs")
    oci.kubectl("-n", "envs", "create", "service", "clusterip", "my-web",
                "--tcp=80:8080", "--tcp=443:8443")
    oci.kubectl("-n", "envs", "create", "service", "clusterip", "headless", "--clusterip=None",
                "--tcp=80:80")
    web_ip = oci.kubectl("-n", "envs", "get", "svc", "my-web", "-o",
                         "jsonpath={.spec.clusterIP}").stdout
    api_ip = oci.kubectl("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert web_ip and api_ip
    linked = sleeper("linked")
    linked["metadata"]["namespace"] = "envs"
    unlinked = sleeper("unlinked", enableServiceLinks=False)
    unlinked["metadata"]["namespace"] = "envs"
    apply(oci, linked)
    apply(oci, unlinked)

    def env_of(name: str) -> dict[str, str]:
        wait_for(f"pod {name} Running", lambda: oci.kubectl(
            "-n", "envs", "get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
            == "Running", timeout=60)
        out = oci.kubectl("-n", "envs", "exec", name, "--", "env").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    env = env_of("linked")
    assert env["MY_WEB_SERVICE_HOST"] == web_ip
    assert env["MY_WEB_SERVICE_PORT"] == "80"
    assert env["MY_WEB_SERVICE_PORT_80_8080"] == "80"
    assert env["MY_WEB_PORT"] == f"tcp://{web_ip}:80"
    assert env["MY_WEB_PORT_443_TCP"] == f"tcp://{web_ip}:443"
    assert env["MY_WEB_PORT_443_TCP_ADDR"] == web_ip
    assert env["KUBERNETES_SERVICE_HOST"] == api_ip
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert not any(k.startswith("HEADLESS_") for k in env)
    plain = env_of("unlinked")
    assert plain["KUBERNETES_SERVICE_HOST"] == api_ip
    assert not any(k.startswith("MY_WEB_") for k in plain)
