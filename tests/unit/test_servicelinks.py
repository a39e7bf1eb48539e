"""Service environment variables: the Kubernetes form and Docker's links form."""

from __future__ import annotations

from typing import Any

from kubeling.kubelet.containers import make_env
from kubeling.kubelet.servicelinks import (
    discovered_cluster_dns,
    pod_service_env,
    service_env,
)


def svc(name: str, ip: str, *ports: dict[str, Any], ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": list(ports)}}


def test_one_unnamed_port() -> None:
    assert service_env([svc("redis-master", "10.43.0.11", {"port": 6379})]) == [
        ("REDIS_MASTER_SERVICE_HOST", "10.43.0.11"),
        ("REDIS_MASTER_SERVICE_PORT", "6379"),
        ("REDIS_MASTER_PORT", "tcp://10.43.0.11:6379"),
        ("REDIS_MASTER_PORT_6379_TCP", "tcp://10.43.0.11:6379"),
        ("REDIS_MASTER_PORT_6379_TCP_PROTO", "tcp"),
        ("REDIS_MASTER_PORT_6379_TCP_PORT", "6379"),
        ("REDIS_MASTER_PORT_6379_TCP_ADDR", "10.43.0.11"),
    ]


def test_several_named_ports_and_udp() -> None:
    env = service_env([svc("kube-dns", "10.43.0.10",
                           {"name": "dns", "port": 53, "protocol": "UDP"},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                           {"name": "metrics", "port": 9153, "protocol": "TCP"})])
    assert env == [
        ("KUBE_DNS_SERVICE_HOST", "10.43.0.10"),
        ("KUBE_DNS_SERVICE_PORT", "53"),
        ("KUBE_DNS_SERVICE_PORT_DNS", "53"),
        ("KUBE_DNS_SERVICE_PORT_DNS_TCP", "53"),
        ("KUBE_DNS_SERVICE_PORT_METRICS", "9153"),
        ("KUBE_DNS_PORT", "udp://10.43.0.10:53"),
        ("KUBE_DNS_PORT_53_UDP", "udp://10.43.0.10:53"),
        ("KUBE_DNS_PORT_53_UDP_PROTO", "udp"),
        ("KUBE_DNS_PORT_53_UDP_PORT", "53"),
        ("KUBE_DNS_PORT_53_UDP_ADDR", "10.43.0.10"),
        ("KUBE_DNS_PORT_53_TCP", "tcp://10.43.0.10:53"),
        ("KUBE_DNS_PORT_53_TCP_PROTO", "tcp"),
        ("KUBE_DNS_PORT_53_TCP_PORT", "53"),
        ("KUBE_DNS_PORT_53_TCP_ADDR", "10.43.0.10"),
        ("KUBE_DNS_PORT_9153_TCP", "tcp://10.43.0.10:9153"),
        ("KUBE_DNS_PORT_9153_TCP_PROTO", "tcp"),
        ("KUBE_DNS_PORT_9153_TCP_PORT", "9153"),
        ("KUBE_DNS_PORT_9153_TCP_ADDR", "10.43.0.10"),
    ]


def test_ipv6_cluster_ip_bracketed() -> None:
    env = dict(service_env([svc("v6", "fd00::11", {"port": 80})]))
    assert env["V6_PORT"] == "tcp://[fd00::11]:80"
    assert env["V6_PORT_80_TCP_ADDR"] == "fd00::11"


def test_headless_and_external_name_skipped() -> None:
    external = {"metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}}
    assert service_env([svc("headless", "None", {"port": 80}), external]) == []


class Source:
    def __init__(self, *svcs: dict[str, Any]) -> None:
        self.svcs = svcs

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return next((s for s in self.svcs if s["metadata"]["namespace"] == namespace
                     and s["metadata"]["name"] == name), None)

    def services(self, namespace: str) -> list[dict[str, Any]]:
        return [s for s in self.svcs if s["metadata"]["namespace"] == namespace]

    def configmap(self, namespace: str, name: str) -> None:
        return None

    secret = pvc = configmap

    def pv(self, name: str) -> None:
        return None

    def node(self) -> None:
        return None


SOURCE = Source(svc("kubernetes", "10.43.0.1", {"name": "https", "port": 443}),
                svc("other", "10.43.0.20", {"port": 80}),
                svc("web", "10.43.0.30", {"name": "http", "port": 80}, ns="shop"),
                svc("db", "None", {"port": 5432}, ns="shop"))


def pod(ns: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": ns, "uid": "u"},
            "spec": {"containers": [{"name": "c"}], **spec}}


def test_pod_gets_its_namespace_and_kubernetes() -> None:
    env = pod_service_env(pod(), SOURCE)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.43.0.1:443"
    assert env["WEB_SERVICE_HOST"] == "10.43.0.30"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80"
    assert not any(k.startswith(("OTHER_", "DB_")) for k in env)


def test_enable_service_links_false_keeps_kubernetes() -> None:
    env = pod_service_env(pod(enableServiceLinks=False), SOURCE)
    assert {k.split("_")[0] for k in env} == {"KUBERNETES"}
    assert "OTHER_SERVICE_HOST" in pod_service_env(pod("default"), SOURCE)


def test_no_services_known() -> None:
    assert pod_service_env(pod(), object()) == {}
    assert discovered_cluster_dns(object()) == ()
    assert discovered_cluster_dns(SOURCE) == ()


def test_container_env_wins_and_may_refer_to_service_vars() -> None:
    container = {"name": "c", "env": [
        {"name": "WEB_SERVICE_HOST", "value": "mine"},
        {"name": "URL", "value": "http://$(KUBERNETES_SERVICE_HOST):$(WEB_SERVICE_PORT)"}]}
    env = make_env(pod(), container, objects=SOURCE,
                   node_name="n", host_ip="192.0.2.1", pod_ip="10.42.0.9")
    values = dict(env)
    assert values["WEB_SERVICE_HOST"] == "mine"
    assert values["URL"] == "http://10.43.0.1:80"
    assert [k for k, _ in env][:2] == ["WEB_SERVICE_HOST", "URL"]
    assert values["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
