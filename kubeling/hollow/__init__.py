"""Hollow nodes: fake kubelets that register Nodes and run pods without running anything.

As Kubernetes' kubemark and KWOK, they let the scheduler and the controllers
be tested and measured at thousands of nodes on one machine. A hollow node
registers a Node (capacity, addresses, nodeInfo, the usual labels plus
``type=hollow``, Ready and pressure conditions), renews its Lease in
``kube-node-lease``, and reports every pod bound to it as Running and Ready
at once (podIP from the node's ``spec.podCIDR``, or from 100.64.0.0/10 when it
has none). A pod being deleted is removed at once (grace period 0), as a
kubelet does once its containers have stopped.

Pods tell a hollow node how to end, through annotations (only pods whose
``restartPolicy`` is Never or OnFailure; others run until deleted):

``kubeling.io/hollow-exit-after: "<seconds>"``
    the containers exit that many seconds after they started;
``kubeling.io/hollow-exit-code: "<int>"`` (default ``"0"``)
    with this code: 0 ends the pod Succeeded, anything else Failed — except under
    restartPolicy OnFailure, where a failed container is restarted (its
    ``restartCount`` grows and it exits again after the same time), as a kubelet
    restarts it.

:meth:`HollowNodes.kill` makes one node fail like a machine that lost power:
its lease and status stop being renewed and its pods are left as they are.
"""

from kubeling.hollow.nodes import HollowNodes
from kubeling.hollow.objects import HOLLOW_LABEL, HOLLOW_VALUE
from kubeling.hollow.podstatus import EXIT_AFTER, EXIT_CODE

__all__ = ["EXIT_AFTER", "EXIT_CODE", "HOLLOW_LABEL", "HOLLOW_VALUE", "HollowNodes"]
