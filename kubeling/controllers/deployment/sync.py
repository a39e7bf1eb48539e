"""The part of a Deployment's sync every strategy shares.

Finding (or creating) the new ReplicaSet named ``<deployment>-<hash>`` and
keeping revisions in step, scaling ReplicaSets (proportionally across every
active one when a rolling Deployment is resized mid-rollout), deleting old
ReplicaSets beyond ``revisionHistoryLimit``, and computing the status counts
and the Available condition that ``kubectl rollout status`` reads.
"""

from __future__ import annotations

import logging

from kubeling.api import errors
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.informer import Informer
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller
from kubeling.controllers.deployment import util
from kubeling.controllers.deployment.podhash import compute_hash
from kubeling.controllers.podcontrol import controller_of, controller_ref

log = logging.getLogger("kubeling.controllers.deployment")


def rollback_to(d: Obj) -> str | None:
    return util.annots(d).get(util.ROLLBACK_TO)


def _omit_zero(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v not in (0, None, [], "")}


def with_hash(template: Obj, hash_: str) -> Obj:
    out = json_copy(template)
    meta = out.get("metadata")
    if meta is None:
        meta = out["metadata"] = {}
    meta["labels"] = {**(meta.get("labels") or {}), util.HASH_LABEL: hash_}
    return out


class SyncMixin(Controller):
    d_kind: Kind
    rs_kind: Kind
    pod_kind: Kind
    deployments: Informer
    replicasets: Informer
    pods: Informer

    def now(self) -> float:
        return self.clock.now()

    # ----- writes ---------------------------------------------------------------------------

    async def write_status(self, d: Obj) -> None:
        """Write the status, and with it the annotations (the revision): the Deployment
        status subresource takes both."""
        d["status"] = _omit_zero(d.get("status") or {})
        out = await self.client.update(self.d_kind, d, subresource="status")
        d["metadata"]["resourceVersion"] = out["metadata"]["resourceVersion"]

    # ----- the new ReplicaSet and revisions ---------------------------------------------------

    async def rss_and_revision(self, d: Obj, rss: list[Obj], *,
                               create: bool) -> tuple[Obj | None, list[Obj]]:
        """(new ReplicaSet or None, every old one), creating the new one when asked."""
        new_rs = util.find_new_rs(d, rss)
        olds = util.old_rss(rss, new_rs)
        return await self.new_rs(d, new_rs, olds, create=create), olds

    async def new_rs(self, d: Obj, existing: Obj | None, olds: list[Obj], *,
                     create: bool) -> Obj | None:
        new_revision = util.max_revision(olds) + 1
        if existing is not None:
            return await self._sync_existing(d, existing, new_revision)
        if not create:
            return None
        return await self._create_new(d, olds, new_revision)

    async def _sync_existing(self, d: Obj, existing: Obj, new_revision: int) -> Obj:
        rs = json_copy(existing)
        changed = util.set_new_rs_annotations(d, rs, new_revision, exists=True)
        min_ready = d["spec"].get("minReadySeconds") or 0
        if changed or (rs["spec"].get("minReadySeconds") or 0) != min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
            return await self.client.update(self.rs_kind, rs)
        rs_revision = util.annots(rs).get(util.REVISION, "")
        dirty = util.annots(d).get(util.REVISION) != rs_revision
        if dirty:
            d["metadata"]["annotations"] = {**util.annots(d), util.REVISION: rs_revision}
        status = d.setdefault("status", {})
        if util.has_progress_deadline(d) and util.condition(status, util.PROGRESSING) is None:
            util.set_condition(status, util.new_condition(
                util.PROGRESSING, "True", util.REASON_FOUND_NEW_RS,
                f'Found new replica set "{rs["metadata"]["name"]}"', self.now()))
            dirty = True
        if dirty:
            await self.write_status(d)
        return rs

    async def _create_new(self, d: Obj, olds: list[Obj], new_revision: int) -> Obj | None:
        meta = d["metadata"]
        status = d.setdefault("status", {})
        collisions = status.get("collisionCount")
        template = d["spec"]["template"]
        hash_ = compute_hash(template, collisions)
        rs_template = with_hash(template, hash_)
        selector = json_copy(d["spec"].get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), util.HASH_LABEL: hash_}
        rs: Obj = {
            "apiVersion": self.rs_kind.group_version, "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{hash_}", "namespace": meta["namespace"],
                         "ownerReferences": [controller_ref(d, self.d_kind)],
                         "labels": dict(rs_template["metadata"]["labels"])},
            "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds") or 0,
                     "selector": selector, "template": rs_template},
        }
        count = util.new_rs_new_replicas(d, [*olds, rs], rs)
        rs["spec"]["replicas"] = count
        util.set_new_rs_annotations(d, rs, new_revision, exists=False)
        name = rs["metadata"]["name"]
        already = False
        try:
            created = await self.client.create(self.rs_kind, meta["namespace"], rs)
        except errors.StatusError as exc:
            if exc.code == 409 and exc.reason == "AlreadyExists":
                found = await self.client.get(self.rs_kind, meta["namespace"], name)
                ref = controller_of(found)
                if ref is not None and ref.get("uid") == meta["uid"] and \
                        util.equal_ignore_hash(template, found["spec"].get("template")):
                    created, already = found, True
                else:
                    status["collisionCount"] = (collisions or 0) + 1
                    await self.write_status(d)
                    log.info("hash collision for deployment %s/%s; collisionCount now %d",
                             meta["namespace"], meta["name"], status["collisionCount"])
                    raise
            elif any(c.get("reason") == "NamespaceTerminating" for c in exc.causes):
                raise
            else:
                msg = f'Failed to create new replica set "{name}": {exc.message}'
                if util.has_progress_deadline(d):
                    util.set_condition(status, util.new_condition(
                        util.PROGRESSING, "False", util.REASON_RS_CREATE_ERROR, msg, self.now()))
                    try:
                        await self.write_status(d)
                    except errors.StatusError:
                        pass
                self.recorder.event(d, WARNING, util.REASON_RS_CREATE_ERROR, msg)
                raise
        if not already and count > 0:
            self.recorder.event(d, NORMAL, "ScalingReplicaSet",
                                f"Scaled up replica set {name} from 0 to {count}")
        dirty = util.annots(d).get(util.REVISION) != str(new_revision)
        if dirty:
            d["metadata"]["annotations"] = {**util.annots(d),
                                            util.REVISION: str(new_revision)}
        if not already and util.has_progress_deadline(d):
            util.set_condition(status, util.new_condition(
                util.PROGRESSING, "True", util.REASON_NEW_RS,
                f'Created new replica set "{name}"', self.now()))
            dirty = True
        if dirty:
            await self.write_status(d)
        return created

    # ----- scaling ------------------------------------------------------------------------

    async def scale_rs(self, rs: Obj, new_scale: int, d: Obj, operation: str,
                       ) -> tuple[bool, Obj]:
        """Set ``rs`` to ``new_scale`` replicas (and its replica annotations); record it."""
        replicas = util.spec_replicas(d)
        maximum = replicas + util.max_surge(d)
        old_scale = util.spec_replicas(rs)
        size_changes = old_scale != new_scale
        if not size_changes and not util.replicas_annotations_need_update(rs, replicas, maximum):
            return False, rs
        copy = json_copy(rs)
        copy["spec"]["replicas"] = new_scale
        util.set_replicas_annotations(copy, replicas, maximum)
        out = await self.client.update(self.rs_kind, copy)
        if size_changes:
            self.recorder.event(d, NORMAL, "ScalingReplicaSet",
                                f"Scaled {operation} replica set {out['metadata']['name']} "
                                f"from {old_scale} to {new_scale}")
        return size_changes, out

    async def scale_rs_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        old = util.spec_replicas(rs)
        if old == new_scale:
            return False, rs
        return await self.scale_rs(rs, new_scale, d, "up" if old < new_scale else "down")

    async def scale(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        """Bring the ReplicaSets to the Deployment's size, proportionally during a rollout."""
        replicas = util.spec_replicas(d)
        target = active_or_latest(new_rs, olds)
        if target is not None:
            if util.spec_replicas(target) != replicas:
                await self.scale_rs_and_record(target, replicas, d)
            return
        if util.is_saturated(d, new_rs):
            for old in util.active(olds):
                await self.scale_rs_and_record(old, 0, d)
            return
        if not util.is_rolling(d):
            return
        all_rss = util.active([*olds, new_rs])
        allowed = replicas + util.max_surge(d) if replicas > 0 else 0
        sizes = proportional_sizes(d, all_rss, allowed - util.replica_count(all_rss))
        operation = "up" if allowed > util.replica_count(all_rss) else "down"
        for rs, size in sizes:
            await self.scale_rs(rs, size, d, operation)

    async def is_scaling_event(self, d: Obj, rss: list[Obj]) -> bool:
        new_rs, olds = await self.rss_and_revision(d, rss, create=False)
        replicas = util.spec_replicas(d)
        for rs in util.active([*olds, new_rs]):
            desired = util.desired_replicas_annotation(rs)
            if desired is not None and desired != replicas:
                return True
        return False

    # ----- clean-up and status ------------------------------------------------------------

    async def cleanup(self, d: Obj, olds: list[Obj]) -> None:
        """Delete the oldest idle ReplicaSets beyond ``revisionHistoryLimit``."""
        limit = d["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
        diff = len(alive) - int(limit)
        if diff <= 0:
            return
        for rs in util.by_revision(alive)[:diff]:
            meta = rs["metadata"]
            generation = int(meta.get("generation") or 0)
            if (util.status_int(rs, "replicas") != 0 or util.spec_replicas(rs) != 0
                    or generation > util.status_int(rs, "observedGeneration")):
                continue
            log.info("deleting old replica set %s/%s", meta["namespace"], meta["name"])
            try:
                await self.client.delete(self.rs_kind, meta["namespace"], meta["name"],
                                         options={"preconditions": {"uid": meta["uid"]}})
            except errors.StatusError as exc:
                if exc.code not in (404, 409):
                    raise

    def calculate_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> Obj:
        available = util.available_count(all_rss)
        total = util.replica_count(all_rss)
        old = d.get("status") or {}
        status: Obj = {
            "observedGeneration": int(d["metadata"].get("generation") or 0),
            "replicas": util.actual_count(all_rss),
            "updatedReplicas": util.actual_count([new_rs]),
            "readyReplicas": util.ready_count(all_rss),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
        }
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        if old.get("conditions"):
            status["conditions"] = [dict(c) for c in old["conditions"]]
        if available >= util.min_available(d):
            cond = util.new_condition(util.AVAILABLE, "True", util.REASON_MIN_AVAILABLE,
                                      "Deployment has minimum availability.", self.now())
        else:
            cond = util.new_condition(util.AVAILABLE, "False", util.REASON_MIN_UNAVAILABLE,
                                      "Deployment does not have minimum availability.",
                                      self.now())
        util.set_condition(status, cond)
        return _omit_zero(status)

    async def sync_deployment_status(self, all_rss: list[Obj | None], new_rs: Obj | None,
                                     d: Obj) -> None:
        status = self.calculate_status(all_rss, new_rs, d)
        if _omit_zero(d.get("status") or {}) == status:
            return
        d["status"] = status
        await self.write_status(d)

    async def sync_only_scale(self, d: Obj, rss: list[Obj]) -> None:
        """A paused Deployment or a pure resize: scale, clean up when paused, write status."""
        new_rs, olds = await self.rss_and_revision(d, rss, create=False)
        await self.scale(d, new_rs, olds)
        if d["spec"].get("paused") and rollback_to(d) is None:
            await self.cleanup(d, olds)
        await self.sync_deployment_status([*olds, new_rs], new_rs, d)

    async def sync_status_only(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, olds = await self.rss_and_revision(d, rss, create=False)
        await self.sync_deployment_status([*olds, new_rs], new_rs, d)


def active_or_latest(new_rs: Obj | None, olds: list[Obj]) -> Obj | None:
    """The only active ReplicaSet, the newest when none is active, None when several are."""
    if new_rs is None and not olds:
        return None
    newest_first = list(reversed(util.by_creation(olds)))
    act = util.active([*newest_first, new_rs])
    if not act:
        return new_rs if new_rs is not None else newest_first[0]
    if len(act) == 1:
        return act[0]
    return None


def proportional_sizes(d: Obj, all_rss: list[Obj], to_add: int) -> list[tuple[Obj, int]]:
    """The new size of every active ReplicaSet when ``to_add`` replicas (negative: to remove)
    are spread in proportion to their sizes; leftovers go to the largest."""
    if to_add > 0:
        ordered = util.by_size_newer(all_rss)
    elif to_add < 0:
        ordered = util.by_size_older(all_rss)
    else:
        ordered = list(all_rss)
    added = 0
    sizes: list[int] = []
    for rs in ordered:
        if to_add != 0:
            share = util.proportion(rs, d, to_add, added)
            sizes.append(util.spec_replicas(rs) + share)
            added += share
        else:
            sizes.append(util.spec_replicas(rs))
    if ordered and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return list(zip(ordered, sizes, strict=True))
