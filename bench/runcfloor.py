"""The floor under the OCI runtime's pod startup: bare ``runc run -d``, and ``ctr run -d``.

A pod on the OCI runtime is at best as fast as runc starting its container. This measures
that floor with nothing of ours in the way: a busybox image (built by tests/imagebuild.py)
is unpacked once into a directory, and each container is a bundle of the same shape as the
runtime's (new pid, mount, ipc, uts and network namespaces, its own cgroup under a private
parent, the default capabilities, masked paths and devices, a read-only root) running
``sleep 3600``. Its latency is the time ``runc run -d`` takes to return: runc returns once
the process runs. The differences from a pod: one shared root directory instead of an
overlay per container, no CNI, no pause container, no shim.

Two figures: sequential (each container's own start time) and concurrent (N launched at
once, at most ``concurrency`` runc processes at a time, each container's latency taken
from the start of the batch, as pods created at once are measured). When Debian's
containerd and ctr are installed, the same through a private containerd (``ctr run -d``);
otherwise that part says why it is skipped. Needs root.

    python -m bench.runcfloor [-n 30] [--concurrency 30] [--runtime runc]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO

from bench.common import quantile
from kubeling.runtime.oci.cgroups import Cgroups

# ----- the image and the bundle -------------------------------------------------------------

def image_layers(image: Path) -> list[bytes]:
    """The layer blobs of an image tarball, lowest first: an OCI layout (index.json, one
    manifest) or a docker archive (manifest.json)."""
    with tarfile.open(image) as tar:
        def blob(name: str) -> bytes:
            member = tar.extractfile(name)
            if member is None:
                raise ValueError(f"{image}: no {name}")
            return member.read()

        names = tar.getnames()
        if "index.json" in names:
            index = json.loads(blob("index.json"))
            digest = index["manifests"][0]["digest"]
            manifest = json.loads(blob("blobs/" + digest.replace(":", "/")))
            return [blob("blobs/" + layer["digest"].replace(":", "/"))
                    for layer in manifest["layers"]]
        manifest = json.loads(blob("manifest.json"))
        return [blob(name) for name in manifest[0]["Layers"]]


def unpack_image(image: Path, rootfs: Path) -> None:
    """Apply the image's layers into ``rootfs`` (gzip or not; whiteouts honoured)."""
    rootfs.mkdir(parents=True)
    for layer in image_layers(image):
        with tarfile.open(fileobj=io.BytesIO(layer), mode="r:*") as tar:
            members = []
            for member in tar.getmembers():
                path = Path(member.name)
                target = rootfs / path.parent
                if path.name == ".wh..wh..opq":
                    for child in target.iterdir() if target.is_dir() else []:
                        _remove(child)
                elif path.name.startswith(".wh."):
                    _remove(target / path.name.removeprefix(".wh."))
                else:
                    members.append(member)
            tar.extractall(rootfs, members=members, filter="tar")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def bundle_config(rootfs: str, args: list[str], *, hostname: str, cgroups_path: str) -> str:
    """The runtime's own config.json (kubeling.runtime.oci.bundle.spec) for a container
    with new pid, mount, ipc, uts and network namespaces, default capabilities, masked and
    read-only paths and a cgroup — a pod's container, minus the joined pause namespaces."""
    from kubeling.runtime.oci import bundle
    from kubeling.runtime.oci.users import User
    from kubeling.runtime.protocol import Security

    namespaces = [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")]
    config = bundle.spec(
        args=args, env=bundle.env_list([], []), cwd="/", user=User(0, 0), tty=False,
        security=Security(), readonly_root=True, mounts=bundle.system_mounts(False),
        linux_namespaces=namespaces, cgroups_path=cgroups_path, resources={},
        hostname=hostname, root=rootfs)
    return json.dumps(config)


class Floor:
    """runc over one unpacked rootfs, with its own state dir and cgroup parent."""

    def __init__(self, workdir: Path, image: Path, runtime: str = "runc") -> None:
        self.workdir = workdir
        self.binary = shutil.which(runtime) or runtime
        self.state = workdir / "state"
        self.rootfs = workdir / "rootfs"
        self.parent = f"kubeling-bench-{os.getpid()}"
        self.cgroups = Cgroups(self.parent)
        self.started: list[str] = []
        if not self.rootfs.exists():
            unpack_image(image, self.rootfs)

    def bundle(self, cid: str) -> Path:
        path = self.workdir / "bundles" / cid
        path.mkdir(parents=True)
        config = bundle_config(str(self.rootfs), ["sleep", "3600"], hostname=cid[:12],
                               cgroups_path=self.cgroups.path(cid))
        (path / "config.json").write_text(config)
        return path

    async def run(self, cid: str) -> float:
        """Start one container; seconds until ``runc run -d`` returned."""
        bundle = self.bundle(cid)
        log = bundle / "runc.log"
        with log.open("wb") as err:  # created empty with the bundle: no disk wait here
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                self.binary, "--root", str(self.state), "run", "-d", "--bundle", str(bundle),
                "--pid-file", str(bundle / "pid"), cid, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err)
            code = await proc.wait()
            took = time.perf_counter() - started
        self.started.append(cid)
        if code != 0:
            raise RuntimeError(f"{self.binary} run {cid} exited {code}: "
                               f"{log.read_text(errors='replace').strip()}")
        return took

    async def batch(self, n: int, concurrency: int, *, from_batch_start: bool) -> list[float]:
        gate = asyncio.Semaphore(max(1, concurrency))
        batch_started = time.perf_counter()
        base = len(self.started)

        async def one(i: int) -> float:
            async with gate:
                took = await self.run(f"floor-{os.getpid()}-{base + i}")
            return time.perf_counter() - batch_started if from_batch_start else took

        async with asyncio.TaskGroup() as group:  # one failure cancels the others
            tasks = [group.create_task(one(i)) for i in range(n)]
        return [task.result() for task in tasks]

    async def cleanup(self) -> None:
        gate = asyncio.Semaphore(16)

        async def delete(cid: str) -> None:
            async with gate:
                proc = await asyncio.create_subprocess_exec(
                    self.binary, "--root", str(self.state), "delete", "-f", cid,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await proc.wait()

        await asyncio.gather(*(delete(cid) for cid in self.started))
        self.started.clear()
        self.cgroups.remove("/" + self.parent)


async def runc_floor(n: int, concurrency: int, image_tar: Path, *,
                     from_batch_start: bool | None = None, runtime: str = "runc",
                     workdir: Path | None = None) -> list[float]:
    """Start ``n`` containers with bare runc, ``concurrency`` at a time; their latencies in
    seconds (from the batch's start when concurrent, else each its own), then remove them.
    ``image_tar`` is an image as tests/imagebuild.py writes it (OCI layout or docker
    archive)."""
    if from_batch_start is None:
        from_batch_start = concurrency > 1
    with tempfile.TemporaryDirectory(prefix="kubeling-runcfloor-", dir=workdir) as tmp:
        floor = Floor(Path(tmp), image_tar, runtime)
        try:
            return await floor.batch(n, concurrency, from_batch_start=from_batch_start)
        finally:
            await floor.cleanup()


# ----- containerd -------------------------------------------------------------------------


def ctr_missing() -> str | None:
    """Why the containerd floor cannot run here (None when it can)."""
    missing = [tool for tool in ("containerd", "ctr") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian: apt-get install containerd)"
    return None


async def _ctr(sock: Path, *args: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ctr", "--address", str(sock), "--namespace", "bench", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)}: {err.decode(errors='replace').strip()}")
    return out.decode()


def _start_containerd(tmp: Path, sock: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """A private containerd: its own config, root, state and socket under ``tmp``."""
    config = tmp / "config.toml"
    config.write_text("version = 2\n")
    log = open(tmp / "containerd.log", "wb")
    daemon = subprocess.Popen(
        ["containerd", "--config", str(config), "--root", str(tmp / "root"),
         "--state", str(tmp / "state"), "--address", str(sock)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return daemon, log


async def ctr_floor(n: int, concurrency: int, image_tar: Path, *,
                    from_batch_start: bool | None = None) -> list[float] | None:
    """The same through a private containerd and ``ctr run -d``; None (with the reason
    printed) when containerd or ctr is not installed."""
    reason = ctr_missing()
    if reason is not None:
        print(f"ctr floor skipped: {reason}", flush=True)
        return None
    if from_batch_start is None:
        from_batch_start = concurrency > 1
    tmp = Path(tempfile.mkdtemp(prefix="kubeling-ctrfloor-"))
    sock = tmp / "containerd.sock"
    daemon, log = _start_containerd(tmp, sock)
    parent = f"kubeling-bench-ctr-{os.getpid()}"
    ids: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            if daemon.poll() is not None:
                raise RuntimeError(f"containerd exited; see {tmp / 'containerd.log'}")
            if sock.exists() and (await _ctr(sock, "version", check=False)):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("containerd did not answer within 30 s")
            await asyncio.sleep(0.05)
        await _ctr(sock, "images", "import", str(image_tar))
        ref = (await _ctr(sock, "images", "ls", "-q")).split()[0]
        gate = asyncio.Semaphore(max(1, concurrency))
        batch_started = time.perf_counter()

        async def one(i: int) -> float:
            cid = f"ctrfloor-{i}"
            async with gate:
                ids.append(cid)
                started = time.perf_counter()
                await _ctr(sock, "run", "-d", "--cgroup", f"/{parent}/{cid}", ref, cid,
                           "sleep", "3600")
                done = time.perf_counter()
            return done - (batch_started if from_batch_start else started)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i)) for i in range(n)]
        return [task.result() for task in tasks]
    finally:
        for cid in ids:
            await _ctr(sock, "task", "kill", "-s", "KILL", cid, check=False)
        for cid in ids:
            await _ctr(sock, "task", "delete", "-f", cid, check=False)
            await _ctr(sock, "container", "delete", cid, check=False)
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        _unmount_under(tmp)
        Cgroups(parent).remove("/" + parent)
        shutil.rmtree(tmp, ignore_errors=True)


def _unmount_under(path: Path) -> None:
    """Lazily unmount whatever a stopped containerd left mounted under ``path``."""
    prefix = os.path.realpath(path) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)


# ----- the figures ------------------------------------------------------------------------


def line(name: str, latencies: list[float]) -> str:
    if not latencies:
        return f"{name:<44} no figures"
    mean = sum(latencies) / len(latencies) * 1000
    return (f"{name:<44} n={len(latencies):<4} p50 {quantile(latencies, 0.5):8.2f} ms  "
            f"p99 {quantile(latencies, 0.99):8.2f} ms  mean {mean:8.2f} ms")


def build_test_image(workdir: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.imagebuild import build_image

    return build_image(workdir / "busybox.tar").path


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="containers per figure")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="runc processes at once in the concurrent figure (default: n)")
    parser.add_argument("--runtime", default="runc", help="runc or crun")
    parser.add_argument("--image", type=Path, help="image tarball (default: built busybox)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.runcfloor needs root", file=sys.stderr)
        return 2
    concurrency = args.concurrency or args.n
    print(f"runc floor: {os.cpu_count()} CPUs, {args.runtime} "
          f"({_version(args.runtime)}), containers running sleep 3600", flush=True)
    with tempfile.TemporaryDirectory(prefix="kubeling-bench-image-") as tmp:
        image = args.image or build_test_image(Path(tmp))
        figures = [
            (f"{args.runtime} run -d, one at a time",
             await runc_floor(args.n, 1, image, runtime=args.runtime)),
            (f"{args.runtime} run -d, {args.n} at once (<= {concurrency})",
             await runc_floor(args.n, concurrency, image, runtime=args.runtime)),
        ]
        for name, latencies in figures:
            print(line(name, latencies), flush=True)
        if ctr_missing() is None:
            for name, conc in (("ctr run -d, one at a time", 1),
                               (f"ctr run -d, {args.n} at once (<= {concurrency})",
                                concurrency)):
                print(line(name, await ctr_floor(args.n, conc, image) or []), flush=True)
        else:
            await ctr_floor(args.n, concurrency, image)
    return 0


def _version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "version unknown"
    return out.stdout.splitlines()[0] if out.stdout else "version unknown"


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
