"""Whether a rollout is progressing, complete or stuck: the Progressing condition.

With ``progressDeadlineSeconds`` set, a Deployment reports Progressing=True
(NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated) while pods move,
NewReplicaSetAvailable when the rollout is complete, and Progressing=False
ProgressDeadlineExceeded when nothing moved for longer than the deadline —
which ``kubectl rollout status`` turns into an error. Pausing and resuming
write an Unknown condition so a paused rollout never times out. A Deployment
that has not progressed is looked at again when its deadline would pass.
"""

from __future__ import annotations

from kubeling.client.informer import key_of
from kubeling.client.interface import Obj
from kubeling.controllers.deployment import util
from kubeling.controllers.deployment.sync import SyncMixin, _omit_zero
from kubeling.utils.clock import parse_rfc3339


def replica_failures(all_rss: list[Obj | None], new_rs: Obj | None) -> list[Obj]:
    """ReplicaFailure conditions of the new ReplicaSet, else of any other, as Deployment ones."""

    def of(rs: Obj | None) -> list[Obj]:
        if rs is None:
            return []
        return [{"type": util.REPLICA_FAILURE, "status": c.get("status"),
                 "lastUpdateTime": c.get("lastTransitionTime"),
                 "lastTransitionTime": c.get("lastTransitionTime"),
                 "reason": c.get("reason"), "message": c.get("message")}
                for c in (rs.get("status") or {}).get("conditions") or ()
                if c.get("type") == util.REPLICA_FAILURE]

    found = of(new_rs)
    if found:
        return found
    return [c for rs in all_rss for c in of(rs)]


class ProgressMixin(SyncMixin):
    async def check_paused_conditions(self, d: Obj) -> None:
        if not util.has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = util.condition(status, util.PROGRESSING)
        if cond is not None and cond.get("reason") == util.REASON_TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == util.REASON_PAUSED
        paused = bool(d["spec"].get("paused"))
        if paused and not paused_cond:
            new = util.new_condition(util.PROGRESSING, "Unknown", util.REASON_PAUSED,
                                     "Deployment is paused", self.now())
        elif not paused and paused_cond:
            new = util.new_condition(util.PROGRESSING, "Unknown", util.REASON_RESUMED,
                                     "Deployment is resumed", self.now())
        else:
            return
        util.set_condition(status, new)
        await self.write_status(d)

    async def sync_rollout_status(self, all_rss: list[Obj | None], new_rs: Obj | None,
                                  d: Obj) -> None:
        status = self.calculate_status(all_rss, new_rs, d)
        if not util.has_progress_deadline(d):
            util.remove_condition(status, util.PROGRESSING)
        current = util.condition(d.get("status") or {}, util.PROGRESSING)
        complete = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                    and current is not None
                    and current.get("reason") == util.REASON_NEW_RS_AVAILABLE)
        name = d["metadata"]["name"]
        subject = (f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None
                   else f'Deployment "{name}"')
        now = self.now()
        if util.has_progress_deadline(d) and not complete:
            if util.deployment_complete(d, status):
                util.set_condition(status, util.new_condition(
                    util.PROGRESSING, "True", util.REASON_NEW_RS_AVAILABLE,
                    f"{subject} has successfully progressed.", now))
            elif util.deployment_progressing(d, status):
                cond = util.new_condition(util.PROGRESSING, "True", util.REASON_RS_UPDATED,
                                          f"{subject} is progressing.", now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    util.remove_condition(status, util.PROGRESSING)
                util.set_condition(status, cond)
            elif util.deployment_timed_out(d, status, now):
                util.set_condition(status, util.new_condition(
                    util.PROGRESSING, "False", util.REASON_TIMED_OUT,
                    f"{subject} has timed out progressing.", now))
        failures = replica_failures(all_rss, new_rs)
        if failures:
            util.set_condition(status, failures[0])
        else:
            util.remove_condition(status, util.REPLICA_FAILURE)
        status = _omit_zero(status)
        if _omit_zero(d.get("status") or {}) == status:
            self.requeue_stuck(d, status)
            return
        d["status"] = status
        await self.write_status(d)

    def requeue_stuck(self, d: Obj, new_status: Obj) -> float:
        """Look at a Deployment that shows no progress again when its deadline passes;
        the delay chosen, or -1 when none is needed."""
        current = util.condition(d.get("status") or {}, util.PROGRESSING)
        if not util.has_progress_deadline(d) or current is None:
            return -1.0
        if util.deployment_complete(d, new_status) or \
                current.get("reason") == util.REASON_TIMED_OUT:
            return -1.0
        since = current.get("lastUpdateTime")
        if not since:
            return -1.0
        after = parse_rfc3339(since) + int(d["spec"]["progressDeadlineSeconds"]) - self.now()
        key = key_of(d)
        if after < 1.0:
            self.queue.add_rate_limited(key)
            return 0.0
        self.queue.add_after(key, after + 1.0)
        return after
