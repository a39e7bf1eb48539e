"""``kubeling images``: the node's image store from the command line (import, ls, rm, prune,
pull), as ``ctr images`` and ``crictl images`` are for containerd.

It works on the store the agent uses (``<data dir>/agent/images``) directly,
with or without a running agent: the store is safe across processes. Only the
store is imported, so the command starts fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubeling.runtime.images.store import Image, ImageStore


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("images", help="manage the node's container images")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the kubeling data dir (as for `kubeling server`); the store is "
                        "<data dir>/agent/images")
    p.add_argument("--images-dir", type=Path, default=None,
                   help="the image store directory itself (overrides --data-dir)")
    cmds = p.add_subparsers(dest="images_command", required=True)
    imp = cmds.add_parser("import", help="import OCI layouts or docker-archives (tar[.gz])")
    imp.add_argument("files", nargs="+", type=Path)
    ls = cmds.add_parser("ls", aliases=["list"], help="list images")
    ls.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    rm = cmds.add_parser("rm", aliases=["rmi"], help="remove images by name or id")
    rm.add_argument("refs", nargs="+")
    cmds.add_parser("prune", help="remove blobs and unpacked layers no image uses")
    pull = cmds.add_parser("pull", help="pull an image from a registry")
    pull.add_argument("ref")
    pull.add_argument("--insecure-registry", action="append", default=[],
                      help="host[:port] spoken to over plain HTTP (repeatable)")


def store_dir(args: argparse.Namespace) -> Path:
    if args.images_dir is not None:
        return Path(args.images_dir)
    from kubeling.cli.main import default_data_dir

    data_dir = Path(args.data_dir) if args.data_dir is not None else default_data_dir()
    return data_dir / "agent" / "images"


def human_size(size: int) -> str:
    """Decimal units with three significant digits, as crictl prints them ("2.11MB")."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"


def rows(image: Image) -> list[tuple[str, str]]:
    """(repository, tag) rows of an image: one per name, else per digest, else <none>."""
    from kubeling.runtime.images.reference import parse

    out = []
    for name in image.names:
        ref = parse(name)
        out.append((ref.repo, ref.tag))
    if not out:
        out = [(d.partition("@")[0], "<none>") for d in image.digests]
    return out or [("<none>", "<none>")]


def run(args: argparse.Namespace) -> int:
    from kubeling.runtime.images.store import ImageStore

    try:
        store = ImageStore(store_dir(args))
    except OSError as e:
        print(f"error: cannot open the image store: {e}", file=sys.stderr)
        return 1
    command = args.images_command
    if command == "import":
        return _import(store, args.files)
    if command in ("ls", "list"):
        return _list(store, quiet=args.quiet)
    if command in ("rm", "rmi"):
        return _remove(store, args.refs)
    if command == "prune":
        print(f"freed {human_size(store.prune())}")
        return 0
    if command == "pull":
        return _pull(store, args.ref, args.insecure_registry)
    return 2


def _label(image: Image) -> str:
    return ", ".join(image.names) if image.names else image.id


def _import(store: ImageStore, files: list[Path]) -> int:
    from kubeling.runtime.images.store import DigestMismatch, ImageError

    status = 0
    for path in files:
        try:
            images = store.import_archive(path)
        except (ImageError, DigestMismatch, OSError) as e:
            print(f"error: cannot import {path}: {e}", file=sys.stderr)
            status = 1
            continue
        for image in images:
            print(f"imported {_label(image)} ({image.short_id})")
    return status


def _list(store: ImageStore, *, quiet: bool) -> int:
    images = store.list()
    if quiet:
        for image in images:
            print(image.id.removeprefix("sha256:"))
        return 0
    table = [("IMAGE", "TAG", "IMAGE ID", "SIZE")]
    for image in images:
        for repo, tag in rows(image):
            table.append((repo, tag, image.id.removeprefix("sha256:")[:13],
                          human_size(image.size)))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[3])
    return 0


def _remove(store: ImageStore, refs: list[str]) -> int:
    status = 0
    for ref in refs:
        image = store.remove(ref)
        if image is None:
            print(f"error: no such image: {ref}", file=sys.stderr)
            status = 1
            continue
        print(f"deleted {ref} ({image.short_id})")
    store.prune()
    return status


def _pull(store: ImageStore, ref: str, insecure: list[str]) -> int:
    import asyncio

    try:
        from kubeling.runtime.images.registry import PullError, pull
        from kubeling.runtime.images.store import DigestMismatch, ImageError
    except ImportError as e:
        print(f"error: pulling is not available in this build ({e})", file=sys.stderr)
        return 1

    def progress(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        image = asyncio.run(pull(store, ref, insecure_registries=insecure, progress=progress))
    except (PullError, ImageError, DigestMismatch) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"pulled {_label(image)} ({image.short_id})")
    return 0
