"""Hints from history (a form's ``hints:``): the last 3 other jobs of the same customer and
product category that were delivered, each compared with its promised date; all early (or all
late) by at least 2 days → the hint with its evidence on the record page; mixed, too few or a
shift under 2 days → none. SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from apihelp import start_api
from conftest import codes
from test_pages import PASSWORD, browser, sign_in

from engine.accounts.auth import set_password
from engine.compile import CompileResult
from engine.insights.hints import record_hints
from engine.store.events import EventIn, append_events
from engine.store.storage import create_db_engine
from engine.store.tables import build_metadata

FILES = {
    "forms/customer.yaml": "title: Customer\ntitle_field: name\nfields:\n"
    "  name: {type: text, label: Name}\n",
    "forms/product.yaml": "title: Product\ntitle_field: name\nfields:\n"
    "  name: {type: text, label: Name}\n"
    "  family: {type: select, label: Family, options: [seat, door]}\n",
    "forms/job.yaml": """\
title: Job
title_field: number
fields:
  number: {type: text, label: Number}
  customer: {type: ref, label: Customer, form: customer}
  product: {type: ref, label: Product, form: product}
  promised: {type: date, label: Promised}
hints:
  buffer:
    match: [customer, product.family]
    state: delivered
    date: promised
""",
    "flows/job.yaml": """\
form: job
states:
  open: {label: Open, initial: true}
  delivered: {label: Delivered, final: true}
transitions:
  deliver: {label: Deliver, from: open, to: delivered}
""",
}
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _row(no: str, customer: int, product: int, promised: date, state: str) -> dict:
    return {
        "number": no,
        "customer": customer,
        "product": product,
        "promised": promised,
        "state": state,
        "version": 1,
        "created_at": T0,
        "updated_at": T0,
        "created_by": "test",
    }


def test_hint_with_evidence(make_app: Callable[..., CompileResult], db_url: str) -> None:
    result = make_app(FILES)
    assert result.app is not None, result.diagnostics.sorted()
    app = result.app
    engine = create_db_engine(db_url)
    metadata = build_metadata(app)
    metadata.create_all(engine)
    t = metadata.tables
    with engine.begin() as conn:
        conn.execute(t["f_customer"].insert(), [_row_of("A"), _row_of("B")])
        conn.execute(
            t["f_product"].insert(),
            [
                _row_of("P1", family="seat"),
                _row_of("P2", family="seat"),
                _row_of("P3", family="door"),
            ],
        )
        # customer 1, seat family: J1 (late, oldest), then J2..J4 delivered 2-3 days early;
        # J5 is another family, J6 another customer, J7 not delivered; J8 is the new one
        conn.execute(
            t["f_job"].insert(),
            [
                _row("J1", 1, 1, date(2026, 1, 10), "delivered"),
                _row("J2", 1, 2, date(2026, 2, 10), "delivered"),
                _row("J3", 1, 1, date(2026, 2, 20), "delivered"),
                _row("J4", 1, 2, date(2026, 3, 10), "delivered"),
                _row("J5", 1, 3, date(2026, 3, 20), "delivered"),
                _row("J6", 2, 1, date(2026, 3, 20), "delivered"),
                _row("J7", 1, 1, date(2026, 3, 20), "open"),
                _row("J8", 1, 1, date(2026, 4, 20), "open"),
            ],
        )
        # delivered at (UTC; Shanghai is +8, so 20:00 UTC is the next local day)
        for record_id, at in [
            (1, datetime(2026, 1, 14, 2, tzinfo=UTC)),  # +4
            (2, datetime(2026, 2, 7, 2, tzinfo=UTC)),  # -3
            (3, datetime(2026, 2, 17, 20, tzinfo=UTC)),  # local 02-18: -2
            (4, datetime(2026, 3, 7, 2, tzinfo=UTC)),  # -3
            (5, datetime(2026, 3, 10, 2, tzinfo=UTC)),
            (6, datetime(2026, 3, 10, 2, tzinfo=UTC)),
        ]:
            payload = {"name": "deliver", "from": "open", "to": "delivered"}
            append_events(
                conn, metadata, [EventIn("test", "job", record_id, "transition", payload)], at
            )
    form = app.forms["job"]
    new = {"id": 8, "customer": 1, "product": 1}
    try:
        (hint,) = record_hints(engine, metadata, app, form, new)
        no_family = record_hints(
            engine, metadata, app, form, {"id": 9, "customer": 1, "product": None}
        )
        spec = app.forms["job"].hints[0]
        # J3 (the 2-day one) is the latest for record J4's view: J2, J3, J1 → mixed, no hint
        mixed = record_hints(engine, metadata, app, form, {"id": 4, "customer": 1, "product": 1})
    finally:
        engine.dispose()
    assert hint.early and hint.days == 2
    assert [(e.title, e.day, e.entered, e.days) for e in hint.evidence] == [
        ("J4", date(2026, 3, 10), date(2026, 3, 7), -3),
        ("J3", date(2026, 2, 20), date(2026, 2, 18), -2),
        ("J2", date(2026, 2, 10), date(2026, 2, 7), -3),
    ]
    assert no_family == [] and mixed == []
    assert (spec.last, spec.min_days) == (3, 2)

    api = start_api(db_url, Path(app.root))
    try:
        api.add_user("li", "clerk")
        with api.engine.begin() as conn:
            set_password(conn, "li", PASSWORD)
        web = browser(api)
        sign_in(web, "li")
        page = web.get("/forms/job/8")
        other = web.get("/forms/job/6")
    finally:
        api.engine.dispose()
    assert page.status_code == 200
    box = re.search(r'<aside class="hint" id="hint-buffer">.*?</aside>', page.text, re.S)
    assert box, page.text[:3000]
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", box[0])).split())
    assert text.startswith(
        "The last 3 Job records with the same Customer, Product·Family all reached "
        "“Delivered” at least 2 days before their Promised; consider a buffer."
    )
    assert "J4 2026-03-10 2026-03-07 -3 J3 2026-02-20 2026-02-18 -2 J2" in text
    assert 'href="/forms/job/4"' in box[0]
    assert 'class="hint"' not in other.text


def _row_of(name: str, family: str | None = None) -> dict:
    row = {"name": name, "version": 1, "created_at": T0, "updated_at": T0, "created_by": "t"}
    return {**row, "family": family} if family else row


def test_hint_config_errors(make_app: Callable[..., CompileResult]) -> None:
    job = FILES["forms/job.yaml"]
    bad = make_app(
        {
            **FILES,
            "forms/job.yaml": job.replace("product.family", "product.famly")
            .replace("state: delivered", "state: deliverd")
            .replace("date: promised", "date: number"),
        }
    )
    assert bad.app is None
    assert [c for _, _, _, c in codes(bad)] == ["unknown-field", "unknown-state", "wrong-type"]
