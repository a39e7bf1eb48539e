"""``kubeling images import|ls|rm|prune`` as a user runs them: the real command, in a
subprocess, on a data dir of its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cluster import REPO
from tests.imagebuild import build_image, multilayer_layers

KUBELING = str(REPO / ".venv" / "bin" / "kubeling")


def images(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([KUBELING, "images", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubeling images {' '.join(args)} failed: {proc.stderr}")
    return proc


def test_import_ls_rm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    oci = build_image(tmp_path / "busybox.tar", name="busybox:1.36", compress=True)
    docker = build_image(tmp_path / "app.tar", name="localhost:5000/team/app:v2", fmt="docker",
                         layers=multilayer_layers(), cmd=["app"])
    out = images(data, "import", str(oci.path), str(docker.path)).stdout.splitlines()
    oci_id = oci.config_digest.removeprefix("sha256:")
    docker_id = docker.config_digest.removeprefix("sha256:")
    assert out == [f"imported docker.io/library/busybox:1.36 ({oci_id[:12]})",
                   f"imported localhost:5000/team/app:v2 ({docker_id[:12]})"]
    assert (data / "agent" / "images" / "images.json").is_file()  # where the agent looks

    table = [line.split() for line in images(data, "ls").stdout.splitlines()]
    assert table[0] == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    rows = {(r[0], r[1]): r[2:] for r in table[1:]}
    assert set(rows) == {("docker.io/library/busybox", "1.36"), ("localhost:5000/team/app", "v2")}
    busybox_id, busybox_size = rows[("docker.io/library/busybox", "1.36")]
    assert busybox_id == oci_id[:13]
    assert busybox_size.endswith(("kB", "MB"))
    quiet = images(data, "ls", "-q").stdout.split()
    assert sorted(quiet) == sorted([oci_id, docker_id])

    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not an image" * 50)
    failed = images(data, "import", str(bad), check=False)
    assert failed.returncode == 1 and "not a tar archive" in failed.stderr

    removed = images(data, "rm", "busybox:1.36", "nosuch:1", check=False)
    assert removed.returncode == 1
    assert removed.stdout.splitlines() == [f"deleted busybox:1.36 ({oci_id[:12]})"]
    assert "no such image: nosuch:1" in removed.stderr
    assert images(data, "ls", "-q").stdout.split() == [docker_id]
    blobs = data / "agent" / "images" / "blobs" / "sha256"
    assert not (blobs / oci_id).exists()  # rm prunes

    images(data, "rm", docker_id[:12])
    assert images(data, "ls", "-q").stdout.split() == []
    assert list(blobs.iterdir()) == []
    assert images(data, "prune").stdout.strip() == "freed 0B"


def test_images_dir_flag(tmp_path: Path) -> None:
    store = tmp_path / "store"
    built = build_image(tmp_path / "img", name="x:1", fmt="oci-dir")
    proc = subprocess.run([KUBELING, "images", "--images-dir", str(store), "import",
                           str(built.path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (store / "images.json").is_file()


def test_pull(tmp_path: Path) -> None:
    from tests.cluster import require
    from tests.registry import Registry

    require("docker-registry")
    data = tmp_path / "data"
    built = build_image(tmp_path / "img.tar", name="pulled:1", compress=True, cmd=["pulled"])
    with Registry(tmp_path / "registry") as reg:
        digest = reg.push(built, "team/pulled", "1")
        ref = f"{reg.host}/team/pulled:1"
        out = images(data, "pull", ref)
        short = built.config_digest.removeprefix("sha256:")[:12]
        assert out.stdout.splitlines() == [f"pulled {ref} ({short})"]
        table = images(data, "ls").stdout
        assert f"{reg.host}/team/pulled" in table
        assert images(data, "ls", "-q").stdout.split() == [
            built.config_digest.removeprefix("sha256:")]
        missing = images(data, "pull", f"{reg.host}/team/nothing:1", check=False)
        assert missing.returncode == 1 and missing.stderr.strip()
    removed = images(data, "rm", f"{reg.host}/team/pulled@{digest}")
    assert removed.returncode == 0
