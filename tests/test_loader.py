"""The YAML loader: positions, duplicate keys, YAML 1.1 booleans, aliases, syntax errors."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.loader import MAX_FILE_BYTES, load_yaml_text
from engine.model.diagnostics import Diagnostics, render_text


def load(text: str) -> tuple[object, Diagnostics]:
    diags = Diagnostics()
    doc = load_yaml_text("f.yaml", text, diags)
    return doc, diags


def only(diags: Diagnostics) -> tuple[int, int, str]:
    assert len(diags.items) == 1, [d.headline() for d in diags.items]
    d = diags.items[0]
    return d.line, d.col, d.code


def test_positions_of_keys_and_values() -> None:
    doc, diags = load("title: x\nfields:\n  qty:\n    type: integer\n")
    assert not diags.items
    assert doc.key_mark(("fields", "qty")) == (3, 3) or doc.key_mark(("fields", "qty")).line == 3
    assert doc.mark(("fields", "qty", "type")).line == 4
    assert doc.mark(("fields", "qty", "type")).col == 11


def test_duplicate_key_is_an_error_at_the_second_key() -> None:
    _, diags = load("fields:\n  qty: 1\n  name: 2\n  qty: 3\n")
    assert only(diags) == (4, 3, "yaml-duplicate-key")
    assert "line 2" in diags.items[0].message.en


def test_yaml11_booleans_stay_text_and_are_remembered() -> None:
    doc, diags = load("options: [yes, no, on, off]\non: created\nflag: true\n")
    assert not diags.items
    assert doc.data == {"options": ["yes", "no", "on", "off"], "on": "created", "flag": True}
    assert doc.yaml11_bools == {("options", 0), ("options", 1), ("options", 2), ("options", 3)}


def test_core_schema_scalars() -> None:
    doc, _ = load("a: 010\nb: 2026-10-01\nc: ~\nd: 1.5\ne: '7'\nf: 0x1F\ng: 1:30\n")
    assert doc.data == {
        "a": 10,
        "b": "2026-10-01",
        "c": None,
        "d": 1.5,
        "e": "7",
        "f": 31,
        "g": "1:30",
    }


def test_alias_and_anchor_are_refused() -> None:
    _, diags = load("a: &x [1, 2]\nb: *x\n")
    assert only(diags) == (1, 4, "yaml-alias")


def test_alias_bomb_is_refused_without_expanding() -> None:
    bomb = 'a: &a ["lol","lol"]\n' + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    doc, diags = load(bomb)
    assert doc is None
    assert diags.items[0].code == "yaml-alias"


def test_custom_tags_are_refused() -> None:
    _, diags = load("x: !!python/object/apply:os.system ['ls']\n")
    assert only(diags)[2] == "yaml-tag"


def test_syntax_error_has_position_and_context_lines() -> None:
    text = "title: x\nfields:\n  a: 1\n b: 2\n"
    doc, diags = load(text)
    assert doc is None
    line, _col, code = only(diags)
    assert (line, code) == (4, "yaml-syntax")
    rendered = render_text(diags.items, {"f.yaml": text})
    assert "  2 | fields:" in rendered and "  4 |  b: 2" in rendered and "^" in rendered


def test_tab_indentation_hint() -> None:
    _, diags = load("a:\n\tb: 1\n")
    d = diags.items[0]
    assert (d.line, d.col) == (2, 1) and "a tab is used for indentation" in d.message.en
    assert d.hint is not None and "replace the tab with 2 spaces" in d.hint.en


def test_file_size_is_bounded() -> None:
    _, diags = load("a: '" + "x" * (MAX_FILE_BYTES + 1) + "'\n")
    assert only(diags) == (1, 1, "yaml-too-large")


def test_nesting_depth_is_bounded() -> None:
    _, diags = load("a: " + "[" * 60 + "]" * 60 + "\n")
    assert diags.items and diags.items[0].code == "yaml-too-deep"


def test_two_documents_in_one_file() -> None:
    _, diags = load("a: 1\n---\nb: 2\n")
    assert only(diags)[2] == "yaml-syntax"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "：中文&*!|>-[]{}", max_size=200))
def test_junk_never_raises(text: str) -> None:
    diags = Diagnostics()
    load_yaml_text("junk.yaml", text, diags)  # must not raise, whatever the input
    for d in diags.items:
        assert d.line >= 1 and d.col >= 1
