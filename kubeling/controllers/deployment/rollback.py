"""Rolling back through the ``deprecated.deployment.rollback.to`` annotation.

Modern ``kubectl rollout undo`` needs nothing from the controller: it patches
the Deployment's template (and annotations) with the template of the chosen
revision's ReplicaSet itself, and the controller sees an ordinary rollout to
an existing ReplicaSet, which takes the next revision number. Old clients
asked the controller instead, through ``spec.rollbackTo`` (gone from apps/v1)
carried as this annotation; the controller still honours it, as Kubernetes does.
"""

from __future__ import annotations

from kubeling.api.jsoncopy import json_copy
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.interface import Obj
from kubeling.controllers.deployment import util
from kubeling.controllers.deployment.sync import SyncMixin, rollback_to

REASON_NOT_FOUND = "DeploymentRollbackRevisionNotFound"
REASON_UNCHANGED = "DeploymentRollbackTemplateUnchanged"
REASON_DONE = "DeploymentRollback"


def last_revision(rss: list[Obj]) -> int:
    """The second highest revision (the one before the current)."""
    revisions = sorted({util.revision(rs) for rs in rss}, reverse=True)
    return revisions[1] if len(revisions) > 1 else 0


def template_of(rs: Obj) -> Obj:
    """A ReplicaSet's pod template without its ``pod-template-hash`` label."""
    template = json_copy(rs["spec"]["template"])
    labels = (template.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(util.HASH_LABEL, None)
    return template


class RollbackMixin(SyncMixin):
    async def rollback(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, olds = await self.rss_and_revision(d, rss, create=True)
        all_rss = [rs for rs in (*olds, new_rs) if rs is not None]
        try:
            target = int(rollback_to(d) or "0")
        except ValueError:
            target = 0
        if target == 0:
            target = last_revision(all_rss)
            if target == 0:
                self.recorder.event(d, WARNING, REASON_NOT_FOUND, "Unable to find last revision.")
                await self._clear_rollback(d)
                return
        for rs in all_rss:
            if util.revision(rs) != target:
                continue
            if util.equal_ignore_hash(d["spec"]["template"], rs["spec"]["template"]):
                self.recorder.event(d, WARNING, REASON_UNCHANGED,
                                    "The rollback revision contains the same template as current "
                                    f'deployment "{d["metadata"]["name"]}"')
                await self._clear_rollback(d)
                return
            d["spec"]["template"] = template_of(rs)
            kept = {k: v for k, v in util.annots(d).items()
                    if k in util.SKIPPED_ANNOTATIONS}
            kept.update({k: v for k, v in util.annots(rs).items()
                         if k not in util.SKIPPED_ANNOTATIONS})
            d["metadata"]["annotations"] = kept
            await self._clear_rollback(d)
            self.recorder.event(d, NORMAL, REASON_DONE,
                                f'Rolled back deployment "{d["metadata"]["name"]}" '
                                f"to revision {target}")
            return
        self.recorder.event(d, WARNING, REASON_NOT_FOUND,
                            "Unable to find the revision to rollback to.")
        await self._clear_rollback(d)

    async def _clear_rollback(self, d: Obj) -> None:
        ann = dict(util.annots(d))
        ann.pop(util.ROLLBACK_TO, None)
        d["metadata"]["annotations"] = ann
        await self.client.update(self.d_kind, d)
