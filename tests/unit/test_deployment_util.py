"""Deployment arithmetic: surge and unavailability, new replica counts, proportions,
revisions and the progress conditions."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.controllers.deployment import util
from kubeling.controllers.deployment.sync import active_or_latest, proportional_sizes

Obj = dict[str, Any]


def dep(replicas: int, surge: int | str = "25%", unavailable: int | str = "25%",
        **spec: Any) -> Obj:
    return {"metadata": {"name": "web", "generation": 1, "annotations": {}},
            "spec": {"replicas": replicas,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                         "maxSurge": surge, "maxUnavailable": unavailable}}, **spec},
            "status": {}}


def rs(name: str, replicas: int, *, available: int = 0, created: str = "2024-01-01T00:00:00Z",
       max_replicas: int | None = None, revision: int | None = None) -> Obj:
    ann = {}
    if max_replicas is not None:
        ann[util.MAX_REPLICAS] = str(max_replicas)
    if revision is not None:
        ann[util.REVISION] = str(revision)
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": created,
                         "annotations": ann},
            "spec": {"replicas": replicas}, "status": {"availableReplicas": available}}


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "want"), [
    (10, "25%", "25%", (3, 2)),     # surge rounds up, unavailable rounds down
    (4, "25%", "25%", (1, 1)),
    (3, "25%", "25%", (1, 0)),
    (1, "25%", "25%", (1, 0)),
    (3, 0, 0, (0, 1)),              # never both zero
    (5, 2, "0%", (2, 0)),
    (0, "25%", "25%", (0, 1)),
])
def test_fenceposts(replicas: int, surge: int | str, unavailable: int | str,
                    want: tuple[int, int]) -> None:
    assert util.resolve_fenceposts(surge, unavailable, replicas) == want


def test_max_unavailable_is_capped_and_zero_for_recreate() -> None:
    assert util.max_unavailable(dep(2, 0, 5)) == 2
    assert util.max_unavailable(dep(0, 1, 1)) == 0
    recreate = {"metadata": {}, "spec": {"replicas": 3, "strategy": {"type": "Recreate"}}}
    assert util.max_unavailable(recreate) == 0 and util.max_surge(recreate) == 0
    assert util.min_available(dep(10)) == 8


def test_not_a_percentage_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a percentage"):
        util.scaled_value("5", 10, round_up=True)


def test_new_replica_set_grows_within_surge() -> None:
    d = dep(4, 1, 0)
    old, new = rs("old", 4), rs("new", 0)
    assert util.new_rs_new_replicas(d, [old, new], new) == 1
    new["spec"]["replicas"] = 1
    assert util.new_rs_new_replicas(d, [old, new], new) == 1   # 5 pods: the surge is used
    old["spec"]["replicas"] = 3
    assert util.new_rs_new_replicas(d, [old, new], new) == 2


def test_proportional_scale_up_and_leftovers_to_the_largest() -> None:
    d = dep(20, 3, 0)
    old = rs("old", 10, max_replicas=13, created="2024-01-01T00:00:00Z")
    new = rs("new", 3, max_replicas=13, created="2024-01-02T00:00:00Z")
    sizes = {r["metadata"]["name"]: n for r, n in proportional_sizes(d, [old, new], 23 - 13)}
    assert sizes == {"old": 18, "new": 5}


def test_proportional_scale_down_takes_from_the_older_among_equals() -> None:
    d = dep(3, 1, 0)
    a = rs("a", 3, max_replicas=7, created="2024-01-01T00:00:00Z")
    b = rs("b", 3, max_replicas=7, created="2024-01-02T00:00:00Z")
    sizes = proportional_sizes(d, [b, a], 4 - 6)
    assert [(r["metadata"]["name"], n) for r, n in sizes] == [("a", 2), ("b", 2)]


def test_scale_to_zero_removes_everything() -> None:
    d = dep(0, 1, 0)
    sizes = proportional_sizes(d, [rs("a", 3, max_replicas=4), rs("b", 1, max_replicas=4)], -4)
    assert [n for _, n in sizes] == [0, 0]


def test_active_or_latest() -> None:
    old1 = rs("old1", 0, created="2024-01-01T00:00:00Z")
    old2 = rs("old2", 0, created="2024-01-02T00:00:00Z")
    assert active_or_latest(None, [old1, old2]) is old2
    new = rs("new", 0)
    assert active_or_latest(new, [old1, old2]) is new
    busy = rs("busy", 2)
    assert active_or_latest(new, [busy, old1]) is busy
    assert active_or_latest(rs("n", 1), [busy]) is None


def test_saturated_needs_every_replica_available_and_annotated() -> None:
    d = dep(3)
    new = rs("new", 3, available=3)
    assert not util.is_saturated(d, new)
    new["metadata"]["annotations"][util.DESIRED_REPLICAS] = "3"
    assert util.is_saturated(d, new)
    new["status"]["availableReplicas"] = 2
    assert not util.is_saturated(d, new)


def test_new_replica_set_annotations_keep_revision_history_on_reuse() -> None:
    d = dep(2)
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "undo",
                                    util.LAST_APPLIED: "{}", util.REVISION: "4"}
    reused = rs("r", 0, revision=1)
    assert util.set_new_rs_annotations(d, reused, 5, exists=True)
    ann = reused["metadata"]["annotations"]
    assert ann[util.REVISION] == "5" and ann[util.REVISION_HISTORY] == "1"
    assert ann["kubernetes.io/change-cause"] == "undo" and util.LAST_APPLIED not in ann
    assert util.DESIRED_REPLICAS not in ann
    assert util.set_new_rs_annotations(d, reused, 7, exists=True)
    assert ann[util.REVISION_HISTORY] == "1,5"
    assert not util.set_new_rs_annotations(d, reused, 6, exists=True)
    fresh = rs("f", 0)
    util.set_new_rs_annotations(d, fresh, 1, exists=False)
    assert fresh["metadata"]["annotations"][util.MAX_REPLICAS] == "3"
    assert util.REVISION_HISTORY not in fresh["metadata"]["annotations"]


def test_revisions_order_and_max() -> None:
    rss = [rs("c", 0, revision=10), rs("a", 0, revision=2), rs("b", 0)]
    assert util.max_revision(rss) == 10
    assert [r["metadata"]["name"] for r in util.by_revision(rss)] == ["b", "a", "c"]


def test_find_new_replica_set_ignores_the_hash_label() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}
    d = dep(1, template=template)
    match = rs("m", 1)
    match["spec"]["template"] = {"metadata": {"labels": {"app": "web", util.HASH_LABEL: "x"}},
                                 "spec": {"containers": []}}
    other = rs("o", 1)
    other["spec"]["template"] = {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": []}}
    assert util.find_new_rs(d, [other, match]) is match


def test_conditions_keep_transition_time_when_status_stays() -> None:
    status: Obj = {}
    util.set_condition(status, util.new_condition("Progressing", "True", "A", "a", 100.0))
    util.set_condition(status, util.new_condition("Progressing", "True", "B", "b", 200.0))
    (cond,) = status["conditions"]
    assert cond["reason"] == "B"
    assert cond["lastTransitionTime"] == "1970-01-01T00:01:40Z"
    assert cond["lastUpdateTime"] == "1970-01-01T00:03:20Z"


def test_timed_out_after_the_deadline_since_last_progress() -> None:
    d = dep(1, progressDeadlineSeconds=60)
    status: Obj = {}
    util.set_condition(status, util.new_condition("Progressing", "True",
                                                  util.REASON_RS_UPDATED, "", 1000.0))
    assert not util.deployment_timed_out(d, status, 1060.0)
    assert util.deployment_timed_out(d, status, 1061.0)
    d["spec"]["progressDeadlineSeconds"] = util.MAX_INT32
    assert not util.deployment_timed_out(d, status, 10**9)


def test_progress_is_more_updated_ready_or_available_or_fewer_old() -> None:
    d = dep(3)
    d["status"] = {"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}
    assert not util.deployment_progressing(d, dict(d["status"]))
    assert util.deployment_progressing(d, {**d["status"], "replicas": 3})
    assert util.deployment_progressing(d, {**d["status"], "availableReplicas": 4})
