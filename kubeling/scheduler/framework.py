"""The scheduling framework's vocabulary: status codes, cycle state, plugin protocols.

A plugin answers one question at one extension point (PreFilter, Filter,
PreScore, Score and NormalizeScore) and says "cannot place this pod here" by
returning a :class:`Status`, never by raising. ``None`` is Success, so the hot
path allocates nothing when a node fits. Plugins are built by name from a
registry of factories, each given the :class:`Handle` (the snapshot of nodes
and pods for the cycle). A plugin also names the cluster events that could
make a pod it rejected schedulable, so the queue retries pods only when it
could help.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kubeling.api.selectors import LabelSelector
from kubeling.scheduler.nodeinfo import NodeInfo, PodInfo, Resource

if TYPE_CHECKING:
    from kubeling.scheduler.cache import TermCounts

__all__ = [
    "MAX_NODE_SCORE", "Code", "CycleState", "Diagnosis", "Event", "FilterPlugin", "Handle",
    "NodeInfo", "PluginRegistry", "PodInfo", "PreFilterPlugin", "PreFilterResult",
    "PreScorePlugin", "Resource", "ScorePlugin", "Snapshot", "Status", "fit_error_message",
]

MAX_NODE_SCORE = 100
NO_NODE_AVAILABLE = "0/{} nodes are available"


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5


class Status:
    """A plugin's answer other than plain success: a code, reasons, and who said it."""

    __slots__ = ("code", "plugin", "reasons")

    def __init__(self, code: Code, *reasons: str, plugin: str = "") -> None:
        self.code = code
        self.reasons: tuple[str, ...] = reasons
        self.plugin = plugin

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_skip(self) -> bool:
        return self.code == Code.SKIP

    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def with_plugin(self, plugin: str) -> Status:
        if self.plugin:
            return self
        return Status(self.code, *self.reasons, plugin=plugin)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Status) and self.code == other.code
                and self.reasons == other.reasons)

    def __hash__(self) -> int:
        return hash((self.code, self.reasons))

    def __repr__(self) -> str:
        return f"Status({self.code.name}, {list(self.reasons)!r}, plugin={self.plugin!r})"


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, *reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)


SKIP = Status(Code.SKIP)


class Event(enum.Flag):
    """Cluster events that can make an unschedulable pod schedulable."""

    NODE_ADD = enum.auto()
    NODE_DELETE = enum.auto()
    NODE_LABEL = enum.auto()
    NODE_TAINT = enum.auto()
    NODE_ALLOCATABLE = enum.auto()
    ASSIGNED_POD_ADD = enum.auto()
    ASSIGNED_POD_UPDATE = enum.auto()
    ASSIGNED_POD_DELETE = enum.auto()
    POD_UPDATE = enum.auto()  # the unschedulable pod itself changed
    NONE = 0


class CycleState:
    """Data plugins share within one scheduling cycle of one pod."""

    __slots__ = ("_data", "skip_filter", "skip_score")

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def read(self, key: str) -> Any:
        return self._data.get(key)


@dataclass
class PreFilterResult:
    """A PreFilter's narrowing of the nodes worth filtering (None means all)."""

    node_names: set[str] | None = None

    def merge(self, other: PreFilterResult | None) -> PreFilterResult:
        if other is None or other.node_names is None:
            return self
        if self.node_names is None:
            return PreFilterResult(set(other.node_names))
        return PreFilterResult(self.node_names & other.node_names)


class Snapshot(Protocol):
    """The view of the cluster a cycle schedules against (nodes with their pods)."""

    def node_infos(self) -> list[NodeInfo]: ...

    def get(self, name: str) -> NodeInfo | None: ...

    def with_pods_with_affinity(self) -> Iterable[NodeInfo]: ...

    def with_required_anti_affinity(self) -> Iterable[NodeInfo]: ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...

    def namespaces(self) -> Iterable[tuple[str, Mapping[str, str]]]: ...

    def matching_pods(self, namespaces: Iterable[str] | None,
                      selector: LabelSelector) -> Iterator[tuple[PodInfo, NodeInfo]]: ...

    def term_counts(self, kind: str) -> Iterator[TermCounts]: ...

    def has_terms(self, kind: str) -> bool: ...

    @property
    def node_generation(self) -> int: ...


@dataclass
class Handle:
    snapshot: Snapshot
    args: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Plugin(Protocol):
    name: str
    events: Event


@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState,
                   pod: PodInfo) -> tuple[PreFilterResult | None, Status | None]: ...


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None: ...


@runtime_checkable
class PreScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo,
                  nodes: list[NodeInfo]) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int: ...

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                        scores: list[int]) -> None: ...


Factory = Callable[[Handle], Any]


class PluginRegistry:
    """Plugin name → factory; a profile builds its plugins from here by name."""

    def __init__(self, factories: Mapping[str, Factory] | None = None) -> None:
        self._factories: dict[str, Factory] = dict(factories or {})

    def register(self, name: str, factory: Factory) -> None:
        if name in self._factories:
            raise ValueError(f"a plugin named {name!r} is already registered")
        self._factories[name] = factory

    def build(self, name: str, handle: Handle) -> Any:
        return self._factories[name](handle)

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def names(self) -> list[str]:
        return list(self._factories)


def default_normalize(scores: list[int], *, reverse: bool = False,
                      max_priority: int = MAX_NODE_SCORE) -> None:
    """Scale scores to 0..max by the highest one (inverted when ``reverse``)."""
    top = max(scores, default=0)
    if top == 0:
        if reverse:
            scores[:] = [max_priority] * len(scores)
        return
    for i, s in enumerate(scores):
        s = max_priority * s // top
        scores[i] = max_priority - s if reverse else s


@dataclass
class Diagnosis:
    """Why no node fitted: each node's status, the rejecting plugins, PreFilter's word."""

    node_to_status: dict[str, Status] = field(default_factory=dict)
    absent_status: Status | None = None
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


def fit_error_message(num_all_nodes: int, d: Diagnosis) -> str:
    """The "0/N nodes are available: ..." text, reasons counted and sorted as strings."""
    msg = NO_NODE_AVAILABLE.format(num_all_nodes) + ":"
    if d.pre_filter_msg:
        msg += f" {d.pre_filter_msg}."
    else:
        counts: dict[str, int] = {}
        for status in d.node_to_status.values():
            for reason in status.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        absent = num_all_nodes - len(d.node_to_status)
        if absent > 0 and d.absent_status is not None:
            for reason in d.absent_status.reasons:
                counts[reason] = counts.get(reason, 0) + absent
        histogram = sorted(f"{n} {reason}" for reason, n in counts.items())
        if histogram:
            msg += f" {', '.join(histogram)}."
    if d.post_filter_msg:
        msg += f" {d.post_filter_msg}"
    return msg
