"""The OCI runtime binary (runc, or crun which takes the same commands), driven from asyncio.

Only the short-lived commands live here: ``kill``, ``delete``, ``state`` and
``--version``. ``create``/``start`` are run by the container's shim (it must
own the container's stdio and be the parent of its init), ``exec`` by an exec
session (it must own the exec'd process's stdio). Each command is told where
its state is (``--root``) so that several runtimes on one host, and runc's own
default state, never see each other's containers.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from typing import Any

from kubeling.runtime.protocol import RuntimeFailure


def find_binary(wanted: str) -> str:
    """The runc or crun executable: ``wanted`` (a name or path) or runc, else crun."""
    for name in ([wanted] if wanted else ["runc", "crun"]):
        path = shutil.which(name)
        if path is not None:
            return path
    raise RuntimeFailure("RuntimeNotFound",
                         f"no OCI runtime binary found ({wanted or 'runc or crun'} not in PATH)")


@dataclass(frozen=True)
class Result:
    code: int
    out: bytes
    err: bytes

    @property
    def message(self) -> str:
        return error_message(self.err)


def error_message(text: bytes) -> str:
    """runc's error from its stderr or its JSON log: the last ``msg`` of level error."""
    message = ""
    for line in text.decode(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                message = line
                continue
            if entry.get("level") in ("error", "fatal") and entry.get("msg"):
                message = str(entry["msg"])
            continue
        if 'msg="' in line:
            message = line.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
        else:
            message = line
    return message


class Runc:
    def __init__(self, binary: str, root: str) -> None:
        self.binary = binary
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    async def run(self, *args: str, timeout: float = 30.0) -> Result:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Result(-1, b"", f"{args[0]} timed out after {timeout}s".encode())
        return Result(proc.returncode or 0, out, err)

    async def state(self, cid: str) -> dict[str, Any] | None:
        """runc's view of the container ("created", "running", "stopped"...), None if it has
        no such container."""
        result = await self.run("state", cid)
        if result.code != 0:
            return None
        try:
            data = json.loads(result.out)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def kill(self, cid: str, signal: str, *, all_processes: bool = False) -> bool:
        args = ["kill", *(["--all"] if all_processes else []), cid, signal]
        return (await self.run(*args)).code == 0

    async def delete(self, cid: str) -> None:
        """Forget the container (killing what still runs); a container runc never had, or
        has already forgotten, is fine."""
        result = await self.run("delete", "--force", cid)
        if result.code != 0 and "does not exist" not in result.message \
                and "not exist" not in result.err.decode(errors="replace"):
            raise RuntimeFailure("RuntimeError",
                                 f"{self.binary} delete {cid}: {result.message}")

    async def version(self) -> tuple[str, str]:
        result = await self.run("--version")
        first = result.out.decode(errors="replace").splitlines()[:1]
        words = first[0].split() if first else []
        if len(words) >= 3 and words[1] == "version":
            return words[0], words[2]
        return self.binary.rsplit("/", 1)[-1], "unknown"
