"""The approval plan as typed data: to and from the JSON kept in ``sl_approvals.plan``, plans
stored before the version existed (and before ``self_approval``) still read, a newer version
refused; on a live app, new plans are stored in the old shape plus ``version`` and approvals
whose rows hold a legacy plan still run to the end."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apihelp import Api, start_api
from test_approval_policies import _approvals, _claim, _open, _plan, _write

from engine.flows.approvals.plan import (
    PLAN_VERSION,
    ApprovalPlan,
    PlanError,
    PlannedSla,
    PlannedStep,
    PlanVersionError,
)
from engine.flows.approvals.service import APPROVALS

# what ApprovalRuntime.start wrote before plans had a version (the shape is unchanged since)
LEGACY: dict[str, Any] = {
    "approval": "order_approval",
    "route": "big",
    "route_label": "Big orders",
    "added": ["new_customer"],
    "added_labels": ["New customer"],
    "steps": [
        {
            "name": "sales_head",
            "label": "Sales head",
            "kind": "approver",
            "needed": 1,
            "slots": [["wang.sales"]],
            "sla": {
                "business_hours": 8,
                "escalate_to": "manager",
                "max_escalations": 2,
                "remind_before_hours": 2,
            },
        },
        {
            "name": "finance",
            "label": "Finance",
            "kind": "all_of",
            "needed": 2,
            "slots": [["li.fin", "zhou.fin"], ["boss"]],
            "sla": None,
        },
    ],
    "on_approved": "approve",
    "on_rejected": "reject",
    "on_returned": "send_back",
    "if_record_changes": "lock",
    "self_approval": "forbid_creator_and_starter",
    "excluded": ["chen.sales"],
    "start_states": ["approving"],
    "record_label": "订单 SO-2026-000123",
}

# before self_approval: allow_self_approval, no excluded list (the submitter was left out)
BEFORE_SELF_APPROVAL: dict[str, Any] = {
    key: value for key, value in LEGACY.items() if key not in ("self_approval", "excluded")
}
BEFORE_SELF_APPROVAL["allow_self_approval"] = False


def test_legacy_plan_without_a_version_reads_as_version_1() -> None:
    plan = ApprovalPlan.from_json(copy.deepcopy(LEGACY))
    assert plan.version == PLAN_VERSION == 1
    assert plan.route == "big" and plan.route_label == "Big orders"
    assert plan.added == ("new_customer",) and plan.added_labels == ("New customer",)
    assert plan.start_states == ("approving",)
    assert plan.record_label == "订单 SO-2026-000123"
    assert plan.if_record_changes == "lock" and plan.can_return
    assert plan.outcome_transition("approved") == "approve"
    assert plan.outcome_transition("rejected") == "reject"
    assert plan.outcome_transition("returned") == "send_back"
    assert plan.outcome_transition("cancelled") is None
    head, finance = plan.steps
    assert head == PlannedStep(
        name="sales_head",
        label="Sales head",
        kind="approver",
        needed=1,
        slots=(("wang.sales",),),
        sla=PlannedSla(
            business_hours=8, escalate_to="manager", max_escalations=2, remind_before_hours=2
        ),
    )
    assert head.sla is not None and head.sla.remind_after_hours == 6
    assert finance.slots == (("li.fin", "zhou.fin"), ("boss",)) and finance.sla is None
    assert plan.excluded_for("anyone") == ["chen.sales"]
    # written back: the same JSON plus the version
    assert plan.to_json() == {**LEGACY, "version": 1}


def test_round_trip_through_json_text() -> None:
    plan = ApprovalPlan.from_json(LEGACY)
    text = json.dumps(plan.to_json(), ensure_ascii=False)
    assert ApprovalPlan.from_json(text) == plan
    assert ApprovalPlan.from_json(json.loads(text)) == plan
    assert ApprovalPlan.from_json(text.encode()) == plan
    assert json.loads(text)["version"] == 1
    with pytest.raises(AttributeError):
        plan.route = "other"  # type: ignore[misc]  # frozen


def test_round_trip_of_a_plan_built_in_code() -> None:
    plan = ApprovalPlan(
        approval="claim",
        route="normal",
        route_label="normal",
        steps=(PlannedStep("finance", "finance", "any_of", 1, (("fay", "finn"),)),),
        start_states=("approving",),
        on_approved="approve",
        on_rejected="reject",
        if_record_changes="restart",
        self_approval="allow",
        excluded=(),
    )
    stored = plan.to_json()
    assert stored["excluded"] == [] and stored["on_returned"] is None
    assert stored["steps"][0]["sla"] is None
    assert "allow_self_approval" not in stored
    again = ApprovalPlan.from_json(json.loads(json.dumps(stored)))
    assert again == plan and not again.can_return and again.excluded_for("bob") == []


def test_plan_stored_before_self_approval_excludes_the_submitter() -> None:
    plan = ApprovalPlan.from_json(copy.deepcopy(BEFORE_SELF_APPROVAL))
    assert plan.excluded is None and plan.self_approval is None
    assert plan.excluded_for("cat") == ["cat"]
    assert plan.excluded_for(None) == []
    allowed = ApprovalPlan.from_json({**BEFORE_SELF_APPROVAL, "allow_self_approval": True})
    assert allowed.excluded_for("cat") == []
    assert plan.to_json() == {**BEFORE_SELF_APPROVAL, "version": 1}


def test_missing_optional_keys_read_as_the_old_dict_readers_did() -> None:
    bare = {
        "route": "r",
        "route_label": "R",
        "steps": [
            {"name": "s", "label": "S", "needed": 1, "slots": [["a"]], "sla": {"business_hours": 4}}
        ],
        "start_states": [],
    }
    plan = ApprovalPlan.from_json(bare)
    assert plan.record_label is None and plan.added_labels == () and not plan.can_return
    assert plan.if_record_changes is None and plan.outcome_transition("approved") is None
    sla = plan.steps[0].sla
    assert sla == PlannedSla(4, None, 0, None) and sla.remind_after_hours is None


def test_a_newer_version_is_refused() -> None:
    with pytest.raises(PlanVersionError, match=r"version 99 .*newer Seamline"):
        ApprovalPlan.from_json({**LEGACY, "version": 99})
    for odd in (0, "1", None, True):
        with pytest.raises(PlanVersionError, match="not supported"):
            ApprovalPlan.from_json({**LEGACY, "version": odd})
    assert issubclass(PlanVersionError, ValueError)


def test_a_damaged_plan_names_what_is_missing() -> None:
    broken = {key: value for key, value in LEGACY.items() if key != "route_label"}
    with pytest.raises(PlanError, match="missing 'route_label'"):
        ApprovalPlan.from_json(broken)
    with pytest.raises(PlanError, match="expected a JSON object"):
        ApprovalPlan.from_json("[1, 2]")


# ---------------------------------------------------------------------------- on a live app
@pytest.fixture
def claims(db_url: str, tmp_path: Path) -> Iterator[Api]:
    api = start_api(db_url, root=_write(tmp_path / "exp", "lock"))
    yield api
    api.live.flows.connectors.close()
    api.engine.dispose()


def _store(api: Api, record: int, plan: dict[str, Any]) -> None:
    with api.engine.begin() as conn:
        conn.execute(
            APPROVALS.update()
            .where(APPROVALS.c.form == "claim", APPROVALS.c.record_id == record)
            .values(plan=plan)
        )


def test_a_new_plan_is_stored_in_the_old_shape_plus_version(claims: Api) -> None:
    record = _claim(claims, "cat", amount=200, region="west")
    stored = _plan(claims, record)
    assert stored["version"] == 1
    assert set(stored) - {"version"} == set(LEGACY)
    assert set(stored["steps"][0]) == set(LEGACY["steps"][0])
    assert [sorted(users) for users in stored["steps"][0]["slots"]] == [["bob", "fay", "finn"]]
    assert stored["excluded"] == ["cat"] and stored["start_states"] == ["approving"]
    assert ApprovalPlan.from_json(stored).to_json() == stored


@pytest.mark.parametrize("shape", ["unversioned", "before_self_approval"])
def test_an_approval_with_a_legacy_plan_runs_to_the_end(claims: Api, shape: str) -> None:
    record = _claim(claims, "cat", amount=200, region="west")
    legacy = {key: value for key, value in _plan(claims, record).items() if key != "version"}
    if shape == "before_self_approval":
        del legacy["excluded"], legacy["self_approval"]
        legacy["allow_self_approval"] = False
    _store(claims, record, legacy)
    task = next(t for t in _open(claims, "fay") if t["record_id"] == record)
    assert task["step_label"] == "finance" and task["can_return"]
    (approval,) = _approvals(claims, record)
    assert approval["excluded"] == ["cat"] and approval["step"] == "finance"
    refused = claims.client("cat").patch(f"/api/forms/claim/records/{record}", json={"amount": 1})
    assert refused.status_code == 409  # if_record_changes: lock, read from the legacy plan
    decided = claims.client("fay").post(f"/api/tasks/{task['id']}/approve", json={})
    assert decided.status_code == 200, decided.text
    assert decided.json()["approval_status"] == "approved"
    assert claims.live.records.get("claim", record)["state"] == "approved"
    with claims.engine.connect() as conn:
        kept = conn.execute(
            sa.select(APPROVALS.c.plan).where(APPROVALS.c.record_id == record)
        ).scalar_one()
    assert kept == legacy  # a plan is never rewritten
