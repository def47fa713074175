"""Approval rules beyond the pack, on a small expenses app (SQLite and PostgreSQL): the lock
and restart policies for records edited while approving (fields and child rows; an append-only
log stays open), n_of and any_of steps, approvers computed by an expression, a submitter who
holds the approving role, an approver slot that only the submitter could fill (it goes to their
manager), and self_approval: the record's creator and the starter never decide by default."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from apihelp import Api, start_api

from engine.compile import compile_app
from engine.flows.approvals.service import APPROVALS
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR
from engine.model import clock

APP = """\
name: exp
title: Expenses
locale: en
calendar: {base: cn}
business_hours: ["09:00-17:00"]
people: people.csv
roles:
  clerk: {label: Clerk}
  finance: {label: Finance}
  boss: {label: Boss}
"""
PEOPLE = """\
user,name,roles,manager,department
ann,Ann,boss,,HQ
fay,Fay,finance,ann,Finance
finn,Finn,finance,ann,Finance
bob,Bob,clerk|finance,fay,Sales
cat,Cat,clerk,fay,Sales
dan,Dan,clerk,ann,East
"""
FORM = """\
title: Claim
fields:
  amount: {type: money, label: Amount, required: true}
  region: {type: select, label: Region, options: [east, west], required: true}
  note: {type: text, label: Note}
  lines:
    type: table
    label: Lines
    fields:
      item: {type: text, label: Item, required: true}
      cost: {type: money, label: Cost}
  log:
    type: table
    label: Log
    append_only: true
    fields:
      entry: {type: text, label: Entry, required: true}
"""
FLOW = """\
form: claim
states:
  draft: {label: Draft, initial: true, editable: true}
  approving: {label: Approving, editable: true}
  approved: {label: Approved}
  rejected: {label: Rejected, final: true}
  returned: {label: Returned, editable: true}
transitions:
  submit: {label: Submit, from: [draft, returned], to: approving, roles: [clerk]}
  approve: {label: Approve, from: approving, to: approved, by: system}
  reject: {label: Reject, from: approving, to: rejected, by: system}
  send_back: {label: Send back, from: approving, to: returned, by: system}
"""
APPROVAL = """\
form: claim
start: {state_entered: approving}
on_approved: approve
on_rejected: reject
on_returned: send_back
if_record_changes: POLICY
SELF_APPROVALroutes:
  - name: own_desk
    when: "note == 'own desk'"
    steps:
      - name: desk
        approver: {person: bob}
  - name: regional
    when: "region == 'east'"
    steps:
      - name: head
        approver: {expr: "'dan' if region == 'east' else 'ann'"}
  - name: big
    when: "amount >= 1000"
    steps:
      - name: two_of_three
        n_of: {n: 2, of: [{person: fay}, {person: finn}, {person: ann}]}
  - name: normal
    default: true
    steps:
      - name: finance
        any_of: [{role: finance}]
"""


def _write(root: Path, policy: str, self_approval: str | None = None) -> Path:
    setting = f"self_approval: {self_approval}\n" if self_approval else ""
    files = {
        "app.yaml": APP,
        "people.csv": PEOPLE,
        "forms/claim.yaml": FORM,
        "flows/claim.yaml": FLOW,
        "approvals/claim.yaml": APPROVAL.replace("POLICY", policy).replace(
            "SELF_APPROVAL", setting
        ),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(params=["lock", "restart"])
def claims(request, db_url: str, tmp_path: Path) -> Iterator[tuple[Api, str]]:
    root = _write(tmp_path / "exp", request.param)
    api = start_api(db_url, root=root)
    yield api, request.param
    api.live.flows.connectors.close()
    api.engine.dispose()


@pytest.fixture(params=["forbid_creator_and_starter", "forbid_starter", "allow"])
def filed(request, db_url: str, tmp_path: Path) -> Iterator[tuple[Api, str]]:
    """The expenses app (lock) under each self_approval setting; the default one is written
    as no key at all."""
    setting = None if request.param == "forbid_creator_and_starter" else request.param
    api = start_api(db_url, root=_write(tmp_path / "exp", "lock", setting))
    yield api, request.param
    api.live.flows.connectors.close()
    api.engine.dispose()


def _claim(api: Api, user: str, submitter: str | None = None, **values) -> int:
    """A claim ``user`` files and ``submitter`` (``user`` unless given) submits."""
    made = api.client(user).post("/api/forms/claim/records", json=values)
    assert made.status_code == 201, made.text
    record = made.json()["id"]
    sent = api.client(submitter or user).post(f"/api/forms/claim/records/{record}/actions/submit")
    assert sent.status_code == 200, sent.text
    return record


def _open(api: Api, user: str) -> list[dict]:
    return api.client(user).get("/api/tasks").json()["tasks"]


def _approvals(api: Api, record: int) -> list[dict]:
    return api.client("ann").get(f"/api/forms/claim/records/{record}/approvals").json()["approvals"]


def test_overlapping_routes_are_reported_at_validate_time(tmp_path: Path) -> None:
    result = compile_app(_write(tmp_path / "exp", "lock"))
    assert result.app is not None
    overlaps = [d for d in result.diagnostics.sorted() if d.code == "routes-overlap"]
    # 'big' (amount >= 1000) and 'regional' (region == 'east') both match a big eastern claim;
    # 'own_desk' (a note) overlaps both; 'normal' is the default and is not reported
    assert [(d.line, d.message.en.split(":")[0]) for d in overlaps] == [
        (14, "route 'regional' overlaps route 'own_desk'"),
        (19, "route 'big' overlaps route 'own_desk', 'regional'"),
    ]


def test_editing_while_approving_follows_the_policy(claims) -> None:
    api, policy = claims
    record = _claim(api, "cat", amount=200, region="west")
    assert [a["route"] for a in _approvals(api, record)] == ["normal"]
    edit = api.client("cat").patch(f"/api/forms/claim/records/{record}", json={"amount": 5000})
    if policy == "lock":
        assert edit.status_code == 409
        assert edit.json()["errors"][0]["code"] == "locked-approving"
        assert api.live.records.get("claim", record)["amount"] == 200
        return
    assert edit.status_code == 200, edit.text
    approvals = _approvals(api, record)  # restarted: routed again on the new amount
    assert [(a["route"], a["status"]) for a in approvals] == [
        ("big", "active"),
        ("normal", "restarted"),
    ]
    assert all(t["record_id"] != record for t in _open(api, "finn") if t["step"] == "finance")


def test_n_of_needs_two_of_three(claims) -> None:
    api, _ = claims
    record = _claim(api, "cat", amount=3000, region="west")
    fay = next(t for t in _open(api, "fay") if t["record_id"] == record)
    answer = api.client("fay").post(f"/api/tasks/{fay['id']}/approve", json={})
    assert answer.json()["approval_status"] == "active"
    finn = next(t for t in _open(api, "finn") if t["record_id"] == record)
    answer = api.client("finn").post(f"/api/tasks/{finn['id']}/approve", json={})
    assert answer.json()["approval_status"] == "approved"
    assert api.live.records.get("claim", record)["state"] == "approved"
    assert all(t["record_id"] != record for t in _open(api, "ann"))  # the third was not needed


def test_expression_approver_and_the_submitter_never_approves(claims) -> None:
    api, _ = claims
    east = _claim(api, "cat", amount=100, region="east")
    assert [t["record_id"] for t in _open(api, "dan")] == [east]
    # bob holds clerk and finance: his own claim goes to the other finance people only
    own = _claim(api, "bob", amount=100, region="west")
    task = next(t for t in _open(api, "fay") if t["record_id"] == own)
    assert task["assignees"] == ["fay", "finn"]
    refused = api.client("bob").post(f"/api/tasks/{task['id']}/approve", json={})
    assert refused.status_code == 403
    # a step only bob could decide goes to his manager when bob submits
    desk = _claim(api, "bob", amount=100, region="west", note="own desk")
    assert [t["assignees"] for t in _open(api, "fay") if t["record_id"] == desk] == [["fay"]]


def _kinds(api: Api, record: int) -> list[str]:
    return [e["kind"] for e in api.live.records.events("claim", record)]


def test_child_rows_edited_while_approving_follow_the_policy(claims) -> None:
    api, policy = claims
    cat = api.client("cat")
    record = _claim(api, "cat", amount=200, region="west", lines=[{"item": "taxi", "cost": 50}])
    url = f"/api/forms/claim/records/{record}"
    # the same rows sent again are no change: accepted, the approval is left alone
    same = cat.patch(url, json={"lines": [{"item": "taxi", "cost": "50.00"}]})
    assert same.status_code == 200, same.text
    assert [a["status"] for a in _approvals(api, record)] == ["active"]
    edit = cat.patch(url, json={"lines": [{"item": "taxi", "cost": 80}]})
    if policy == "lock":
        assert edit.status_code == 409, edit.text
        assert edit.json()["errors"][0]["code"] == "locked-approving"
        rows = api.live.records.get("claim", record)["lines"]
        assert [(r["item"], float(r["cost"])) for r in rows] == [("taxi", 50.0)]
        assert [a["status"] for a in _approvals(api, record)] == ["active"]
        # a row added through the child endpoint to a table that is not append-only too
        added = cat.post(f"{url}/children/lines", json={"item": "hotel", "cost": 300})
        assert added.status_code == 409, added.text
        assert len(api.live.records.get("claim", record)["lines"]) == 1
        assert "approval_restarted" not in _kinds(api, record)
        return
    assert edit.status_code == 200, edit.text
    assert [(a["route"], a["status"]) for a in _approvals(api, record)] == [
        ("normal", "active"),
        ("normal", "restarted"),
    ]
    assert _kinds(api, record).count("approval_restarted") == 1
    assert float(api.live.records.get("claim", record)["lines"][0]["cost"]) == 80.0
    added = cat.post(f"{url}/children/lines", json={"item": "hotel", "cost": 300})
    assert added.status_code == 201, added.text
    assert _kinds(api, record).count("approval_restarted") == 2


def test_the_log_stays_appendable_while_approving(claims) -> None:
    api, _ = claims
    record = _claim(api, "cat", amount=200, region="west")
    before = _approvals(api, record)
    task = next(t for t in _open(api, "fay") if t["record_id"] == record)
    url = f"/api/forms/claim/records/{record}/children/log"
    for user in ("cat", "fay"):
        added = api.client(user).post(url, json={"entry": f"{user} called the customer"})
        assert added.status_code == 201, added.text
    assert len(api.live.records.get("claim", record)["log"]) == 2
    assert _approvals(api, record) == before  # neither locked nor restarted
    assert "approval_restarted" not in _kinds(api, record)
    answer = api.client("fay").post(f"/api/tasks/{task['id']}/approve", json={})
    assert answer.status_code == 200 and answer.json()["approval_status"] == "approved"
    # replacing the log's rows through an update is refused as always (append-only)
    replaced = api.client("cat").patch(f"/api/forms/claim/records/{record}", json={"log": []})
    assert replaced.status_code == 422


def test_the_creator_who_did_not_submit_never_decides_by_default(filed) -> None:
    api, setting = filed
    # bob (clerk and finance) files the claim, cat submits it
    record = _claim(api, "bob", submitter="cat", amount=100, region="west")
    task = next(t for t in _open(api, "fay") if t["record_id"] == record)
    plan = _plan(api, record)
    if setting == "forbid_creator_and_starter":
        assert task["assignees"] == ["fay", "finn"]
        assert plan["excluded"] == ["bob", "cat"]
        refused = api.client("bob").post(f"/api/tasks/{task['id']}/approve", json={})
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["code"] == "self-approval"
        assert "created" in refused.json()["errors"][0]["message"]
    else:
        assert task["assignees"] == ["bob", "fay", "finn"]
        assert plan["excluded"] == ([] if setting == "allow" else ["cat"])
        decided = api.client("bob").post(f"/api/tasks/{task['id']}/approve", json={})
        assert decided.status_code == 200, decided.text
    # a step only bob could decide goes to his manager while he is left out
    desk = _claim(api, "bob", submitter="cat", amount=100, region="west", note="own desk")
    desk_task = next(t for t in _open(api, "fay") + _open(api, "bob") if t["record_id"] == desk)
    wanted = ["fay"] if setting == "forbid_creator_and_starter" else ["bob"]
    assert desk_task["assignees"] == wanted


def test_the_creator_cannot_decide_as_a_delegate_nor_when_an_automation_submits(filed) -> None:
    api, setting = filed
    made = api.client("bob").post(
        "/api/forms/claim/records", json={"amount": 100, "region": "west"}
    )
    record = made.json()["id"]
    fire_transition(api.live.records, "claim", record, "submit", SYSTEM_ACTOR)
    task = next(t for t in _open(api, "fay") if t["record_id"] == record)
    assert _approvals(api, record)[0]["submitter"] == "system"
    left_out = setting == "forbid_creator_and_starter"
    assert task["assignees"] == (["fay", "finn"] if left_out else ["bob", "fay", "finn"])
    assert _plan(api, record)["excluded"] == (["bob"] if left_out else [])
    if not left_out:
        return
    # fay is away and bob stands in for her: not on the claim he filed
    away = api.client("fay").post(
        "/api/delegations",
        json={"delegate": "bob", "ends": (clock.now() + timedelta(days=3)).isoformat()},
    )
    assert away.status_code == 201, away.text
    refused = api.client("bob").post(f"/api/tasks/{task['id']}/approve", json={})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "self-approval"
    assert api.client("finn").post(f"/api/tasks/{task['id']}/approve", json={}).status_code == 200


def test_allow_self_approval_still_compiles_with_a_warning(tmp_path: Path) -> None:
    root = _write(tmp_path / "exp", "lock")
    path = root / "approvals/claim.yaml"
    path.write_text(path.read_text().replace("routes:", "allow_self_approval: true\nroutes:"))
    result = compile_app(root)
    assert result.app is not None
    assert result.app.approvals["claim"].self_approval == "allow"
    assert "deprecated-key" in [d.code for d in result.diagnostics.sorted()]
    both = path.read_text().replace("routes:", "self_approval: allow\nroutes:")
    path.write_text(both)
    assert compile_app(root).app is None


def _plan(api: Api, record: int) -> dict:
    with api.engine.connect() as conn:
        return conn.execute(
            sa.select(APPROVALS.c.plan)
            .where(APPROVALS.c.form == "claim", APPROVALS.c.record_id == record)
            .order_by(APPROVALS.c.id.desc())
        ).first()[0]
