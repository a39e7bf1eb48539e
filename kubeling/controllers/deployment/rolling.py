"""The RollingUpdate strategy: replace pods a few at a time within surge and availability.

Each sync does one step: scale the new ReplicaSet up as far as
``replicas + maxSurge`` allows, else scale old ReplicaSets down as far as
``replicas - maxUnavailable`` available pods allow (unhealthy old pods first,
since removing them costs no availability), else — the rollout being
complete — delete old ReplicaSets beyond the history limit. The status is
written after every step, so the next step is triggered by the ReplicaSets'
status changes.
"""

from __future__ import annotations

from kubeling.client.interface import Obj
from kubeling.controllers.deployment import util
from kubeling.controllers.deployment.progress import ProgressMixin


class RollingMixin(ProgressMixin):
    async def rollout_rolling(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, olds = await self.rss_and_revision(d, rss, create=True)
        assert new_rs is not None
        all_rss: list[Obj | None] = [*olds, new_rs]
        if await self.reconcile_new_rs(all_rss, new_rs, d):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if await self.reconcile_old_rss(all_rss, util.active(olds), new_rs, d):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if util.deployment_complete(d, d.get("status") or {}):
            await self.cleanup(d, olds)
        await self.sync_rollout_status(all_rss, new_rs, d)

    async def reconcile_new_rs(self, all_rss: list[Obj | None], new_rs: Obj, d: Obj) -> bool:
        replicas = util.spec_replicas(d)
        current = util.spec_replicas(new_rs)
        if current == replicas:
            return False
        if current > replicas:
            scaled, _ = await self.scale_rs_and_record(new_rs, replicas, d)
            return scaled
        count = util.new_rs_new_replicas(d, all_rss, new_rs)
        scaled, _ = await self.scale_rs_and_record(new_rs, count, d)
        return scaled

    async def reconcile_old_rss(self, all_rss: list[Obj | None], olds: list[Obj], new_rs: Obj,
                                d: Obj) -> bool:
        if util.replica_count(olds) == 0:
            return False
        all_pods = util.replica_count(all_rss)
        new_unavailable = util.spec_replicas(new_rs) - util.status_int(new_rs, "availableReplicas")
        max_scaled_down = all_pods - util.min_available(d) - new_unavailable
        if max_scaled_down <= 0:
            return False
        olds, cleaned = await self.cleanup_unhealthy(olds, d, max_scaled_down)
        scaled_down = await self.scale_down_olds(d, [*olds, new_rs], olds)
        return cleaned + scaled_down > 0

    async def cleanup_unhealthy(self, olds: list[Obj], d: Obj,
                                max_cleanup: int) -> tuple[list[Obj], int]:
        """Scale old ReplicaSets down by their unavailable pods, oldest first."""
        olds = util.by_creation(olds)
        total = 0
        for i, rs in enumerate(olds):
            if total >= max_cleanup:
                break
            replicas = util.spec_replicas(rs)
            available = util.status_int(rs, "availableReplicas")
            if replicas == 0 or replicas == available:
                continue
            count = min(max_cleanup - total, replicas - available)
            _, olds[i] = await self.scale_rs_and_record(rs, replicas - count, d)
            total += count
        return olds, total

    async def scale_down_olds(self, d: Obj, all_rss: list[Obj | None], olds: list[Obj]) -> int:
        """Scale old ReplicaSets down, oldest first, while availability stays above minimum."""
        min_avail = util.min_available(d)
        available = util.available_count(all_rss)
        if available <= min_avail:
            return 0
        target = available - min_avail
        total = 0
        for rs in util.by_creation(olds):
            if total >= target:
                break
            replicas = util.spec_replicas(rs)
            if replicas == 0:
                continue
            count = min(replicas, target - total)
            await self.scale_rs_and_record(rs, replicas - count, d)
            total += count
        return total
