"""The in-tree plugins, their registry and the default profile (order and score weights
as kube-scheduler's default configuration has them)."""

from __future__ import annotations

from kubeling.scheduler.framework import PluginRegistry
from kubeling.scheduler.plugins import (
    interpodaffinity,
    nodeaffinity,
    nodename,
    nodeports,
    noderesources,
    nodeunschedulable,
    podtopologyspread,
    tainttoleration,
)


def default_registry() -> PluginRegistry:
    return PluginRegistry({
        nodeunschedulable.NAME: nodeunschedulable.new,
        nodename.NAME: nodename.new,
        tainttoleration.NAME: tainttoleration.new,
        nodeaffinity.NAME: nodeaffinity.new,
        nodeports.NAME: nodeports.new,
        noderesources.FIT: noderesources.new_fit,
        podtopologyspread.NAME: podtopologyspread.new,
        interpodaffinity.NAME: interpodaffinity.new,
        noderesources.BALANCED: noderesources.new_balanced,
    })


# (plugin, score weight or 0 when it does not score), in the default profile's order.
DEFAULT_PLUGINS: tuple[tuple[str, int], ...] = (
    (nodeunschedulable.NAME, 0),
    (nodename.NAME, 0),
    (tainttoleration.NAME, 3),
    (nodeaffinity.NAME, 2),
    (nodeports.NAME, 0),
    (noderesources.FIT, 1),
    (podtopologyspread.NAME, 2),
    (interpodaffinity.NAME, 2),
    (noderesources.BALANCED, 1),
)
