"""Exports of a list page (CSV with a BOM, .xlsx) holding exactly what the list selects, with
formula injection neutralised in every CSV and XLSX the engine writes; and record values that
cannot inject Markdown into chat messages (issue 16)."""

from __future__ import annotations

import csv
import io
import re
import textwrap
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from apihelp import Api, start_api
from packservices import pack_services, submit_order
from starlette.testclient import TestClient

from engine.flows.messages import markdown_inline, message_environment, render_message
from engine.forms.records import SYSTEM_ACTOR
from engine.forms.transfer import export_csv, import_csv
from engine.model.sheets import csv_text, neutralise, restore
from engine.outbox.connectors.mail import markdown_html
from engine.outbox.worker import Worker
from engine.web import exports

EVIL = "=cmd|' /C calc'!A0"
APP = {
    "app.yaml": """\
        name: t
        title: 台账
        locale: zh-CN
        timezone: Asia/Shanghai
        calendar: cn
        roles:
          clerk: {label: 文员}
          outsider: {label: 外人}
        """,
    "forms/client.yaml": """\
        title: 客户
        title_field: name
        fields:
          name: {type: text, label: 名称}
        """,
    "forms/entry.yaml": """\
        title: 台账
        title_field: memo
        permissions:
          read: [clerk]
          create: [clerk]
          update: [clerk]
        fields:
          memo: {type: text, label: 摘要}
          client: {type: ref, form: client, label: 客户}
          amount: {type: money, label: 金额}
          qty: {type: integer, label: 数量}
          due: {type: date, label: 到期日}
          kind:
            type: select
            label: 类型
            options:
              - {value: in, label: 收入}
              - {value: out, label: 支出}
          paid: {type: boolean, label: 已付}
          lines:
            type: table
            label: 明细
            fields:
              what: {type: text, label: 内容}
        """,
    "flows/entry.yaml": """\
        form: entry
        states:
          open: {label: 未结, initial: true, editable: true}
          closed: {label: 已结, final: true}
        transitions:
          close: {label: 结清, from: open, to: closed, roles: [clerk]}
        """,
}
HEADER = [
    "编号", "摘要", "客户", "金额", "数量", "到期日", "类型", "已付",
    "状态", "创建时间", "创建人", "更新时间",
]  # fmt: skip


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[tuple[Api, dict[str, int]]]:
    root = tmp_path / "ledger"
    for rel, text in APP.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    api = start_api(db_url, root)
    api.add_user("cl", "clerk")
    api.add_user("ou", "outsider")
    records = api.live.records
    acme = records.create("client", {"name": "甲公司"}, SYSTEM_ACTOR)["id"]
    other = records.create("client", {"name": "乙公司"}, SYSTEM_ACTOR)["id"]
    ids = {"acme": acme, "other": other}
    rows = [
        ("evil", EVIL, acme, "-1234.5", -3, "2026-03-01", "out", True),
        ("plain", "普通", acme, "1234567.8", 7, "2026-04-02", "in", False),
        ("minus", "-5 箱", acme, "0", 1, None, None, None),
        ("elsewhere", "别家的", other, "9", 2, None, "in", None),
    ]
    for key, memo, client, amount, qty, due, kind, paid in rows:
        values = {"memo": memo, "client": client, "amount": amount, "qty": qty}
        extra = {"due": due, "kind": kind, "paid": paid}
        values.update({k: v for k, v in extra.items() if v is not None})
        ids[key] = records.create("entry", values, SYSTEM_ACTOR)["id"]
    yield api, ids
    api.engine.dispose()


def _csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8 Chinese
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def _xlsx(content: bytes) -> list[list[tuple[str | None, str]]]:
    """The first sheet's rows as (cell type, text) pairs: 'n' numbers, 's'/'inlineStr' text."""
    ns = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        names = book.namelist()
        shared = []
        if "xl/sharedStrings.xml" in names:
            strings = ElementTree.fromstring(book.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{ns['x']}}}t")) for si in strings]
        sheet = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))
    out = []
    for row in sheet.iterfind(".//x:sheetData/x:row", ns):
        cells = []
        for cell in row.iterfind("x:c", ns):
            kind = cell.get("t") or "n"
            if kind == "s":
                text = shared[int(cell.findtext("x:v", "", ns))]
            elif kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{{{ns['x']}}}t"))
            else:
                text = cell.findtext("x:v", "", ns)
            cells.append((kind, text))
        out.append(cells)
    return out


# ---------------------------------------------------------------------------- the list's exports


def test_csv_export_of_a_filtered_list(ledger: tuple[Api, dict[str, int]]) -> None:
    api, ids = ledger
    clerk = api.browser("cl")[0]
    query = f"client={ids['acme']}&qty__lte=1"
    listed = clerk.get(f"/forms/entry?{query}")
    assert listed.status_code == 200
    # the links carry the list's filters (and search, not its page cursor)
    query_html = query.replace("&", "&amp;")
    assert f'href="/forms/entry/export.csv?{query_html}"' in listed.text
    assert f'href="/forms/entry/export.xlsx?{query_html}"' in listed.text
    rows = _csv(clerk.get(f"/forms/entry/export.csv?{query}"))
    assert rows[0] == HEADER  # the field labels, the table column left out
    # exactly the listed records, newest first; the other client's one is not there
    assert [int(r[0]) for r in rows[1:]] == [ids["minus"], ids["evil"]]
    minus, evil = rows[1], rows[2]
    assert evil[1] == "'" + EVIL  # neutralised: Excel reads it as text, never runs it
    assert minus[1] == "'-5 箱"  # text that starts with '-' is text
    assert evil[2] == "甲公司"  # the ref by its title, not its id
    assert evil[3:8] == ["-1234.50", "-3", "2026-03-01", "支出", "是"]  # numbers stay numbers
    assert minus[5:8] == ["", "", ""]
    assert evil[8] == "未结" and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?", evil[9])
    assert evil[10]  # who created it, by name
    searched = _csv(clerk.get("/forms/entry/export.csv?q=calc&state=open"))
    assert [int(r[0]) for r in searched[1:]] == [ids["evil"]]
    assert 'export.csv?q=calc&amp;state=open"' in clerk.get("/forms/entry?q=calc&state=open").text
    everything = _csv(clerk.get("/forms/entry/export.csv"))
    assert len(everything) == 5
    assert everything[3][3] == "1234567.80"  # money at its scale, no separators: a number


def test_xlsx_export_types_and_neutralises(ledger: tuple[Api, dict[str, int]]) -> None:
    api, ids = ledger
    clerk = api.browser("cl")[0]
    answer = clerk.get(f"/forms/entry/export.xlsx?client={ids['acme']}")
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert ".xlsx" in answer.headers["content-disposition"]
    rows = _xlsx(answer.content)
    assert [text for _, text in rows[0]] == HEADER
    assert [int(r[0][1]) for r in rows[1:]] == [ids["minus"], ids["plain"], ids["evil"]]
    evil = dict(zip(HEADER, rows[3], strict=False))
    assert evil["摘要"][1] == "'" + EVIL and evil["摘要"][0] != "str"  # text, not a formula
    assert evil["客户"][1] == "甲公司"
    assert evil["金额"] == ("n", "-1234.5")  # a negative number is a number
    assert evil["数量"] == ("n", "-3")
    assert evil["到期日"][0] == "n"  # a date cell (a serial number with a date format)
    assert dict(zip(HEADER, rows[1], strict=False))["摘要"][1] == "'-5 箱"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet  # no formula anywhere


def test_exports_stream_page_after_page(
    ledger: tuple[Api, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, ids = ledger
    monkeypatch.setattr(exports, "PAGE", 1)  # one record a read: four reads, one export
    clerk = api.browser("cl")[0]
    rows = _csv(clerk.get("/forms/entry/export.csv"))
    assert [int(r[0]) for r in rows[1:]] == sorted(
        (ids[k] for k in ("evil", "plain", "minus", "elsewhere")), reverse=True
    )
    sheet = _xlsx(clerk.get("/forms/entry/export.xlsx").content)
    assert [int(r[0][1]) for r in sheet[1:]] == [int(r[0]) for r in rows[1:]]


def test_exports_are_refused_like_the_list(ledger: tuple[Api, dict[str, int]]) -> None:
    api, _ = ledger
    outsider = api.browser("ou")[0]
    assert outsider.get("/forms/entry").status_code == 403
    for kind in ("csv", "xlsx"):
        refused = outsider.get(f"/forms/entry/export.{kind}")
        assert refused.status_code == 403, kind
        assert "甲公司" not in refused.text and "calc" not in refused.text
    assert outsider.get("/forms/nope/export.csv").status_code == 404
    anonymous = TestClient(outsider.app, raise_server_exceptions=False)
    assert anonymous.get("/forms/entry/export.csv", follow_redirects=False).status_code == 303


def test_a_bad_filter_is_a_400_naming_the_field(ledger: tuple[Api, dict[str, int]]) -> None:
    api, _ = ledger
    clerk = api.browser("cl")[0]
    for kind in ("csv", "xlsx"):
        refused = clerk.get(f"/forms/entry/export.{kind}?qty=many")
        assert refused.status_code == 400, kind
        assert "数量" in refused.text
        assert clerk.get(f"/forms/entry/export.{kind}?lines=x").status_code == 400
    assert clerk.get("/forms/entry?qty=many").status_code == 400  # the list says the same


# ---------------------------------------------------------------------------- the shared writer


def test_neutralise_restore_and_the_shared_writer() -> None:
    for text in (EVIL, "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "'=1", "''+x", "a=1", "'a", ""):
        assert restore(neutralise(text)) == text
    assert neutralise("=1") == "'=1" and neutralise("'=1") == "''=1" and neutralise("a=1") == "a=1"
    assert neutralise(-5) == -5 and neutralise(None) is None
    text = csv_text([["a", "b"], [EVIL, -5], ["@x", None]])
    assert text == f"\ufeffa,b\r\n'{EVIL},-5\r\n'@x,\r\n"


def test_cli_export_has_a_bom_neutralises_and_imports_back(ledger: tuple[Api, dict[str, int]]):
    api, _ = ledger
    records = api.live.records
    text = "".join(export_csv(records, "client"))
    assert text.startswith("\ufeff")
    records.create("client", {"name": "@SUM(1+1)"}, SYSTEM_ACTOR)
    exported = "".join(export_csv(records, "client"))
    assert "'@SUM(1+1)" in exported
    names = [line.split(",")[-1] for line in exported.splitlines()[1:]]
    assert names[-1] == "'@SUM(1+1)"
    again = "name\n" + "\n".join(names) + "\n"
    import_csv(records, "client", again, SYSTEM_ACTOR)
    stored = [r["name"] for r in records.list_page("client", sort="id", limit=50).items]
    assert stored.count("@SUM(1+1)") == 2 and "'@SUM(1+1)" not in stored


# ---------------------------------------------------------------------------- Markdown


HOSTILE = "坏客户\n# 点我领奖 [点我](http://evil.example) ![x](http://evil.example/i.png) <b>x</b>"


def test_markdown_inline_flattens_and_escapes() -> None:
    out = markdown_inline(HOSTILE)
    assert "\n" not in out and "](" not in out.replace("\\](", "")
    assert "\\[点我\\](http://evil.example)" in out and "\\<b\\>" in out
    assert markdown_inline("# x") == "\\# x" and markdown_inline("1. x") == "1\\. x"
    assert markdown_inline("SO-20260101-001 华东精密") == "SO-20260101-001 华东精密"
    # mail shows the characters themselves
    assert markdown_html(f"- 客户：{out}") == (
        "<ul>\n<li>客户：坏客户 # 点我领奖 [点我](http://evil.example) ![x](http://evil.example/i.png)"
        " &lt;b&gt;x&lt;/b&gt;</li>\n</ul>"
    )


def test_template_text_stays_markdown_values_do_not() -> None:
    template = "### 标题 {{ name }}\n- **客户**：{{ name }}\n{{ note }}\n{{ raw|safe }}"
    env = message_environment({"templates/m.md": template})
    message = render_message(
        env, "m.md", {"name": "A_B*", "note": "# 注入\n[x](http://e)", "raw": "[ok](http://a)"}
    )
    assert message.title == "标题 A\\_B\\*"
    assert message.text.splitlines() == [
        "- **客户**：A\\_B\\*",
        "\\# 注入 \\[x\\](http://e)",
        "[ok](http://a)",
    ]


FAR = (date.today() + timedelta(days=90)).isoformat()


def test_hostile_record_text_through_real_notify_steps(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pack_services(monkeypatch) as services:
        api = start_api(db_url)
        try:
            records = api.live.records
            customer = records.create(
                "customer",
                {"code": "C00009", "name": HOSTILE, "tier": "A", "wecom_id": "wx_c9"},
                SYSTEM_ACTOR,
            )["id"]
            hostile_product = {"code": "HL-100002", "name": "面套\n## [买](http://evil.example)"}
            product = records.create(
                "product", {**hostile_product, "unit_price": 10, "lead_days": 5}, SYSTEM_ACTOR
            )["id"]
            submit_order(records, customer, product, 5000, FAR)  # short: a to-do on DingTalk
            Worker(api.engine, lambda: api.live.flows, name="t").run_until_idle()
        finally:
            api.live.flows.connectors.close()
            api.engine.dispose()
        texts = [m["markdown"]["content"] for m in services.wecom.messages]
        texts += [
            str((m.get("markdown") or m.get("actionCard"))["text"]) for m in services.ding.messages
        ]
    assert len(texts) >= 2 and any("缺料提醒" in t for t in texts)
    for text in texts:
        headings = [line for line in text.splitlines() if line.lstrip().startswith("#")]
        assert all("点我领奖" not in h and "买" not in h for h in headings), headings
        assert "](http://evil" not in text.replace("\\](http://evil", "")  # no link, no image
        assert "<b>" not in text
        assert "坏客户 # 点我领奖 \\[点我\\](http://evil.example)" in text or "坏客户" not in text
    assert any("坏客户 # 点我领奖 \\[点我\\]" in t for t in texts)  # named, on one line
    assert any("面套 ## \\[买\\](http://evil.example)" in t for t in texts)  # mid-line: text
