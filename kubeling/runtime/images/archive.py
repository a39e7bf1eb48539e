"""Image archive import (filled in next)."""

from __future__ import annotations

from pathlib import Path

from kubeling.runtime.images.store import Image, ImageStore


def import_archive(store: ImageStore, path: Path) -> list[Image]:
    raise NotImplementedError
