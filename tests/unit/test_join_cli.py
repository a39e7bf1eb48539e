"""The node agent's flags, shared by ``kubeling server`` and ``kubeling agent``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kubeling.cli.agent import add_agent_flags, add_join_flags, agent_options, default_node_name
from kubeling.kubelet import runtimechoice


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_join_flags(p)
    add_agent_flags(p)
    return p.parse_args(list(argv))


def test_defaults_are_the_kubelets(tmp_path: Path) -> None:
    opts = agent_options(parse(), tmp_path, control_plane=False)
    assert opts.node_name == default_node_name() == default_node_name().lower()
    assert (opts.port, opts.health_port, opts.max_pods) == (10250, 10248, 110)
    assert (opts.backoff_initial, opts.backoff_max) == (10.0, 300.0)
    assert (opts.container_log_max_bytes, opts.container_log_max_files) == (10 * 2**20, 5)
    assert (opts.lease_interval, opts.lease_duration) == (10.0, 40)
    assert (opts.status_update_interval, opts.status_report_interval) == (10.0, 60.0)
    expected = "process" if runtimechoice.oci_missing() else "oci"
    assert opts.runtime == expected and opts.pod_manifest_path is None
    assert opts.root_dir == tmp_path and not opts.control_plane


def test_every_flag_reaches_the_options(tmp_path: Path) -> None:
    args = parse("--node-name", "Worker-1", "--node-ip", "10.0.0.9", "--kubelet-port", "0",
                 "--kubelet-health-port", "0", "--pod-manifest-path", str(tmp_path / "m"),
                 "--node-labels", "disk=ssd,zone=a",
                 "--register-with-taints", "dedicated=gpu:NoSchedule,spot:PreferNoSchedule",
                 "--max-pods", "20", "--container-backoff-initial", "1s",
                 "--container-backoff-max", "1m30s", "--container-log-max-size", "1Mi",
                 "--container-log-max-files", "2", "--node-status-update-frequency", "5s",
                 "--node-status-report-frequency", "2m", "--node-lease-interval", "500ms",
                 "--node-lease-duration-seconds", "20")
    opts = agent_options(args, tmp_path, control_plane=True)
    assert opts.node_name == "worker-1" and opts.node_ip == "10.0.0.9"
    assert (opts.port, opts.health_port, opts.max_pods) == (0, 0, 20)
    assert opts.pod_manifest_path == (tmp_path / "m").resolve()
    assert opts.node_labels == {"disk": "ssd", "zone": "a"}
    assert opts.register_with_taints == [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "spot", "effect": "PreferNoSchedule"}]
    assert (opts.backoff_initial, opts.backoff_max) == (1.0, 90.0)
    assert (opts.container_log_max_bytes, opts.container_log_max_files) == (2**20, 2)
    assert (opts.status_update_interval, opts.status_report_interval) == (5.0, 120.0)
    assert (opts.lease_interval, opts.lease_duration) == (0.5, 20)
    assert opts.control_plane


@pytest.mark.parametrize("argv", [
    ("--register-with-taints", "dedicated=gpu"),
    ("--register-with-taints", "k=v:Sometimes"),
    ("--node-labels", "novalue"),
    ("--container-log-max-size", "lots"),
    ("--container-backoff-initial", "ten seconds"),
])
def test_bad_values_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


def test_runtime_choice_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtimechoice.os, "geteuid", lambda: 1000)
    choice = runtimechoice.choose("auto")
    assert choice.runtime == "process" and "not running as root" in choice.why
    with pytest.raises(runtimechoice.RuntimeUnavailable, match="not running as root"):
        runtimechoice.choose("oci")
    assert runtimechoice.choose("process").runtime == "process"
    monkeypatch.setattr(runtimechoice.os, "geteuid", lambda: 0)
    monkeypatch.setattr(runtimechoice.shutil, "which", lambda name: None)
    assert "neither runc nor crun" in runtimechoice.choose("auto").why
