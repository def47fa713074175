"""app.yaml's tracking: section — what compiles, and every mistake at its line with a hint."""

from __future__ import annotations

from collections.abc import Callable

from conftest import codes

from engine.compile import CompileResult

APP = """\
name: t
title: Test app
locale: zh-CN
calendar: cn
roles:
  clerk: {label: Clerk}
connectors:
  chat: {type: wecom, url_env: CHAT_WEBHOOK}
  stock: {type: http, base_url_env: STOCK_URL, operations: {get: {method: GET, path: /x}}}
tracking:
  contacts: {form: client, phone: mobile, channel: chat_id}
  records:
    form: job
    contact: client
    number: ref_no
    show: [%(show)s]
  code: {via: %(via)s, template: messages/code.md, visible_to: [clerk]}
%(extra)s"""

FORMS = {
    "forms/client.yaml": """\
title: Client
fields:
  name: {type: text, label: Name}
  mobile: {type: phone, label: Mobile}
  chat_id: {type: text, label: Chat id}
""",
    "forms/job.yaml": """\
title: Job
title_field: ref_no
fields:
  ref_no: {type: autonumber, label: No., format: "J-{seq:4}"}
  client: {type: ref, label: Client, form: client}
  due: {type: date, label: Due}
  price: {type: money, label: Price}
  notes: {type: long_text, label: Notes}
""",
    "flows/job.yaml": """\
form: job
states:
  open: {label: Open, initial: true}
  done: {label: Done, final: true}
transitions:
  finish: {label: Finish, from: open, to: done}
""",
    "templates/messages/code.md": "### Code\nYour code is {{ code }}.\n",
}


def build(
    make_app: Callable[..., CompileResult], show: str = "due", via: str = "chat", extra: str = ""
) -> CompileResult:
    app = APP % {"show": show, "via": via, "extra": extra}
    return make_app({"app.yaml": app, **FORMS})


def test_a_tracking_section_compiles(make_app: Callable[..., CompileResult]) -> None:
    result = build(make_app)
    assert result.ok, result.diagnostics.sorted()
    spec = result.app.tracking if result.app else None
    assert spec is not None
    assert (spec.contact_form, spec.record_form, spec.contact_ref) == ("client", "job", "client")
    assert spec.verify == "code" and spec.via == "chat" and spec.code_minutes == 5
    assert spec.max_attempts == 5 and spec.per_phone.count == 3 and spec.show == ("due",)


def test_prices_and_notes_are_refused_at_their_line(make_app: Callable[..., CompileResult]) -> None:
    result = build(make_app, show="due, price, notes, client")
    found = [c for c in codes(result) if c[3] == "not-public"]
    assert [(f, line) for f, line, _col, _code in found] == [("app.yaml", 16)] * 3
    message = next(d for d in result.diagnostics.sorted() if d.code == "not-public")
    assert message.hint is not None and "价格" in message.hint.zh and "prices" in message.hint.en


def test_unknown_names_and_wrong_connectors(make_app: Callable[..., CompileResult]) -> None:
    result = build(make_app, show="du", via="stock", extra="  verify: code\n")
    found = {(line, code) for _f, line, _c, code in codes(result)}
    assert (16, "unknown-field") in found  # did you mean 'due'?
    assert (17, "bad-connector") in found
    hint = next(d.hint for d in result.diagnostics.sorted() if d.code == "unknown-field")
    assert hint is not None and "due" in hint.en


def test_code_mode_needs_a_code_section(make_app: Callable[..., CompileResult]) -> None:
    app = APP.replace(
        "  code: {via: %(via)s, template: messages/code.md, visible_to: [clerk]}\n", ""
    )
    result = make_app({"app.yaml": app % {"show": "due", "extra": ""}, **FORMS})
    assert ("app.yaml", 10, 1, "missing-key") in codes(result)  # at "tracking:"
    suffix = app % {"show": "due", "extra": "  verify: order_suffix\n"}
    assert make_app({"app.yaml": suffix, **FORMS}).ok


def test_typos_and_states(make_app: Callable[..., CompileResult]) -> None:
    extra = "  verfy: code\n  records_x: 1\n"
    result = build(make_app, extra=extra)
    assert {c[3] for c in codes(result)} >= {"unknown-key"}
    bad_state = APP.replace(
        "    show: [%(show)s]\n", "    show: [%(show)s]\n    hide_states: [opn]\n"
    )
    result = make_app(
        {"app.yaml": bad_state % {"show": "due", "via": "chat", "extra": ""}, **FORMS}
    )
    assert ("app.yaml", 17, 19, "unknown-state") in codes(result)


def _staged(make_app: Callable[..., CompileResult], stages: str) -> CompileResult:
    app = APP.replace("    show: [%(show)s]\n", "    show: [%(show)s]\n" + stages)
    return make_app({"app.yaml": app % {"show": "due", "via": "chat", "extra": ""}, **FORMS})


def test_stages_map_every_state_once(make_app: Callable[..., CompileResult]) -> None:
    result = _staged(make_app, "    stages:\n      进行中: [open]\n      已完成: [done]\n")
    assert result.ok, result.diagnostics.sorted()
    spec = result.app.tracking if result.app else None
    assert spec is not None and spec.stages == (("进行中", ("open",)), ("已完成", ("done",)))
    assert spec.stage_of("done") == "已完成" and spec.stage_of("nope") is None
    hidden = _staged(make_app, "    hide_states: [open]\n    stages: {已完成: [done]}\n")
    assert hidden.ok, hidden.diagnostics.sorted()


def test_an_unknown_state_in_a_stage_is_named_with_a_suggestion(
    make_app: Callable[..., CompileResult],
) -> None:
    result = _staged(make_app, "    stages:\n      进行中: [open]\n      已完成: [dnoe]\n")
    assert ("app.yaml", 19, 13, "unknown-state") in codes(result)  # at 'dnoe'
    found = next(d for d in result.diagnostics.sorted() if d.code == "unknown-state")
    assert found.hint is not None and "done" in found.hint.en
    # and 'done' itself is then in no stage
    unmapped = next(d for d in result.diagnostics.sorted() if d.code == "unmapped-state")
    assert "done" in unmapped.message.en and "done" in unmapped.message.zh


def test_a_state_missing_from_the_stages_is_an_error_naming_it(
    make_app: Callable[..., CompileResult],
) -> None:
    result = _staged(make_app, "    stages:\n      进行中: [open]\n")
    assert [c for c in codes(result) if c[3] == "unmapped-state"] == [
        ("app.yaml", 17, 5, "unmapped-state")  # at 'stages:'
    ]
    found = next(d for d in result.diagnostics.sorted() if d.code == "unmapped-state")
    assert "'done'" not in found.message.en and "done" in found.message.en
    assert found.hint is not None and "hide_states" in found.hint.en
    twice = _staged(make_app, "    stages:\n      进行中: [open]\n      已完成: [done, open]\n")
    assert ("app.yaml", 19, 19, "duplicate-state") in codes(twice)
    assert not _staged(make_app, "    stages: {}\n").ok  # a mapping with no stage is refused


def test_stages_with_colours(make_app: Callable[..., CompileResult]) -> None:
    """A stage is a list of states or {states: [...], color: …}; both forms mix."""
    result = _staged(
        make_app,
        "    stages:\n      进行中: {states: [open], color: blue}\n      已完成: [done]\n",
    )
    assert result.ok, result.diagnostics.sorted()
    spec = result.app.tracking if result.app else None
    assert spec is not None and spec.stages == (("进行中", ("open",)), ("已完成", ("done",)))
    assert spec.color_of("进行中") == "blue" and spec.color_of("已完成") == "grey"
    assert spec.color_of(None) == "grey"
    # an unknown state inside the mapping form is named at its own line and column
    typo = _staged(make_app, "    stages:\n      进行中: {states: [open, dnoe], color: blue}\n")
    assert ("app.yaml", 18, 28, "unknown-state") in codes(typo)
    # a colour that is not one of the badge colours, and a stage without states, are refused
    for bad in (
        "    stages: {进行中: {states: [open, done], color: pink}}\n",
        "    stages: {进行中: {color: blue}}\n",
        "    stages: {进行中: {states: [open, done], colour: blue}}\n",
    ):
        refused = _staged(make_app, bad)
        assert not refused.ok and all(c[1] == 17 for c in codes(refused)), codes(refused)
