"""The image store on real files: archive import in every format, names and digests,
removal and pruning, verified digests, and layers unpacked into overlay lower dirs —
mounted for real (as root) to see whiteouts and opaque directories work."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from kubeling.runtime.images import (
    DigestMismatch,
    ImageError,
    ImageStore,
    chain_ids,
    select_manifest,
)
from kubeling.runtime.images.archive import import_directory
from tests.imagebuild import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    PATH_ENV,
    BuiltImage,
    Entry,
    build_image,
    image_config,
    layer_tar,
    multilayer_layers,
    sha256,
)

FORMATS = [("oci", False), ("oci", True), ("oci-dir", False), ("oci-dir", True),
           ("docker", False), ("docker", True)]


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("this test needs root, which CI has")
        pytest.skip("needs root")


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def leftovers(store: ImageStore) -> list[str]:
    return sorted(p.name for p in store.tmp_dir.iterdir())


@pytest.mark.parametrize(("fmt", "compress"), FORMATS)
def test_import_each_format(tmp_path: Path, store: ImageStore, fmt: str, compress: bool) -> None:
    built = build_image(tmp_path / "img", name="busybox:1.36", fmt=fmt, compress=compress,
                        cmd=["sleep", "1"], entrypoint=["/bin/sh", "-c"], workdir="/tmp",
                        user="65534:65534", env=[PATH_ENV, "A=b"])
    [image] = store.import_archive(built.path)
    assert image.id == built.config_digest
    assert image.names == ("docker.io/library/busybox:1.36",)
    assert image.diff_ids == (sha256(layer_tar(_busybox_only())),)
    assert image.layers == tuple(d for _m, _b, d in built.layers)
    assert image.size == len(built.config) + sum(len(b) for _m, b, _d in built.layers)
    assert image.config.cmd == ("sleep", "1")
    assert image.config.entrypoint == ("/bin/sh", "-c")
    assert image.config.env == (PATH_ENV, "A=b")
    assert (image.config.working_dir, image.config.user) == ("/tmp", "65534:65534")
    if fmt.startswith("oci"):  # the layout's manifest is the registry's: its digest counts
        assert image.manifest_digest == built.manifest_digest
        assert image.digests == (f"docker.io/library/busybox@{built.manifest_digest}",)
        assert store.resolve(f"busybox@{built.manifest_digest}") == image
    for ref in ("busybox:1.36", "docker.io/library/busybox:1.36", image.id,
                image.id.removeprefix("sha256:")[:12], image.id[:19]):
        assert store.resolve(ref) == image, ref
    assert store.resolve("busybox") is None  # :latest is another name
    assert store.resolve(image.id.removeprefix("sha256:")[:11]) is None  # too short an id
    assert store.list() == [image]
    assert ImageStore(store.root).resolve("busybox:1.36") == image  # on disk, not in memory
    assert list(store.ingest_dir.iterdir()) == []
    for digest in (*image.layers, image.id, image.manifest_digest):
        assert store.has_blob(digest)
    assert leftovers(store) == []


def _busybox_only() -> list[Entry]:
    from tests.imagebuild import busybox_entries

    return busybox_entries()


def test_import_is_idempotent_and_several_images_per_layout(tmp_path: Path,
                                                            store: ImageStore) -> None:
    a = build_image(tmp_path / "a", name="a:1", fmt="oci-dir", cmd=["a"])
    b = build_image(tmp_path / "b", name="localhost:5000/b:2", fmt="oci-dir", cmd=["b"])
    # one layout holding both images: merge b's blobs and index entry into a's layout
    for blob in (b.path / "blobs" / "sha256").iterdir():
        (a.path / "blobs" / "sha256" / blob.name).write_bytes(blob.read_bytes())
    index = json.loads((a.path / "index.json").read_text())
    index["manifests"] += json.loads((b.path / "index.json").read_text())["manifests"]
    (a.path / "index.json").write_text(json.dumps(index))
    images = store.import_archive(a.path)
    assert [i.names for i in images] == [("docker.io/library/a:1",),
                                         ("localhost:5000/b:2",)]
    assert store.import_archive(a.path) == images
    assert len(store.list()) == 2


def test_names_move_between_images(tmp_path: Path, store: ImageStore) -> None:
    old = build_image(tmp_path / "old.tar", name="app:v1", cmd=["old"])
    new = build_image(tmp_path / "new.tar", name="app:v1", cmd=["new"])
    [first] = store.import_archive(old.path)
    [second] = store.import_archive(new.path)
    assert first.id != second.id
    assert store.resolve("app:v1") == second
    moved = store.get(first.id)
    assert moved is not None and moved.names == ()  # untagged, still listed by id
    assert store.resolve(first.id) == moved
    assert {i.id for i in store.list()} == {first.id, second.id}


def test_unnamed_image_from_bare_tag(tmp_path: Path, store: ImageStore) -> None:
    built = build_image(tmp_path / "img", name="busybox:1.36", fmt="oci-dir")
    index = json.loads((built.path / "index.json").read_text())
    del index["manifests"][0]["annotations"]["io.containerd.image.name"]  # ref.name "1.36"
    (built.path / "index.json").write_text(json.dumps(index))
    [image] = store.import_archive(built.path)
    assert image.names == () and image.digests == ()
    assert store.resolve(image.short_id) == image
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "quay.io/x/y:2"
    (built.path / "index.json").write_text(json.dumps(index))
    [image] = store.import_archive(built.path)
    assert image.names == ("quay.io/x/y:2",)


def test_manifest_list_picks_the_host_platform(tmp_path: Path, store: ImageStore) -> None:
    host = build_image(tmp_path / "host", name="multi:1", fmt="oci-dir", cmd=["host"])
    other = build_image(tmp_path / "other", name="multi:1", fmt="oci-dir", cmd=["other"])
    blobs = host.path / "blobs" / "sha256"
    for blob in (other.path / "blobs" / "sha256").iterdir():
        (blobs / blob.name).write_bytes(blob.read_bytes())
    arch = os.uname().machine
    host_arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    foreign = "s390x" if host_arch != "s390x" else "amd64"
    index_media = "application/vnd.oci.image.index.v1+json"
    index_list = json.dumps({"schemaVersion": 2, "mediaType": index_media, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": other.manifest_digest,
         "size": len(other.manifest), "platform": {"os": "linux", "architecture": foreign}},
        {"mediaType": OCI_MANIFEST, "digest": host.manifest_digest,
         "size": len(host.manifest), "platform": {"os": "linux", "architecture": host_arch}},
    ]}).encode()
    (blobs / sha256(index_list).removeprefix("sha256:")).write_bytes(index_list)
    index = json.loads((host.path / "index.json").read_text())
    index["manifests"][0].update(mediaType=index_media,
                                 digest=sha256(index_list), size=len(index_list))
    (host.path / "index.json").write_text(json.dumps(index))
    [image] = store.import_archive(host.path)
    assert image.id == host.config_digest and image.config.cmd == ("host",)
    with pytest.raises(ImageError, match="no image for platform linux/riscv9"):
        select_manifest(json.loads(index_list), ("linux", "riscv9", ""))


def test_blob_writer_verifies_digests(store: ImageStore) -> None:
    data = b"hello"
    with pytest.raises(DigestMismatch, match="expected"):
        with store.blob_writer(sha256(b"other")) as writer:
            writer.write(data)
    assert not store.has_blob(sha256(b"other")) and not store.has_blob(sha256(data))
    with store.blob_writer() as writer:
        writer.write(b"hel")
        writer.write(b"lo")
    assert (writer.digest, writer.size) == (sha256(data), 5)
    assert store.blob_path(writer.digest).read_bytes() == data
    assert store.put_blob(data, sha256(data)) == sha256(data)
    with pytest.raises(RuntimeError):
        with store.blob_writer() as writer:
            writer.write(b"partial")
            raise RuntimeError("connection lost")
    assert not store.has_blob(sha256(b"partial"))
    with pytest.raises(ImageError, match="unsupported digest"):
        store.blob_path("sha512:" + "a" * 128)
    assert leftovers(store) == []


def test_prune_spares_blobs_of_unfinished_pulls(store: ImageStore) -> None:
    layer = layer_tar([Entry("a", data=b"a")])
    config = image_config([layer], cmd=["sh"])
    with store.blob_writer(sha256(layer)) as writer:  # a pull: layers first, image last
        writer.write(layer)
    assert store.prune() == 0 and store.has_blob(sha256(layer))
    store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "config": {
        "mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}]})
    image = store.add_image(manifest.encode(), names=["done:1"])
    assert list(store.ingest_dir.iterdir()) == []  # recorded: the image protects its blobs
    store.remove("done:1")
    assert store.prune() == len(layer) + len(config) + len(manifest)
    orphan = store.put_blob(b"from a pull that failed")
    for mark in store.ingest_dir.iterdir():
        os.utime(mark, (0, 0))  # long ago
    assert not store.has_blob(image.id)
    store.prune()
    assert not store.blob_path(orphan).exists() and list(store.ingest_dir.iterdir()) == []


def test_tampered_archive_is_refused(tmp_path: Path, store: ImageStore) -> None:
    built = build_image(tmp_path / "img", fmt="oci-dir")
    _media, _blob, digest = built.layers[0]
    layer = built.path / "blobs" / "sha256" / digest.removeprefix("sha256:")
    layer.write_bytes(layer.read_bytes()[:-1024] + b"\0" * 1024 + b"x")
    with pytest.raises(DigestMismatch):
        store.import_archive(built.path)
    assert store.list() == [] and not store.has_blob(digest)


def test_bad_archives(tmp_path: Path, store: ImageStore) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ImageError, match="not a tar archive"):
        store.import_archive(junk)
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ImageError, match="neither an OCI image layout"):
        store.import_archive(empty)
    zstd = tmp_path / "z.tar.zst"
    zstd.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 100)
    with pytest.raises(ImageError, match="zstd"):
        store.import_archive(zstd)
    with pytest.raises(ImageError, match="no such file"):
        store.import_archive(tmp_path / "missing.tar")
    missing_blob = build_image(tmp_path / "img", fmt="oci-dir")
    (missing_blob.path / "blobs" / "sha256" / missing_blob.config_digest.removeprefix(
        "sha256:")).unlink()
    with pytest.raises(ImageError, match="missing"):
        store.import_archive(missing_blob.path)
    with pytest.raises(ImageError, match="not in the store"):
        store.add_image(missing_blob.manifest)
    assert leftovers(store) == []


def test_remove_and_prune(tmp_path: Path, store: ImageStore, as_root: None) -> None:
    a = build_image(tmp_path / "a.tar", name="a:1", layers=multilayer_layers(), compress=True)
    b = build_image(tmp_path / "b.tar", name="b:1", cmd=["other"])  # shares no blob with a
    [image_a] = store.import_archive(a.path)
    [image_b] = store.import_archive(b.path)
    store.add_image(a.manifest, names=["a:2"])
    store.layer_dirs(image_a)
    store.layer_dirs(image_b)
    before = store.usage()
    assert before > sum(len(blob) for _m, blob, _d in a.layers)
    assert store.prune() == 0
    assert store.remove("a:1") is not None
    assert store.resolve("a:2") is not None  # one name left: the image stays
    assert store.remove("a:2") is not None
    assert store.resolve(image_a.id) is None
    assert store.remove("a:2") is None
    freed = store.prune()
    assert freed > 0 and store.usage() == before - freed
    for digest in (*image_a.layers, image_a.id, image_a.manifest_digest):
        assert not store.has_blob(digest)
    assert [p.name for p in store.layers_dir.iterdir() if p.is_dir()] == [
        store.layer_dir(chain_ids(image_b.diff_ids)[0]).name]
    assert store.remove(image_b.short_id) == image_b
    assert store.list() == []
    store.prune()
    assert store.usage() == 0 and list(store.blobs_dir.iterdir()) == []
    assert [p for p in store.layers_dir.iterdir()] == []


def test_remove_by_digest_keeps_named_image(tmp_path: Path, store: ImageStore) -> None:
    built = build_image(tmp_path / "a.tar", name="a:1")
    [image] = store.import_archive(built.path)
    removed = store.remove(f"a@{built.manifest_digest}")
    assert removed == image
    left = store.resolve("a:1")
    assert left is not None and left.digests == ()


def test_airgap_directory(tmp_path: Path, store: ImageStore) -> None:
    drop = tmp_path / "images-import"
    drop.mkdir()
    build_image(drop / "one.tar", name="one:1", cmd=["one"])
    build_image(drop / "two.tar.gz", name="two:1", fmt="docker", compress=True, cmd=["two"])
    gzipped = drop / "two.tar.gz"
    gzipped.write_bytes(gzip.compress(gzipped.read_bytes()))
    build_image(drop / "three", name="three:1", fmt="oci-dir", cmd=["three"])
    (drop / "notes.txt").write_text("ignored")
    (drop / "bad.tar").write_bytes(b"junk" * 200)
    images = import_directory(store, drop)
    assert sorted(n for i in images for n in i.names) == [
        "docker.io/library/one:1", "docker.io/library/three:1", "docker.io/library/two:1"]
    assert import_directory(store, drop) == []  # remembered by size and mtime
    store.remove("one:1")
    os.utime(drop / "one.tar", ns=(0, 1_000_000_000))  # changed: imported again
    assert [i.names for i in import_directory(store, drop)] == [("docker.io/library/one:1",)]
    assert import_directory(store, tmp_path / "absent") == []


def _malicious(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> ImageStore:
    store = ImageStore(tmp_path / "store")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("etc", "link"):
            info = tarfile.TarInfo(d)
            if d == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/tmp"
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    layer = buf.getvalue()
    store.put_blob(layer)
    config = image_config([layer], cmd=["sh"])
    store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": sha256(config),
                                      "size": len(config)},
                           "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer),
                                       "size": len(layer)}]}).encode()
    store.add_image(manifest, names=["evil:1"])
    return store


@pytest.mark.parametrize(("name", "kind", "linkname", "why"), [
    ("../escaped", tarfile.REGTYPE, "", "outside the layer"),
    ("etc/../../escaped", tarfile.REGTYPE, "", "outside the layer"),
    ("link/escaped", tarfile.REGTYPE, "", "not a directory"),
    ("etc/hard", tarfile.LNKTYPE, "../../outside", "outside the layer"),
    ("etc/hard2", tarfile.LNKTYPE, "/etc/shadow", "not in the layer"),
])
def test_malicious_layers_are_refused(tmp_path: Path, name: str, kind: bytes, linkname: str,
                                      why: str, as_root: None) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    store = _malicious(tmp_path, info, b"pwned\n" if kind == tarfile.REGTYPE else b"")
    image = store.resolve("evil:1")
    assert image is not None
    with pytest.raises(ImageError, match=why):
        store.layer_dirs(image)
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert list(store.layers_dir.iterdir()) == [] or all(
        p.suffix == ".lock" for p in store.layers_dir.iterdir())
    assert leftovers(store) == []


def test_absolute_member_paths_are_made_relative(tmp_path: Path, as_root: None) -> None:
    info = tarfile.TarInfo("/etc/abs")
    store = _malicious(tmp_path, info, b"inside\n")
    image = store.resolve("evil:1")
    assert image is not None
    [layer] = store.layer_dirs(image)
    assert (layer / "etc" / "abs").read_bytes() == b"inside\n"
    assert os.readlink(layer / "link") == "/tmp"


def test_unpacked_layer_keeps_what_the_tar_says(tmp_path: Path, store: ImageStore,
                                                as_root: None) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, *, mode: int = 0o644, data: bytes = b"",
                linkname: str = "", uid: int = 0, gid: int = 0, dev: tuple[int, int] = (0, 0),
                pax: dict[str, str] | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.uid, info.gid = kind, mode, linkname, uid, gid
            info.devmajor, info.devminor, info.mtime, info.size = *dev, 1_000_000, len(data)
            info.pax_headers = pax or {}
            tar.addfile(info, io.BytesIO(data) if data else None)
        add("./", tarfile.DIRTYPE, mode=0o755)
        add("opt/app", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000)
        add("opt/app/run", tarfile.REGTYPE, mode=0o4755, data=b"#!/bin/sh\n", uid=1000, gid=1000,
            pax={"SCHILY.xattr.user.note": "hi"})
        add("opt/app/same", tarfile.LNKTYPE, linkname="opt/app/run")
        add("opt/app/sym", tarfile.SYMTYPE, linkname="run")
        add("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))
        add("dev/fifo", tarfile.FIFOTYPE, mode=0o600)
        add("opt/app/run2", tarfile.REGTYPE, data=b"first")
        add("opt/app/run2", tarfile.REGTYPE, data=b"second")  # a later member wins
    layer = buf.getvalue()
    store.put_blob(gzip.compress(layer))
    config = image_config([layer], cmd=["sh"])
    store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "config": {
        "mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(gzip.compress(layer)), "size": 1}]}).encode()
    image = store.add_image(manifest, names=["kept:1"])
    [root] = store.layer_dirs(image)
    app = root / "opt" / "app"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
    st = os.stat(app)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (
        0o750, 1000, 1000, 1_000_000)
    run = os.stat(app / "run")
    assert (stat.S_IMODE(run.st_mode), run.st_uid) == (0o4755, 1000)
    assert os.stat(app / "same").st_ino == run.st_ino and run.st_nlink == 2
    assert os.readlink(app / "sym") == "run"
    assert os.getxattr(app / "run", "user.note") == b"hi"
    null = os.lstat(root / "dev" / "null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert stat.S_ISFIFO(os.lstat(root / "dev" / "fifo").st_mode)
    assert (app / "run2").read_bytes() == b"second"


def test_layer_diff_id_is_verified(tmp_path: Path, store: ImageStore, as_root: None) -> None:
    layer = layer_tar([Entry("a", data=b"a")])
    store.put_blob(layer)
    config = image_config([layer_tar([Entry("b", data=b"b")])], cmd=["sh"])  # wrong diff id
    store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "config": {
        "mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}]})
    image = store.add_image(manifest.encode(), names=["lie:1"])
    with pytest.raises(DigestMismatch, match="image config says"):
        store.layer_dirs(image)
    assert leftovers(store) == [] and not any(p.is_dir() for p in store.layers_dir.iterdir())


def test_concurrent_unpack_happens_once(tmp_path: Path, store: ImageStore,
                                        as_root: None) -> None:
    built = build_image(tmp_path / "ml.tar", layers=multilayer_layers(), compress=True)
    [image] = store.import_archive(built.path)
    results: list[list[Path]] = []
    errors: list[BaseException] = []

    def unpack() -> None:
        try:
            results.append(ImageStore(store.root).layer_dirs(image))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=unpack) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(r == results[0] for r in results) and len(results) == 4
    assert leftovers(store) == []
    assert all(len(p.name) == 16 for p in results[0])


def _whiteout(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def test_multilayer_overlay(tmp_path: Path, store: ImageStore, as_root: None) -> None:
    built: BuiltImage = build_image(tmp_path / "ml.tar", name="ml:1", layers=multilayer_layers())
    [image] = store.import_archive(built.path)
    lowers = store.layer_dirs(image)
    assert len(lowers) == 3
    assert [p.name for p in lowers] == [c.removeprefix("sha256:")[:16]
                                        for c in chain_ids(image.diff_ids)]
    assert _whiteout(lowers[1] / "etc" / "removed")
    assert os.getxattr(lowers[1] / "data", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(lowers[1] / "data")) == ["c"]
    assert store.layer_dirs(image) == lowers  # unpacked once
    merged, upper, work = tmp_path / "merged", tmp_path / "upper", tmp_path / "work"
    for d in (merged, upper, work):
        d.mkdir()
    options = (f"lowerdir={':'.join(str(p) for p in reversed(lowers))},"
               f"upperdir={upper},workdir={work}")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
                   check=True)
    try:
        assert not (merged / "etc" / "removed").exists()
        assert sorted(os.listdir(merged / "data")) == ["c"]
        assert (merged / "etc" / "layer3").read_text() == "third layer\n"
        assert (merged / "etc" / "passwd").is_file()
        assert os.access(merged / "bin" / "busybox", os.X_OK)
        store.remove("ml:1")
        store.prune()  # layers under a mounted overlay are kept
        assert all(p.is_dir() for p in lowers)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    store.prune()
    assert not any(p.exists() for p in lowers)


@pytest.mark.parametrize("blob", [b"", gzip.compress(b"", mtime=0), b"\0" * 1024])
def test_empty_layers(store: ImageStore, blob: bytes, as_root: None) -> None:
    raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    store.put_blob(blob)
    config = image_config([raw], cmd=["sh"])
    store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "config": {
        "mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(blob), "size": len(blob)}]})
    image = store.add_image(manifest.encode(), names=["empty:1"])
    [layer] = store.layer_dirs(image)
    assert os.listdir(layer) == []


def test_missing_layer_blob_is_a_clear_error(tmp_path: Path, store: ImageStore) -> None:
    built = build_image(tmp_path / "img.tar")
    [image] = store.import_archive(built.path)
    store.blob_path(image.layers[0]).unlink()
    with pytest.raises(ImageError, match="not in the store"):
        store.layer_dirs(image)
