"""Metrics of the cluster DNS, named after CoreDNS's so existing dashboards read them.

They live in the process's one registry (:mod:`kubeling.utils.metrics`), so the
API server's ``/metrics`` shows them when DNS runs in process and the health
server of ``kubeling dns`` when it runs alone.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from kubeling.utils.metrics import REGISTRY

REQUESTS = Counter("coredns_dns_requests_total", "Counter of DNS requests made per protocol "
                   "and type.", ["proto", "type"], registry=REGISTRY)
RESPONSES = Counter("coredns_dns_responses_total", "Counter of response status codes.",
                    ["rcode"], registry=REGISTRY)
DURATION = Histogram("coredns_dns_request_duration_seconds",
                     "Histogram of the time (in seconds) each request took.", ["type"],
                     registry=REGISTRY,
                     buckets=(0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
                              0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096))
FORWARD_REQUESTS = Counter("coredns_forward_requests_total",
                           "Counter of requests made per upstream.", ["to"], registry=REGISTRY)
FORWARD_RESPONSES = Counter("coredns_forward_responses_total",
                            "Counter of responses received per upstream.", ["to", "rcode"],
                            registry=REGISTRY)
FORWARD_FAILURES = Counter("coredns_forward_failures_total",
                           "Counter of requests to an upstream that got no answer.", ["to"],
                           registry=REGISTRY)
CACHE_HITS = Counter("coredns_cache_hits_total", "The count of cache hits.",
                     registry=REGISTRY)
