"""One scheduling profile: its plugins by extension point, and the algorithm that runs them.

For one pod: PreFilter (plugins may skip themselves, narrow the nodes or
reject the pod outright), Filter over the nodes starting where the last pod
stopped until enough feasible nodes are found (percentageOfNodesToScore, as
Kubernetes samples), PreScore, Score, NormalizeScore and the weighted sum,
then the best node, ties broken uniformly at random. When no node fits, the
diagnosis (each node's first failing plugin's reasons) becomes the
"0/N nodes are available: ..." message.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from kubeling.scheduler.framework import (
    Code,
    CycleState,
    Diagnosis,
    Handle,
    NodeInfo,
    PluginRegistry,
    PodInfo,
    PreFilterResult,
    Snapshot,
    Status,
    fit_error_message,
    unresolvable,
)
from kubeling.scheduler.plugins import DEFAULT_PLUGINS, default_registry

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NO_NODES_AVAILABLE = "no nodes available to schedule pods"


class FitError(Exception):
    """No node fits the pod; ``str()`` is Kubernetes' FailedScheduling message."""

    def __init__(self, pod: PodInfo, num_all_nodes: int, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return fit_error_message(self.num_all_nodes, self.diagnosis)


class NoNodesAvailable(Exception):
    def __str__(self) -> str:
        return NO_NODES_AVAILABLE


@dataclass
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int


def num_feasible_nodes_to_find(num_all: int, percentage: int) -> int:
    if num_all < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all
    if percentage == 0:
        percentage = max(50 - num_all // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    n = num_all * percentage // 100
    return max(n, MIN_FEASIBLE_NODES_TO_FIND)


class Profile:
    def __init__(self, snapshot: Snapshot, *, scheduler_name: str = "default-scheduler",
                 registry: PluginRegistry | None = None,
                 plugins: Sequence[tuple[str, int]] = DEFAULT_PLUGINS,
                 percentage_of_nodes_to_score: int = 0,
                 plugin_args: dict[str, dict] | None = None,
                 rng: random.Random | None = None) -> None:
        self.scheduler_name = scheduler_name
        self.snapshot = snapshot
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        registry = registry or default_registry()
        self.plugins: list = []
        self.pre_filters: list = []
        self.filters: list = []
        self.pre_scores: list = []
        self.scores: list[tuple[object, int]] = []
        for name, weight in plugins:
            p = registry.build(name, Handle(snapshot, (plugin_args or {}).get(name, {})))
            self.plugins.append(p)
            if hasattr(p, "pre_filter"):
                self.pre_filters.append(p)
            if hasattr(p, "filter"):
                self.filters.append(p)
            if hasattr(p, "pre_score"):
                self.pre_scores.append(p)
            if weight > 0 and hasattr(p, "score"):
                self.scores.append((p, weight))
        self.next_start = 0

    # ----- one pod ---------------------------------------------------------------------

    def run_pre_filter(self, state: CycleState, pod: PodInfo,
                       diagnosis: Diagnosis) -> PreFilterResult:
        result = PreFilterResult()
        narrowing: list[str] = []
        for p in self.pre_filters:
            r, status = p.pre_filter(state, pod)
            if status is not None:
                if status.code == Code.SKIP:
                    state.skip_filter.add(p.name)
                    continue
                status = status.with_plugin(p.name)
                if status.is_rejected():
                    diagnosis.unschedulable_plugins.add(p.name)
                    diagnosis.pre_filter_msg = status.message
                    diagnosis.absent_status = status
                    raise FitError(pod, self.snapshot_size(), diagnosis)
                raise RuntimeError(f"running PreFilter plugin {p.name!r}: {status.message}")
            if r is not None and r.node_names is not None:
                narrowing.append(p.name)
                result = result.merge(r)
                if not result.node_names:
                    msg = (f"node(s) didn't satisfy plugin {narrowing[0]}" if len(narrowing) == 1
                           else "node(s) didn't satisfy plugin(s) "
                                f"[{' '.join(sorted(narrowing))}] simultaneously")
                    diagnosis.pre_filter_msg = msg
                    diagnosis.absent_status = unresolvable(msg)
                    diagnosis.unschedulable_plugins.update(narrowing)
                    raise FitError(pod, self.snapshot_size(), diagnosis)
        if narrowing:
            diagnosis.absent_status = unresolvable(
                f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(narrowing))}]")
        return result

    def snapshot_size(self) -> int:
        return len(self.snapshot.node_infos())

    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for p in self.filters:
            if p.name in state.skip_filter:
                continue
            status = p.filter(state, pod, node)
            if status is not None:
                return status.with_plugin(p.name)
        return None

    def find_feasible(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                      diagnosis: Diagnosis, num_all: int) -> list[NodeInfo]:
        """Filter nodes from where the last pod stopped until ``to_find`` fit. Nodes go
        through the plugins a chunk at a time (each plugin sees the survivors of the ones
        before it, so every node keeps its first failing plugin's status)."""
        n = len(nodes)
        to_find = num_feasible_nodes_to_find(n, self.percentage)
        filters = [(getattr(p, "filter_all", None), p.filter, p.name)
                   for p in self.filters if p.name not in state.skip_filter]
        start = self.next_start % n if n else 0
        order = nodes[start:] + nodes[:start] if start else nodes
        feasible: list[NodeInfo] = []
        statuses = diagnosis.node_to_status
        pos = processed = 0
        while pos < n and len(feasible) < to_find:
            need = to_find - len(feasible)
            chunk = order[pos:pos + max(need, 64)]
            pos += len(chunk)
            survivors = chunk
            for batch, single, name in filters:
                if batch is not None:
                    failed = batch(state, pod, survivors)
                else:
                    failed = [(i, st) for i, ni in enumerate(survivors)
                              if (st := single(state, pod, ni)) is not None]
                if failed:
                    diagnosis.unschedulable_plugins.add(name)
                    for i, st in failed:
                        statuses[survivors[i].name] = st.with_plugin(name)
                    gone = {i for i, _ in failed}
                    survivors = [ni for i, ni in enumerate(survivors) if i not in gone]
            if len(survivors) > need:
                survivors = survivors[:need]
                processed = pos - len(chunk) + chunk.index(survivors[-1]) + 1
            else:
                processed = pos
            feasible.extend(survivors)
        self.next_start = (self.next_start + processed) % max(num_all, 1)
        return feasible

    def prioritize(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        for p in self.pre_scores:
            status = p.pre_score(state, pod, nodes)
            if status is not None and status.code == Code.SKIP:
                state.skip_score.add(p.name)
        totals = [0] * len(nodes)
        scored = False
        for p, weight in self.scores:
            if p.name in state.skip_score:
                continue
            scored = True
            batch = getattr(p, "score_all", None)
            if batch is not None:
                scores = batch(state, pod, nodes)
            else:
                score = p.score
                scores = [score(state, pod, ni) for ni in nodes]
            p.normalize_score(state, pod, nodes, scores)
            totals = [t + s * weight for t, s in zip(totals, scores, strict=True)]
        if not scored:
            return [1] * len(nodes)
        return totals

    def select_host(self, nodes: list[NodeInfo], scores: list[int]) -> NodeInfo:
        """The highest-scoring node; among equals, each equally likely."""
        top = max(scores)
        best = [i for i, s in enumerate(scores) if s == top]
        return nodes[best[0] if len(best) == 1 else best[self.rng.randrange(len(best))]]

    def schedule(self, pod: PodInfo, state: CycleState | None = None) -> ScheduleResult:
        """Choose a node for ``pod``; raises FitError or NoNodesAvailable."""
        all_nodes = self.snapshot.node_infos()
        if not all_nodes:
            raise NoNodesAvailable()
        state = state or CycleState()
        diagnosis = Diagnosis()
        result = self.run_pre_filter(state, pod, diagnosis)
        nodes = all_nodes
        if result.node_names is not None:
            nodes = [ni for ni in (self.snapshot.get(n) for n in sorted(result.node_names))
                     if ni is not None]
        feasible = self.find_feasible(state, pod, nodes, diagnosis, len(all_nodes))
        if not feasible:
            raise FitError(pod, len(all_nodes), diagnosis)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, len(diagnosis.node_to_status) + 1, 1)
        scores = self.prioritize(state, pod, feasible)
        best = self.select_host(feasible, scores)
        return ScheduleResult(best.name, len(diagnosis.node_to_status) + len(feasible),
                              len(feasible))
