"""Shared fixtures: a real kubeling server for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, free_port, kill_containers, start_hollow_nodes

HOLLOW_NODES = 3


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One server for the session (tests use their own namespaces)."""
    c = Cluster(tmp_path_factory.mktemp("kubeling"), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A server of its own, for tests that restart or kill it."""
    c = Cluster(tmp_path / "data", free_port())
    c.data_dir.mkdir()
    c.start()
    yield c
    c.stop()


@pytest.fixture
def hollow_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A server of its own with three hollow nodes (``cluster.hollow``, a ``kubeling
    hollow-nodes`` process) that run every pod bound to them."""
    c = Cluster(tmp_path / "data", free_port())
    c.data_dir.mkdir()
    c.start()
    hollow = start_hollow_nodes(c, HOLLOW_NODES)
    c.hollow = hollow  # type: ignore[attr-defined]
    yield c
    hollow.stop()
    c.stop()


@pytest.fixture(scope="session")
def agent_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One server for the session that is also a node (``AGENT_NODE``) running pods with the
    process runtime; its static pod manifests are read from ``<data dir>/manifests``."""
    c = Cluster(tmp_path_factory.mktemp("kubeling-agent"), free_port(), agent=True)
    (c.data_dir / "manifests").mkdir()
    c.start("--pod-manifest-path", str(c.data_dir / "manifests"))
    yield c
    c.stop()
    kill_containers(c.data_dir)


@pytest.fixture
def fresh_agent_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A server of its own that is also a node, for tests that restart or kill it."""
    c = Cluster(tmp_path / "data", free_port(), agent=True)
    c.data_dir.mkdir()
    c.start()
    yield c
    c.stop()
    kill_containers(c.data_dir)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed and call.when == "call":
        for name in ("cluster", "fresh_cluster", "hollow_cluster", "agent_cluster",
                     "fresh_agent_cluster"):
            c = getattr(item, "funcargs", {}).get(name)
            if isinstance(c, Cluster):
                report.sections.append(("kubeling server log (tail)", c.log_tail()))
    return report
