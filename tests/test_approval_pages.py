"""The approval pages over the manufacturing pack: the inbox at /tasks with SLA badges and the
count in the navigation, decisions from plain forms (CSRF, refusals shown with their status),
and the approvals panel of the record page with its PDF record."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from apihelp import Api, start_api
from fakes import fake_dingtalk
from starlette.testclient import TestClient
from test_approvals import _order
from test_pages import PASSWORD, browser, sign_in

from engine.accounts.auth import set_password
from engine.model import clock
from engine.outbox.worker import Worker

PEOPLE = ("li.sales", "huang.fin", "zhao.fin", "yang.wh", "wu.proc", "ma.log")


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, Worker]]:
    with fake_dingtalk(secret="ding-secret") as ding:
        monkeypatch.setenv("DINGTALK_WEBHOOK", ding.url)
        monkeypatch.setenv("DINGTALK_SECRET", "ding-secret")
        api = start_api(db_url)
        with api.engine.begin() as conn:
            for person in PEOPLE:
                set_password(conn, person, PASSWORD)
        yield api, Worker(api.engine, lambda: api.live.flows, name="pages", schedules=False)
        clock.set_clock(None)
        api.live.flows.connectors.close()
        api.engine.dispose()


def signed_in(api: Api, username: str) -> tuple[TestClient, str]:
    client = browser(api)
    return client, sign_in(client, username)


def task_of(api: Api, user: str, order: int) -> int:
    tasks = api.client(user).get("/api/tasks").json()["tasks"]
    mine = [t["id"] for t in tasks if t["record_id"] == order]
    assert len(mine) == 1, tasks
    return mine[0]


def alert(page_html: str) -> str:
    found = re.search(r'role="alert">(.*?)</div>', page_html, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", found[1])) if found else ""


def row(page_html: str, task: int) -> str:
    found = re.search(rf'<tr id="task-{task}">(.*?)</tr>', page_html, re.S)
    return found[1] if found else ""


def test_inbox_lists_what_waits_with_sla_and_count(world) -> None:
    api, _worker = world
    order = _order(api, "B", "normal", 80, 50)
    task = task_of(api, "huang.fin", order)
    client, _token = signed_in(api, "huang.fin")
    page = client.get("/tasks")
    assert page.status_code == 200
    assert "<h1>我的待办</h1>" in page.text
    mine = row(page.text, task)
    assert f'href="/forms/order/{order}"' in mine
    assert "财务 + 仓储会签" in mine
    assert 'data-sla="green"' in mine and ">正常<" in mine  # the badge says it in words
    assert "小时（工作时间" in mine
    assert f'action="/tasks/{task}/approve"' in mine
    assert f'formaction="/tasks/{task}/reject"' in mine and 'name="comment"' in mine
    assert re.search(r'href="/tasks"[^>]*>我的待办 <span class="count">1</span>', page.text)
    # the stand-in sees it too, marked with whom it is for
    now = clock.now()
    away = api.client("huang.fin").post(
        "/api/delegations",
        json={"delegate": "wu.proc", "ends": (now + timedelta(days=7)).isoformat()},
    )
    assert away.status_code == 201, away.text
    deputy, _ = signed_in(api, "wu.proc")
    assert "代 黄敏" in row(deputy.get("/tasks").text, task)
    # nothing for the submitter
    sales, _ = signed_in(api, "li.sales")
    assert "暂无待办。" in sales.get("/tasks").text


def test_decisions_from_the_inbox(world) -> None:
    api, _worker = world
    order = _order(api, "B", "normal", 80, 50)
    task = task_of(api, "huang.fin", order)
    client, token = signed_in(api, "huang.fin")
    # no CSRF token: refused, nothing decided
    forged = client.post(f"/tasks/{task}/approve", data={"comment": "ok"}, follow_redirects=False)
    assert forged.status_code == 403
    assert row(client.get("/tasks").text, task)
    # reject without a comment: 422 with the reason, the task still there
    bare = client.post(f"/tasks/{task}/reject", data={"csrf_token": token, "next": "/tasks"})
    assert bare.status_code == 422
    assert "驳回或退回时请填写意见" in alert(bare.text)
    assert row(bare.text, task)
    # a stranger's post is refused on the page with 403
    stranger, stranger_token = signed_in(api, "ma.log")
    refused = stranger.post(f"/tasks/{task}/approve", data={"csrf_token": stranger_token})
    assert refused.status_code == 403
    assert "无权处理" in alert(refused.text)
    # approve: back to the inbox with a message, the task gone
    done = client.post(
        f"/tasks/{task}/approve",
        data={"csrf_token": token, "comment": "价格无误", "next": "/tasks"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/tasks"
    after = client.get("/tasks")
    assert '<p class="notice" role="status">已同意。</p>' in after.text
    assert not row(after.text, task)
    assert "notice" not in client.get("/tasks").text  # shown once
    # deciding again: 409 shown on the page, never a 500
    again = client.post(f"/tasks/{task}/approve", data={"csrf_token": token})
    assert again.status_code == 409
    assert "已处理" in alert(again.text)
    unknown = client.post("/tasks/987654/approve", data={"csrf_token": token})
    assert unknown.status_code == 404
    wrong = client.post(f"/tasks/{task}/shrug", data={"csrf_token": token})
    assert wrong.status_code == 404


def test_record_page_panel_decisions_and_pdf(world) -> None:
    api, worker = world
    order = _order(api, "B", "normal", 80, 50)
    record_url = f"/forms/order/{order}"
    finance = task_of(api, "huang.fin", order)
    warehouse = task_of(api, "yang.wh", order)
    sales, _ = signed_in(api, "li.sales")
    panel = sales.get(record_url)
    assert panel.status_code == 200
    assert '<section class="approvals" id="approvals">' in panel.text
    assert "<h2>审批</h2>" in panel.text and "审批中" in panel.text
    assert 'class="decide"' not in panel.text  # the submitter decides nothing
    client, token = signed_in(api, "huang.fin")
    mine = client.get(record_url).text
    assert f'formaction="/tasks/{finance}/approve"' in mine
    assert f'action="/tasks/{warehouse}/approve"' not in mine
    # a refusal from the record page shows the record page again with the message
    bare = client.post(f"/tasks/{finance}/return", data={"csrf_token": token, "next": record_url})
    assert bare.status_code == 422
    assert "驳回或退回时请填写意见" in alert(bare.text) and "<h2>审批</h2>" in bare.text
    ok = client.post(
        f"/tasks/{finance}/approve",
        data={"csrf_token": token, "comment": "价格无误", "next": record_url},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == record_url
    shown = client.get(record_url).text
    assert "已同意。" in shown and "价格无误" in shown and "黄敏" in shown
    wh, wh_token = signed_in(api, "yang.wh")
    final = wh.post(
        f"/tasks/{warehouse}/approve",
        data={"csrf_token": wh_token, "next": record_url},
        follow_redirects=False,
    )
    assert final.status_code == 303
    assert api.live.records.get("order", order)["state"] == "approved"
    worker.run_until_idle()
    page = sales.get(record_url).text
    link = re.search(r'href="(/api/approvals/\d+/record\.pdf)"[^>]*>下载审批记录 PDF<', page)
    assert link, page
    pdf = sales.get(link[1])  # the session cookie is enough for GET
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
