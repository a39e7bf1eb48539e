"""The process runtime's image store: a record of the names it was asked to pull.

Containers here run host binaries, so there is nothing to download or unpack.
The store still behaves as one (pull, status, list, remove) so that the agent's
image handling, events and ``imageID`` work the same on every runtime. An
image's id is ``sha256:`` + the SHA-256 of its name, kept in
``images/<hex>.json``.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from kubeling.runtime.process.records import read_json, write_json
from kubeling.runtime.protocol import ImageInfo


def image_id(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class ImageStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, image: str) -> Path:
        digest = image.removeprefix("sha256:") if image.startswith("sha256:") else \
            image_id(image).removeprefix("sha256:")
        return self.dir / f"{digest}.json"

    def pull(self, image: str) -> str:
        ref = image_id(image)
        path = self._path(image)
        if not path.exists():
            write_json(path, {"id": ref, "name": image, "pulled_at": time.time()})
        return ref

    def status(self, image: str) -> ImageInfo | None:
        data = read_json(self._path(image))
        return None if data is None else ImageInfo(id=data["id"], repo_tags=(data["name"],))

    def list(self) -> list[ImageInfo]:
        found = []
        for name in sorted(os.listdir(self.dir)):
            data = read_json(self.dir / name) if name.endswith(".json") else None
            if data is not None:
                found.append(ImageInfo(id=data["id"], repo_tags=(data["name"],)))
        return found

    def remove(self, image: str) -> None:
        try:
            self._path(image).unlink()
        except FileNotFoundError:
            pass
