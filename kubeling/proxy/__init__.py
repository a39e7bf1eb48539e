"""The service proxy (kube-proxy): Services' virtual IPs, node ports and load balancing.

:class:`ServiceProxy` watches Services and EndpointSlices and programs either an
nftables table (as root) or a userspace relay (without root). See
:mod:`kubeling.proxy.proxier`.
"""

from kubeling.proxy.proxier import ServiceProxy, choose_mode

__all__ = ["ServiceProxy", "choose_mode"]
