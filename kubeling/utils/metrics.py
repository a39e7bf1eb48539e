"""Prometheus metrics of the cluster components (scheduler, controllers, node agents).

One registry per process, named as Kubernetes names these metrics
(``workqueue_*``, ``scheduler_*``), served on ``/metrics`` by the API server in
the all-in-one process and by each component's health server when it runs alone.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()

WORKQUEUE_DEPTH = Gauge("workqueue_depth", "Current depth of workqueue", ["name"],
                        registry=REGISTRY)
WORKQUEUE_ADDS = Counter("workqueue_adds_total", "Total number of adds handled by workqueue",
                         ["name"], registry=REGISTRY)
WORKQUEUE_RETRIES = Counter("workqueue_retries_total",
                            "Total number of retries handled by workqueue", ["name"],
                            registry=REGISTRY)
WORKQUEUE_WORK = Histogram("workqueue_work_duration_seconds",
                           "How long in seconds processing an item from workqueue takes.",
                           ["name"], registry=REGISTRY,
                           buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0))


def exposition() -> bytes:
    return generate_latest(REGISTRY)
