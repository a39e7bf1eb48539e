"""Who a container's process runs as: the image's ``User`` under the pod's securityContext.

The image may name its user ("nobody", "nobody:nogroup") or number it
("1000", "1000:1000"); names are looked up in the container's own
``/etc/passwd`` and ``/etc/group`` (read from its root filesystem, never the
host's). ``runAsUser``/``runAsGroup`` replace the image's numbers; without a
group, the user's primary group from ``/etc/passwd`` (0 when the user is not
listed). Supplementary groups are the groups that list the user by name, plus
the pod's ``supplementalGroups``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kubeling.runtime.protocol import RuntimeFailure, Security


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


def _table(rootfs: Path, name: str) -> list[list[str]]:
    """The colon-separated lines of ``rootfs/etc/<name>``, read without following a symlink
    out of the root filesystem."""
    path = rootfs / "etc" / name
    try:
        real = os.path.realpath(path)
        if not real.startswith(os.path.realpath(rootfs) + os.sep):
            return []
        with open(real, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f
                    if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve(rootfs: Path, image_user: str, security: Security) -> User:
    user_part, _, group_part = image_user.partition(":")
    passwd = _table(rootfs, "passwd")
    groups = _table(rootfs, "group")
    name = ""
    uid = 0
    gid: int | None = None
    if user_part:
        if user_part.isdigit():
            uid = int(user_part)
        else:
            entry = next((e for e in passwd if e[0] == user_part and len(e) > 3), None)
            if entry is None:
                raise RuntimeFailure("CreateContainerConfigError",
                                     f"unable to find user {user_part}: no matching entries "
                                     "in passwd file")
            name, uid, gid = user_part, int(entry[2]), int(entry[3])
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            group = next((g for g in groups if g[0] == group_part and len(g) > 2), None)
            if group is None:
                raise RuntimeFailure("CreateContainerConfigError",
                                     f"unable to find group {group_part}: no matching entries "
                                     "in group file")
            gid = int(group[2])
    if security.run_as_user is not None:
        uid = security.run_as_user
        name = ""
        gid = None if not group_part else gid
    if security.run_as_group is not None:
        gid = security.run_as_group
    entry = next((e for e in passwd if len(e) > 3 and e[2] == str(uid)), None)
    if not name and entry is not None:
        name = entry[0]
    if gid is None:
        gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    extra: list[int] = []
    if name:
        for group in groups:
            if len(group) > 3 and name in group[3].split(",") and group[2].isdigit():
                extra.append(int(group[2]))
    extra += security.supplemental_groups
    return User(uid=uid, gid=gid, additional_gids=tuple(dict.fromkeys(g for g in extra)))
