"""Approval rules beyond the pack, on a small expenses app (SQLite and PostgreSQL): the lock
and restart policies for records edited while approving, n_of and any_of steps, approvers
computed by an expression, a submitter who holds the approving role, and an approver slot
that only the submitter could fill (it goes to their manager)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelp import Api, start_api

from engine.compile import compile_app

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
  approve: {label: Approve, from: approving, to: approved}
  reject: {label: Reject, from: approving, to: rejected}
  send_back: {label: Send back, from: approving, to: returned}
"""
APPROVAL = """\
form: claim
start: {state_entered: approving}
on_approved: approve
on_rejected: reject
on_returned: send_back
if_record_changes: POLICY
routes:
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


def _write(root: Path, policy: str) -> Path:
    files = {
        "app.yaml": APP,
        "people.csv": PEOPLE,
        "forms/claim.yaml": FORM,
        "flows/claim.yaml": FLOW,
        "approvals/claim.yaml": APPROVAL.replace("POLICY", policy),
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


def _claim(api: Api, user: str, **values) -> int:
    client = api.client(user)
    made = client.post("/api/forms/claim/records", json=values)
    assert made.status_code == 201, made.text
    record = made.json()["id"]
    assert client.post(f"/api/forms/claim/records/{record}/actions/submit").status_code == 200
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
