"""Liveness, readiness and startup probes (the kubelet's prober): a worker per probe of
each container, and the latest results keyed by container runtime id."""

from kubeling.kubelet.probes.manager import ProbeManager
from kubeling.kubelet.probes.results import PROBE_TOTAL

__all__ = ["PROBE_TOTAL", "ProbeManager"]
