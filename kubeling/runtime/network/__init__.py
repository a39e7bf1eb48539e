"""The pod network: CNI plugins on a node's pod CIDR, one network namespace per sandbox.

``PodNetwork`` is what the OCI runtime uses; the modules below it are one
concern each: ``conflist`` (the configuration we write and the one in use),
``cni`` (running plugins, the result cache), ``result`` (what results and
errors say), ``netns`` (namespaces bound on files), ``bridge`` (the node's
bridge when the pod CIDR changes).
"""

from kubeling.runtime.network.podnetwork import PodNetwork
from kubeling.runtime.network.result import NetworkError, NetworkStatus

__all__ = ["NetworkError", "NetworkStatus", "PodNetwork"]
