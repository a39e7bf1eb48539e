"""Cluster DNS: Services and Pods by name, everything else forwarded upstream.

:class:`ClusterDNS` serves the cluster zone (``cluster.local``) over UDP and
TCP from informers; :func:`publish_service` makes it reachable as the Service
``kube-system/kube-dns``. ``kubeling dns`` runs it alone; ``kubeling server``
runs it in process.
"""

from kubeling.dns.publish import publish_service
from kubeling.dns.server import ClusterDNS

__all__ = ["ClusterDNS", "publish_service"]
