"""kube-proxy's metrics, under kube-proxy's names, in the process's component registry.

Defined once per process (a Prometheus registry refuses a name twice) and shared by
every :class:`kubeling.proxy.proxier.ServiceProxy` it runs.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from kubeling.utils.metrics import REGISTRY

_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

SYNC_DURATION = Histogram(
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds", registry=REGISTRY, buckets=_BUCKETS)
FULL_SYNC_DURATION = Histogram(
    "kubeproxy_sync_full_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds for full resyncs", registry=REGISTRY, buckets=_BUCKETS)
PARTIAL_SYNC_DURATION = Histogram(
    "kubeproxy_sync_partial_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds for partial resyncs", registry=REGISTRY,
    buckets=_BUCKETS)
LAST_SYNC = Gauge(
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "The last time proxy rules were successfully synced", registry=REGISTRY)
NETWORK_PROGRAMMING = Histogram(
    "kubeproxy_network_programming_duration_seconds",
    "In Cluster Network Programming Latency in seconds", registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0))
SYNC_ERRORS = Counter(
    "kubeproxy_sync_proxy_rules_errors_total",
    "Cumulative proxy rules sync errors", registry=REGISTRY)
SERVICE_PORTS = Gauge(
    "kubeproxy_programmed_service_ports", "Service ports currently programmed",
    registry=REGISTRY)
ENDPOINTS = Gauge(
    "kubeproxy_programmed_endpoints", "Service port endpoints currently programmed",
    registry=REGISTRY)
