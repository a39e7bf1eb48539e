"""The Recreate strategy: every old pod gone before any new one is created.

Old ReplicaSets are scaled to zero first; while any old pod still exists
(even one shutting down) nothing else happens; only then is the new
ReplicaSet created (or found) and scaled to the full count.
"""

from __future__ import annotations

from kubeling.client.interface import Obj
from kubeling.controllers.deployment import util
from kubeling.controllers.deployment.progress import ProgressMixin


def old_pods_running(new_rs: Obj | None, olds: list[Obj], pod_map: dict[str, list[Obj]]) -> bool:
    """Some old ReplicaSet still reports pods, or some pod not of the new one has not ended."""
    if util.actual_count(olds) > 0:
        return True
    new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
    for rs_uid, pods in pod_map.items():
        if rs_uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


class RecreateMixin(ProgressMixin):
    async def rollout_recreate(self, d: Obj, rss: list[Obj],
                               pod_map: dict[str, list[Obj]]) -> None:
        new_rs, olds = await self.rss_and_revision(d, rss, create=False)
        all_rss: list[Obj | None] = [*olds, new_rs]
        scaled_down = False
        for rs in util.active(olds):
            scaled, _ = await self.scale_rs_and_record(rs, 0, d)
            scaled_down = scaled_down or scaled
        if scaled_down or old_pods_running(new_rs, olds, pod_map):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if new_rs is None:
            new_rs, olds = await self.rss_and_revision(d, rss, create=True)
            all_rss = [*olds, new_rs]
        if new_rs is not None:
            await self.scale_rs_and_record(new_rs, util.spec_replicas(d), d)
        if util.deployment_complete(d, d.get("status") or {}):
            await self.cleanup(d, olds)
        await self.sync_rollout_status(all_rss, new_rs, d)
