"""The KPI language on a small app (SQLite and PostgreSQL), every value worked out by hand:
entered()/fired() in conditions (as "ever" and as counts), per_record counts of events and of
child rows, distinct_count, durations from/to date and datetime fields and to a delivered
message (notified), on_time_rate, group_by (worst first, ref titles, option labels, blank),
target, drill-down columns — and the validator's errors for every unknown name."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import codes

from engine.compile import compile_app
from engine.dashboards.compile_kpi import compile_kpi
from engine.dashboards.compute import _Context, dashboard_values, drill_down
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR, RecordService
from engine.model.spec import App, KpiSpec
from engine.store.events import EventIn, append_events
from engine.store.storage import create_db_engine
from engine.store.tables import build_metadata

SHANGHAI = timedelta(hours=8)
NOW = "2026-03-20 10:00"

APP = """\
name: t
title: Tickets
locale: en
timezone: Asia/Shanghai
calendar: cn
roles:
  clerk: {label: Clerk}
"""
CLIENT = """\
title: Client
title_field: name
fields:
  name: {type: text, label: Name, required: true}
"""
TICKET = """\
title: Ticket
title_field: code
fields:
  code: {type: text, label: Code, required: true}
  client: {type: ref, label: Client, form: client}
  kind:
    type: select
    label: Kind
    options: [{value: bug, label: Bug}, {value: ask, label: Question}]
  hours: {type: integer, label: Hours}
  promised: {type: date, label: Promised}
  planned: {type: date, label: Planned}
  answered_at: {type: datetime, label: Answered at}
  notes:
    type: table
    label: Notes
    fields:
      topic: {type: select, label: Topic, options: [chase, other]}
      text: {type: text, label: Text}
"""
FLOW = """\
form: ticket
states:
  open: {label: Open, initial: true, editable: true}
  review: {label: Review}
  returned: {label: Returned, editable: true}
  done: {label: Done, final: true}
transitions:
  send: {label: Send, from: [open, returned], to: review}
  give_back: {label: Give back, from: review, to: returned}
  close: {label: Close, from: review, to: done}
automations:
  tell_client:
    on: {state_entered: done}
    steps:
      - set: {answered_at: "now()"}
"""
DASHBOARD = """\
title: Tickets
kpis:
  first_pass:
    title: First pass
    form: ticket
    measure: rate
    where: "entered('review')"
    numerator: "entered('done') and not entered('returned')"
    unit: "%"
    green: ">= 50"
    amber: ">= 25"
    drill: {columns: [client, promised, kind]}
  reviewed_once:
    title: Reviewed once
    form: ticket
    measure: rate
    where: "entered('done')"
    numerator: "entered('review') == 1"
  sent_twice:
    title: Sent twice or more
    form: ticket
    measure: count
    where: "fired('send') >= 2"
  changes:
    title: Changes per ticket
    form: ticket
    measure: per_record
    count: {field_changed: [hours, kind]}
    green: "<= 0.5"
    amber: "<= 1"
  chases:
    title: Chases per ticket
    form: ticket
    measure: per_record
    count: {rows: notes, where: "topic == 'chase'"}
  clients:
    title: Clients
    form: ticket
    measure: distinct_count
    field: client
  answer_hours:
    title: Hours to answer
    form: ticket
    measure: median_hours
    from: {created: true}
    to: {field: answered_at}
  plan_slip:
    title: Planned after promised
    form: ticket
    measure: median_hours
    from: {field: promised}
    to: {field: planned}
  to_message:
    title: Hours to the message
    form: ticket
    measure: median_hours
    from: {created: true}
    to: {notified: tell_client}
  answered_on_time:
    title: Answered within 2 hours of sending
    form: ticket
    measure: on_time_rate
    from: {transition: send}
    to: {field: answered_at}
    within_hours: 2
    unit: "%"
  hours_by_client:
    title: Hours
    form: ticket
    measure: sum
    field: hours
    target: 3
    green: "<= 5"
    amber: "<= 8"
    group_by: client
    top: 2
  big_by_kind:
    title: Big tickets
    form: ticket
    measure: rate
    numerator: "hours > 2"
    unit: "%"
    green: ">= 50"
    group_by: kind
"""


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) - SHANGHAI


def write_app(root: Path, dashboard: str = DASHBOARD) -> Path:
    files = {
        "app.yaml": APP,
        "forms/client.yaml": CLIENT,
        "forms/ticket.yaml": TICKET,
        "flows/ticket.yaml": FLOW,
        "dashboards/tickets.yaml": dashboard,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


# (created, client, kind, hours, promised, planned, steps); a step is (at, action, argument):
# "fire" a transition, "set" fields, "note" a child row, "sent" a tell_client message.
TICKETS = {
    "T1": ("2026-03-02 09:00", "A", "bug", 2, "2026-03-10", "2026-03-12",
           [("09:30", "fire", "send"), ("10:00", "fire", "close"),
            ("10:30", "set", {"answered_at": "2026-03-02 10:30"}), ("11:00", "sent", None)]),
    "T2": ("2026-03-03 09:00", "A", "ask", 6, "2026-03-10", "2026-03-09",
           [("10:00", "fire", "send"), ("11:00", "fire", "give_back"),
            ("11:30", "set", {"hours": 8}), ("12:00", "fire", "send"),
            ("12:30", "note", "chase"), ("13:00", "note", "other"), ("14:00", "note", "chase"),
            ("15:00", "fire", "close"), ("15:30", "sent", None),
            ("16:00", "set", {"answered_at": "2026-03-03 16:00"})]),
    "T3": ("2026-03-04 09:00", "B", "bug", 1, "2026-03-20", None,
           [("09:05", "set", {"kind": "ask"}), ("09:10", "fire", "send"),
            ("23:00", "note", "chase")]),
    "T4": ("2026-03-05 09:00", "B", "ask", 3, None, None,
           [("10:00", "set", {"answered_at": "2026-03-05 10:00"})]),
    "T5": ("2026-03-06 09:00", None, "bug", 3, "2026-03-12", "2026-03-12",
           [("09:30", "fire", "send"), ("11:00", "fire", "close"), ("11:30", "sent", None),
            ("12:00", "set", {"answered_at": "2026-03-06 12:00"}),
            ("12:30", "set", {"hours": 5, "kind": "ask"})]),
}  # fmt: skip


@dataclasses.dataclass
class Tickets:
    app: App
    engine: object
    metadata: object
    ids: dict[str, int]
    clients: dict[str, int]

    def name(self, record_id: int) -> str:
        return next(k for k, v in self.ids.items() if v == record_id)


class Clock:
    at = local("2026-03-01 08:00")

    def __call__(self) -> datetime:
        return self.at


def _load(records: RecordService, clock: Clock) -> tuple[dict[str, int], dict[str, int]]:
    clients = {name: records.create("client", {"name": name}, SYSTEM_ACTOR)["id"] for name in "AB"}
    ids = {}
    for key, (created, client, kind, hours, promised, planned, steps) in TICKETS.items():
        clock.at = local(created)
        values = {
            "code": key,
            "client": clients[client] if client else None,
            "kind": kind,
            "hours": hours,
            "promised": promised,
            "planned": planned,
        }
        rid = records.create("ticket", values, SYSTEM_ACTOR)["id"]
        day = created[:10]
        for at, action, argument in steps:
            clock.at = local(f"{day} {at}")
            if action == "fire":
                fire_transition(records, "ticket", rid, argument, SYSTEM_ACTOR)
            elif action == "set":
                updates = {
                    k: local(v).isoformat() if k == "answered_at" else v
                    for k, v in argument.items()
                }
                records.update("ticket", rid, updates, SYSTEM_ACTOR)
            elif action == "note":
                row = {"topic": argument, "text": "x"}
                records.add_child_row("ticket", rid, "notes", row, SYSTEM_ACTOR)
            else:  # what the worker writes when the automation's message was delivered
                sent = EventIn("flow", "ticket", rid, "notify_sent", {"automation": "tell_client"})
                with records.engine.begin() as conn:
                    append_events(conn, records.metadata, [sent], clock.at)
        ids[key] = rid
    return ids, clients


@pytest.fixture
def tickets(db_url: str, tmp_path: Path) -> Iterator[Tickets]:
    result = compile_app(write_app(tmp_path / "app"))
    assert result.app is not None, result.diagnostics.sorted()
    app = result.app
    engine = create_db_engine(db_url)
    metadata = build_metadata(app)
    metadata.create_all(engine)
    clock = Clock()
    try:
        ids, clients = _load(RecordService(app, engine, metadata, now=clock), clock)
        yield Tickets(app, engine, metadata, ids, clients)
    finally:
        engine.dispose()


def _values(t: Tickets) -> dict[str, dict]:
    got = dashboard_values(t.engine, t.app, "tickets", local(NOW), t.metadata)  # type: ignore[arg-type]
    return {k["id"]: k for k in got["kpis"]}


def _kpi(t: Tickets, name: str) -> KpiSpec:
    return next(k for k in t.app.dashboards["tickets"].kpis if k.name == name)


def _compute(t: Tickets, kpi: KpiSpec) -> float | int | None:
    ctx = _Context(t.engine, t.app, local(NOW), t.metadata)  # type: ignore[arg-type]
    query = ctx.query(kpi)
    with t.engine.connect() as conn:  # type: ignore[attr-defined]
        return query.finish(conn.execute(query.value_select()).first())


def _drill(t: Tickets, kpi: str) -> dict:
    return drill_down(t.engine, t.app, "tickets", kpi, local(NOW), 50, t.metadata)  # type: ignore[arg-type]


def test_event_conditions(tickets: Tickets) -> None:
    kpis = _values(tickets)
    # entered review: T1 T2 T3 T5; done and never returned: T1 T5 (T2 was given back)
    assert kpis["first_pass"]["value"] == pytest.approx(50.0)
    assert kpis["first_pass"]["status"] == "green"  # exactly at ">= 50"
    # done: T1 T2 T5; in review exactly once: T1 T5 (T2 twice) → 2/3 (no "%": a ratio)
    assert kpis["reviewed_once"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    assert kpis["sent_twice"]["value"] == 1  # T2
    drilled = _drill(tickets, "first_pass")
    assert [tickets.name(r["id"]) for r in drilled["records"]] == ["T3", "T2"]


def test_entered_is_written_so_postgresql_cannot_hash_the_history(tickets: Tickets) -> None:
    """At 1M orders PostgreSQL read every such event of the history into a hash for an EXISTS
    under a CASE or an OR (884,170 of them, to count a week's thousand orders: 1 s). Each
    EXISTS of entered() carries an OFFSET, which keeps it a per-record seek; a small test
    database gets a seek either way, so the SQL itself is what is checked."""
    from sqlalchemy.dialects import postgresql

    kpi = _kpi(tickets, "first_pass")
    env = _Context(tickets.engine, tickets.app, local(NOW), tickets.metadata).env  # type: ignore[arg-type]
    query = compile_kpi(tickets.app, tickets.metadata, kpi, "postgresql", env, local(NOW))  # type: ignore[arg-type]
    sql = str(query.value_select().compile(dialect=postgresql.dialect()))
    exists = sql.count("EXISTS (SELECT")
    assert exists == 3  # where: entered('review'); numerator: entered('done'), 'returned'
    assert sql.count("EXISTS (SELECT 1") == exists
    assert sql.count("OFFSET") == exists


def test_per_record_counts(tickets: Tickets) -> None:
    kpis = _values(tickets)
    # changes touching hours or kind: T2 1 (hours), T3 1 (kind), T5 1 (both in one save),
    # T1 and T4 changed only answered_at → 3 / 5 = 0.6: not "<= 0.5", "<= 1": amber
    assert kpis["changes"]["value"] == pytest.approx(0.6)
    assert kpis["changes"]["status"] == "amber"
    # chase notes: T2 2, T3 1 ("other" does not count) → 3 / 5
    assert kpis["chases"]["value"] == pytest.approx(0.6)
    # as of the end of 03-03, T3 (created 03-04) is not there yet: T1 0, T2 2 → 1.0
    chases = _kpi(tickets, "chases")
    ctx = _Context(tickets.engine, tickets.app, local("2026-03-03 13:30"), tickets.metadata)  # type: ignore[arg-type]
    query = ctx.query(chases)
    with tickets.engine.connect() as conn:  # type: ignore[attr-defined]
        early = query.finish(conn.execute(query.value_select()).first())
    assert early == pytest.approx(0.5)  # only the 12:30 chase of T2 by then
    drilled = _drill(tickets, "changes")
    assert [(tickets.name(r["id"]), r["value"]) for r in drilled["records"]] == [
        ("T5", 1.0),
        ("T3", 1.0),
        ("T2", 1.0),
        ("T4", 0.0),
        ("T1", 0.0),
    ]


def test_distinct_count(tickets: Tickets) -> None:
    assert _values(tickets)["clients"]["value"] == 2  # A and B; T5's blank is not a client


def test_durations_from_and_to_fields_and_messages(tickets: Tickets) -> None:
    kpis = _values(tickets)
    # created → answered_at: T1 1.5, T2 7, T4 1, T5 3 (T3 unanswered) → median 2.25
    assert kpis["answer_hours"]["value"] == pytest.approx(2.25)
    # promised → planned (dates, × 24): T1 +48, T2 −24, T5 0 (T3 unplanned) → median 0
    assert kpis["plan_slip"]["value"] == pytest.approx(0.0)
    slip = _kpi(tickets, "plan_slip")
    p90 = dataclasses.replace(slip, measure="percentile_hours", percentile=90)
    assert _compute(tickets, p90) == pytest.approx(38.4)  # 0 + 0.8 × 48
    # promised within the last 7 days (local 03-14 … 03-20): only T3, not planned → none
    assert _compute(tickets, dataclasses.replace(slip, window="7d")) is None
    # created → the first tell_client message delivered: T1 2, T2 6.5, T5 2.5 → 2.5
    assert kpis["to_message"]["value"] == pytest.approx(2.5)


def test_on_time_rate(tickets: Tickets) -> None:
    kpis = _values(tickets)
    # first send → answered_at within 2 h: T1 1 h yes; T2 6 h no; T5 2.5 h no; T3 never
    # answered and sent long ago: late; T4 never sent: not counted → 1 / 4
    assert kpis["answered_on_time"]["value"] == pytest.approx(25.0)
    drilled = _drill(tickets, "answered_on_time")
    assert [(tickets.name(r["id"]), r["value"]) for r in drilled["records"]] == [
        ("T3", None),
        ("T2", 6.0),
        ("T5", 2.5),
    ]
    # one hour after T3 was sent it is not late yet: T1, T2 (sent 03-03) only are counted
    on_time = _kpi(tickets, "answered_on_time")
    ctx = _Context(tickets.engine, tickets.app, local("2026-03-04 10:00"), tickets.metadata)  # type: ignore[arg-type]
    query = ctx.query(on_time)
    with tickets.engine.connect() as conn:  # type: ignore[attr-defined]
        assert query.finish(conn.execute(query.value_select()).first()) == pytest.approx(50.0)


def test_groups_target_and_drill_columns(tickets: Tickets) -> None:
    kpis = _values(tickets)
    hours = kpis["hours_by_client"]
    # all: 2 + 8 + 1 + 3 + 5 = 19 → red; target shown as declared
    assert hours["value"] == pytest.approx(19.0) and hours["status"] == "red"
    assert hours["target"] == 3.0
    # per client, highest first ("<= 5" is green: high is bad), top 2: A 10 (red), blank 5
    assert hours["groups"] == [
        {"key": tickets.clients["A"], "label": "A", "value": 10.0, "status": "red"},
        {"key": None, "label": "—", "value": 5.0, "status": "green"},
    ]
    big = kpis["big_by_kind"]
    # hours > 2: T2 8, T4 3, T5 5 of 5 → 60; per kind, lowest first (">= 50" is green):
    # bug (T1 2) 0 %, ask (T2 T3 T4 T5) 3/4
    assert big["value"] == pytest.approx(60.0)
    assert big["groups"] == [
        {"key": "bug", "label": "Bug", "value": 0.0, "status": "red"},
        {"key": "ask", "label": "Question", "value": 75.0, "status": "green"},
    ]
    assert kpis["first_pass"]["groups"] is None and kpis["first_pass"]["target"] is None
    drilled = _drill(tickets, "first_pass")
    assert drilled["columns"] == [
        {"name": "client", "label": "Client"},
        {"name": "promised", "label": "Promised"},
        {"name": "kind", "label": "Kind"},
    ]
    assert [r["fields"] for r in drilled["records"]] == [
        {"client": "B", "promised": "2026-03-20", "kind": "Question"},
        {"client": "A", "promised": "2026-03-10", "kind": "Question"},
    ]
    assert _drill(tickets, "sent_twice")["records"][0]["fields"] == {}


def test_event_lookups_have_their_indexes(tmp_path: Path) -> None:
    result = compile_app(write_app(tmp_path / "app"))
    assert result.app is not None
    events = build_metadata(result.app).tables["sl_events"]
    names = {index.name for index in events.indexes}
    # a partial index pair per (form, event): (record_id, at, id) and (at, record_id, id)
    assert {
        "ix_sl_events_kpi_in_ticket_returned_rec",  # entered()
        "ix_sl_events_kpi_in_ticket_returned_at",
        "ix_sl_events_kpi_tr_ticket_send_rec",  # fired(), from: {transition}
        "ix_sl_events_kpi_nt_ticket_tell_client_rec",  # to: {notified}
        "ix_sl_events_kpi_fc_ticket_changed_hours_kind_at",  # count: {field_changed}: the
        "ix_sl_events_kpi_fc_ticket_changed_hours_kind_rec",  # set of fields in one index
    } <= names


# ---------------------------------------------------------------------------- validator
def _dashboard(kpi: str) -> str:
    return "title: D\nkpis:\n  k:\n    title: K\n    form: ticket\n" + kpi


def _diagnose(tmp_path: Path, kpi: str) -> tuple[list[tuple], list]:
    result = compile_app(write_app(tmp_path / "app", _dashboard(kpi)))
    assert result.app is None
    return codes(result), result.diagnostics.sorted()


@pytest.mark.parametrize(
    ("kpi", "line", "col", "code", "hint"),
    [
        # positions inside the expression: the argument named
        ('    measure: count\n    where: "entered(\'retuned\')"\n', 7, 21, "unknown-state",
         "did you mean 'returned'?"),
        ('    measure: count\n    where: "fired(\'sned\') > 1"\n', 7, 19, "unknown-transition",
         "did you mean 'send'?"),
        ('    measure: count\n    where: "entered(code)"\n', 7, 21, "not-sql", None),
        ("    measure: median_hours\n    from: {created: true}\n    to: {notified: tell_clinet}\n",
         8, 20, "unknown-automation", "did you mean 'tell_client'?"),
        ("    measure: median_hours\n    from: {created: true}\n    to: {field: code}\n",
         8, 17, "not-a-date", None),
        ("    measure: median_hours\n    from: {field: promised}\n    to: {field: answered_at}\n",
         8, 9, "date-vs-time", None),
        ("    measure: per_record\n    count: {rows: notez}\n", 7, 19, "unknown-child",
         "did you mean 'notes'?"),
        ("    measure: per_record\n    count: {field_changed: [hours, huors]}\n", 7, 36,
         "unknown-field", "did you mean 'hours'?"),
        ("    measure: per_record\n    count: {state_entered: done, rows: notes}\n", 7, 12,
         "bad-kpi-count", None),
        ("    measure: count\n    group_by: clinet\n", 7, 15, "unknown-field",
         "did you mean 'client'?"),
        ("    measure: count\n    group_by: notes\n", 7, 15, "bad-kpi-field", None),
        ("    measure: count\n    drill: {columns: [code, promissed]}\n", 7, 29,
         "unknown-field", "did you mean 'promised'?"),
        ("    measure: count\n    within_hours: 2\n", 7, 5, "kpi-key-unused", None),
        ("    measure: count\n    top: 3\n", 7, 5, "kpi-key-unused", None),
        ("    measure: distinct_count\n", 6, 14, "missing-key", None),
    ],
)  # fmt: skip
def test_validator_points_at_unknown_names(
    tmp_path: Path, kpi: str, line: int, col: int, code: str, hint: str | None
) -> None:
    found, diagnostics = _diagnose(tmp_path, kpi)
    assert ("tickets.yaml", line, col, code) in found, found
    diagnostic = next(d for d in diagnostics if d.code == code)
    assert diagnostic.hint is not None and diagnostic.hint.zh and diagnostic.message.zh
    if hint is not None:
        assert diagnostic.hint.en == hint


def test_schema_refuses_unknown_measures_and_keys(tmp_path: Path) -> None:
    found, diagnostics = _diagnose(tmp_path, "    measure: median\n    grop_by: client\n")
    assert [c[1:3] for c in found] == [(6, 14), (7, 5)], found
    assert all(d.hint is not None and d.hint.zh for d in diagnostics)
    hints = " ".join(d.hint.en for d in diagnostics if d.hint)
    assert "group_by" in hints


def test_validator_refuses_entered_in_child_row_conditions(tmp_path: Path) -> None:
    found, _ = _diagnose(
        tmp_path, "    measure: per_record\n    count: {rows: notes, where: \"entered('x')\"}\n"
    )
    assert any(c[3] == "expr-unknown-function" for c in found), found
