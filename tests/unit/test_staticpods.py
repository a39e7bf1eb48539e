"""Static pod manifests: read, defaulted as the kubelet does, re-read when they change."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubeling.kubelet.context import CONFIG_HASH, CONFIG_SEEN, CONFIG_SOURCE
from kubeling.kubelet.staticpods import StaticPodSource
from kubeling.utils.clock import FakeClock
from kubeling.utils.tasks import spawn

NODE = "node-a"

WEB = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: web
    image: busybox
    command: [sleep, "3600"]
"""


def write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()  # a distinct mtime even within the file system's granularity
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def only(pods: dict[str, Any]) -> dict[str, Any]:
    assert len(pods) == 1
    return next(iter(pods.values()))


def test_manifest_is_defaulted_as_the_kubelet_does(tmp_path: Path) -> None:
    write(tmp_path / "web.yaml", WEB)
    pod = only(StaticPodSource(tmp_path, NODE, clock=FakeClock(1_700_000_000.5)).scan())
    meta = pod["metadata"]
    assert meta["name"] == "web-node-a"
    assert meta["namespace"] == "default"
    assert meta["labels"] == {"app": "web"}
    assert len(meta["uid"]) == 32
    assert meta["annotations"][CONFIG_HASH] == meta["uid"]
    assert meta["annotations"][CONFIG_SOURCE] == "file"
    assert meta["annotations"][CONFIG_SEEN] == "2023-11-14T22:13:20.500000000Z"
    spec = pod["spec"]
    assert spec["nodeName"] == NODE
    assert {"operator": "Exists", "effect": "NoExecute"} in spec["tolerations"]
    assert spec["restartPolicy"] == "Always"
    assert spec["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    assert pod["status"]["phase"] == "Pending"


def test_namespace_kept_and_json_read(tmp_path: Path) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "db", "namespace": "kube-system"},
                "spec": {"containers": [{"name": "db", "image": "busybox"}],
                         "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]}}
    (tmp_path / "db.json").write_bytes(orjson.dumps(manifest))
    pod = only(StaticPodSource(tmp_path, NODE).scan())
    assert (pod["metadata"]["namespace"], pod["metadata"]["name"]) == ("kube-system",
                                                                       "db-node-a")
    assert pod["spec"]["tolerations"] == [{"operator": "Exists", "effect": "NoExecute"}]


def test_uid_is_stable_and_follows_content_and_node(tmp_path: Path) -> None:
    write(tmp_path / "web.yaml", WEB)
    source = StaticPodSource(tmp_path, NODE)
    first = only(source.scan())
    again = only(StaticPodSource(tmp_path, NODE).scan())
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    other_node = only(StaticPodSource(tmp_path, "node-b").scan())
    assert other_node["metadata"]["uid"] != first["metadata"]["uid"]
    write(tmp_path / "web.yaml", WEB.replace("3600", "60"))
    changed = only(source.scan())
    assert changed["metadata"]["uid"] != first["metadata"]["uid"]
    assert changed["spec"]["containers"][0]["command"] == ["sleep", "60"]


def test_seen_is_kept_across_scans(tmp_path: Path) -> None:
    clock = FakeClock()
    write(tmp_path / "web.yaml", WEB)
    source = StaticPodSource(tmp_path, NODE, clock=clock)
    seen = only(source.scan())["metadata"]["annotations"][CONFIG_SEEN]
    clock._now += 60
    (tmp_path / "web.yaml").touch()  # rewritten with the same content
    assert only(source.scan())["metadata"]["annotations"][CONFIG_SEEN] == seen


def test_bad_files_are_skipped_with_one_clear_line(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "web.yaml", WEB)
    write(tmp_path / "broken.yaml", "kind: Pod\nmetadata: [\n")
    write(tmp_path / "service.yml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    write(tmp_path / "invalid.yaml", WEB.replace("name: web\n    image", "name: Web_\n    image"))
    write(tmp_path / ".hidden.yaml", WEB.replace("name: web\n", "name: hidden\n", 1))
    write(tmp_path / "notes.txt", WEB.replace("name: web\n", "name: notes\n", 1))
    source = StaticPodSource(tmp_path, NODE)
    with caplog.at_level(logging.ERROR, logger="kubeling.kubelet.staticpods"):
        pods = source.scan()
        source.scan()  # unchanged bad files are not reported again
    assert [p["metadata"]["name"] for p in pods.values()] == ["web-node-a"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert all("\n" not in line for line in lines)
    assert any("broken.yaml" in line and "YAML" in line for line in lines)
    assert any("service.yml" in line and "Service" in line for line in lines)
    assert any("invalid.yaml" in line and "containers[0].name" in line for line in lines)


def test_missing_directory_is_no_pods(tmp_path: Path) -> None:
    assert StaticPodSource(tmp_path / "absent", NODE).scan() == {}


async def test_run_reports_the_full_set_on_change(tmp_path: Path) -> None:
    clock = FakeClock()
    source = StaticPodSource(tmp_path, NODE, clock=clock)
    seen: list[list[str]] = []
    task = spawn(source.run(lambda pods: seen.append(
        sorted(p["metadata"]["name"] for p in pods.values())), interval=1.0), name="static")
    await clock.advance(0)
    assert seen == [[]]
    write(tmp_path / "web.yaml", WEB)
    await clock.advance(1)
    assert seen[-1] == ["web-node-a"]
    await clock.advance(5)
    assert len(seen) == 2  # nothing changed, nothing reported
    write(tmp_path / "db.yaml", WEB.replace("name: web\n", "name: db\n", 1))
    await clock.advance(1)
    assert seen[-1] == ["db-node-a", "web-node-a"]
    (tmp_path / "web.yaml").unlink()
    await clock.advance(1)
    assert seen[-1] == ["db-node-a"]
    source.stop()
    await asyncio.wait_for(task, 2)
