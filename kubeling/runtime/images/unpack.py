"""Layer extraction into overlayfs lower directories (filled in next)."""

from __future__ import annotations

from pathlib import Path


def unpack_layer(blob: Path, target: Path, *, diff_id: str, tmp_dir: Path) -> int:
    raise NotImplementedError
