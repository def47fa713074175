"""Plain words for YAML traps and text formats, in English and Chinese, at the exact place.

Each trap is one realistic edit of one line of the manufacturing pack: the error is the only
error of the pack, at its file:line:col, says what is wrong and gives the line that fixes it.
No message ever shows a regular expression, a Python repr or PyYAML's own words.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.compile import CompileResult, compile_app
from engine.config.formats import FORMATS
from engine.config.schemas import KINDS, schema_for
from engine.model.diagnostics import Diagnostic, render_text

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"
FORM = "forms/order.yaml"
DASH = "dashboards/order_health.yaml"
APP = "app.yaml"
LABEL = "    label: 需求数量\n"  # forms/order.yaml line 30, the quantity field's label
MIN_MAX = "    min: 1\n    max: 1000000\n"  # lines 32-33

Edit = Callable[..., CompileResult]


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("words") / "pack"
    shutil.copytree(PACK, root)
    return root


@pytest.fixture
def edit(pack: Path) -> Iterator[Edit]:
    """``edit(file, old, new)``: compile the pack with the first ``old`` replaced; undone after."""
    saved: dict[Path, str] = {}

    def run(rel: str, old: str, new: str) -> CompileResult:
        target = pack / rel
        text = saved.setdefault(target, target.read_text(encoding="utf-8"))
        assert old in text, old
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        return compile_app(pack)

    yield run
    for target, text in saved.items():
        target.write_text(text, encoding="utf-8")


def only_error(result: CompileResult) -> Diagnostic:
    errors = [d for d in result.diagnostics.sorted() if d.severity == "error"]
    assert len(errors) == 1, [d.headline() for d in errors]
    return errors[0]


def where(d: Diagnostic) -> tuple[str, int, int]:
    return (d.path.split("/pack/")[-1], d.line, d.col)


def words(d: Diagnostic, lang: str) -> str:
    return d.headline(lang)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the pack is clean


def test_the_pack_has_no_errors(edit: Edit) -> None:
    result = edit(FORM, LABEL, LABEL)
    assert [d.headline() for d in result.diagnostics.errors] == []


# ---------------------------------------------------------------------------- YAML syntax traps

TRAPS: list[tuple[str, str, str, str, tuple[int, int], list[str], list[str]]] = [
    # (name, file, old, new, (line, col), English words, Chinese words)
    (
        "tab indentation",
        FORM,
        LABEL,
        "\tlabel: 需求数量\n",
        (30, 1),
        ["a tab is used for indentation", "replace the tab with 4 spaces", "'type' (line 29)"],
        ["Tab 缩进", "换成 4 个空格"],
    ),
    (
        "tab inside a line",
        FORM,
        LABEL,
        "    label: 需求\t数量\n",
        (30, 14),
        ["a tab inside a line"],
        ["行内有 Tab"],
    ),
    (
        "full-width colon",
        FORM,
        LABEL,
        "    label：需求数量\n",
        (30, 10),
        ["full-width colon '：' after 'label'", "write `label: 需求数量`"],
        ["全角冒号", "请改成 `label: 需求数量`"],
    ),
    (
        "full-width space after the colon",
        FORM,
        LABEL,
        "    label:\u3000需求数量\n",
        (30, 11),
        ["full-width space after 'label:'", "write `label: 需求数量`"],
        ["全角空格", "`label: 需求数量`"],
    ),
    (
        "full-width spaces as indentation",
        FORM,
        LABEL,
        "\u3000\u3000label: 需求数量\n",
        (30, 1),
        ["full-width spaces in the indentation"],
        ["缩进里有全角空格"],
    ),
    (
        "full-width quotes around a value with ': '",
        FORM,
        LABEL,
        "    label: “需求: 数量”\n",
        (30, 12),
        ["full-width quote '“'", 'write `label: "需求: 数量"`'],
        ["全角引号", '`label: "需求: 数量"`'],
    ),
    (
        "unquoted ': ' in a value",
        FORM,
        LABEL,
        "    label: 需求: 数量\n",
        (30, 14),
        ["the value of 'label' contains ': '", 'put the value in quotes: `label: "需求: 数量"`'],
        ["'label' 的值里有 ': '", '请给值加上引号：`label: "需求: 数量"`'],
    ),
    (
        "unit: %",
        DASH,
        '    unit: "%"\n',
        "    unit: %\n",
        (29, 11),
        ["the value of 'unit' starts with '%'", 'put the value in quotes: `unit: "%"`'],
        ["'unit' 的值以 '%' 开头，这是 YAML 的保留字符", '`unit: "%"`'],
    ),
    (
        "a value starting with @",
        FORM,
        LABEL,
        "    label: @需求数量\n",
        (30, 12),
        ["starts with '@'", '`label: "@需求数量"`'],
        ["保留字符"],
    ),
    (
        "a value starting with a backtick",
        FORM,
        LABEL,
        "    label: `需求数量\n",
        (30, 12),
        ["starts with '`'"],
        ["保留字符"],
    ),
    (
        "a value starting with |",
        FORM,
        LABEL,
        "    label: |需求数量\n",
        (30, 12),
        ["starts with '|', which starts a block of text"],
        ["多行文本块"],
    ),
    (
        "a value starting with [ and going on",
        FORM,
        LABEL,
        "    label: [紧急] 需求数量\n",
        (30, 12),
        ["starts with '['", '`label: "[紧急] 需求数量"`'],
        ["列表的开始"],
    ),
    (
        "an unclosed quote",
        FORM,
        LABEL,
        '    label: "需求数量\n',
        (30, 12),
        ['the " opened here is never closed'],
        ["没有闭合"],
    ),
    (
        "a key indented deeper than the one above",
        FORM,
        MIN_MAX,
        "    min: 1\n      max: 1000000\n",
        (33, 7),
        [
            "'max' at column 7 looks mis-indented",
            "read as part of the value of 'min'",
            "indent it like 'min' (column 5, line 32)",
        ],
        ["第 7 列的 'max' 缩进似乎不对", "'min'"],
    ),
    (
        "a key between two levels",
        FORM,
        MIN_MAX,
        "    min: 1\n   max: 1000000\n",
        (33, 4),
        ["'max' at column 4 looks mis-indented", "neither with 'min' (column 5)", "'quantity'"],
        ["第 4 列的 'max' 缩进似乎不对"],
    ),
    (
        "a key at column 1 inside a block",
        FORM,
        MIN_MAX,
        "    min: 1\nmax: 1000000\n",
        (33, 1),
        ["'max' at column 1 looks mis-indented", "indent it like 'min' (column 5, line 32)"],
        ["第 1 列的 'max' 缩进似乎不对"],
    ),
    (
        "the first key of a block at the block's own column",
        FORM,
        "  quantity:\n    type: integer\n",
        "  quantity:\n  type: integer\n",
        (29, 3),
        ["'type' at column 3 looks mis-indented", "'quantity' above it opens a block"],
        ["'quantity' 开始了一个块"],
    ),
    (
        "an indented first line",
        FORM,
        "title: 销售订单\n",
        "  title: 销售订单\n",
        (4, 3),
        ["'title' at column 3 looks mis-indented", "remove the 2 space(s) before 'title'"],
        ["请删除 'title' 前面的 2 个空格"],
    ),
    (
        "a key moved out of its field (schema: expected a mapping, got the number)",
        FORM,
        MIN_MAX,
        "    min: 1\n  max: 1000000\n",
        (33, 3),
        [
            "'max' at column 3 looks mis-indented",
            "a new entry of 'fields', not as a key of 'quantity'",
            "indent it like 'min' (column 5, line 32)",
        ],
        ["'fields' 的新一项", "'quantity' 的键"],
    ),
    (
        "a key moved out of its KPI (schema: missing 'title')",
        DASH,
        "    drill: {columns: [customer, order_type, channel]}\n",
        "  drill: {columns: [customer, order_type, channel]}\n",
        (21, 3),
        ["'drill' at column 3 looks mis-indented", "not as a key of 'first_response_hours'"],
        ["'kpis' 的新一项"],
    ),
    # ------------------------------------------------------------------------ formats
    (
        "a date written with slashes",
        APP,
        "  holidays: []\n",
        "  holidays: [2026/12/31]\n",
        (19, 14),
        ["'2026/12/31' is not a date written YYYY-MM-DD", "write YYYY-MM-DD: 2026-12-31"],
        ["请写成 YYYY-MM-DD：2026-12-31"],
    ),
    (
        "a threshold with ≤",
        DASH,
        '    green: "<= 1"\n',
        '    green: "≤ 1"\n',
        (18, 12),
        ["'≤ 1' is not a threshold", 'write e.g. "<= 1"'],
        ["不是阈值", '"<= 1"'],
    ),
    (
        "a threshold without its comparison",
        DASH,
        '    green: "<= 1"\n',
        "    green: 1\n",
        (18, 12),
        ['write e.g. "<= 1" or ">= 1"'],
        ['"<= 1" 或 ">= 1"'],
    ),
    (
        "a window in words",
        DASH,
        "    window: 30d\n    unit: 小时\n",
        "    window: month\n    unit: 小时\n",
        (15, 13),
        ["'month' is not a time window", "write today, all, this_month or a number of days"],
        ["不是时间窗口", "30d"],
    ),
    (
        "a window without its d",
        DASH,
        "    window: 30d\n    unit: 小时\n",
        "    window: 30\n    unit: 小时\n",
        (15, 13),
        ["a number of days like 30d"],
        ["例如 30d"],
    ),
]


@pytest.mark.parametrize(
    ("rel", "old", "new", "at", "en", "zh"),
    [t[1:] for t in TRAPS],
    ids=[t[0] for t in TRAPS],
)
def test_trap_in_plain_words(
    edit: Edit,
    rel: str,
    old: str,
    new: str,
    at: tuple[int, int],
    en: list[str],
    zh: list[str],
) -> None:
    d = only_error(edit(rel, old, new))
    assert where(d) == (rel, *at), d.headline()
    english, chinese = words(d, "en"), words(d, "zh")
    for part in en:
        assert part in english, english
    for part in zh:
        assert part in chinese, chinese
    assert_plain(english)
    assert_plain(chinese)


@pytest.mark.parametrize(
    ("rel", "old", "new"),
    [
        (FORM, LABEL, '    label: "需求: 数量"\n'),
        (FORM, LABEL, "    label: 需求：数量\n"),  # a full-width colon inside a value is text
        (FORM, LABEL, "    label: 需求　数量\n"),
        (DASH, '    unit: "%"\n', "    unit: '%'\n"),
        (DASH, '    green: "<= 1"\n', "    green: <= 1\n"),
        (DASH, "    window: 30d\n    unit: 小时\n", "    window: this_month\n    unit: 小时\n"),
        (APP, "  holidays: []\n", "  holidays: [2026-12-31]\n"),
    ],
    ids=[
        "quoted colon",
        "full-width colon in text",
        "full-width space in text",
        "quoted %",
        "plain <=",
        "this_month",
        "ISO date",
    ],
)
def test_the_fixed_line_is_clean(edit: Edit, rel: str, old: str, new: str) -> None:
    result = edit(rel, old, new)
    assert [d.headline() for d in result.diagnostics.errors] == []


def test_cron_with_four_parts(make_app: Any) -> None:
    flow = (
        "form: item\nstates:\n  open: {label: Open, initial: true}\n"
        "automations:\n  daily:\n    on: {schedule: '0 8 * *'}\n"
        "    steps:\n      - set: {name: \"'x'\"}\n"
    )
    result = make_app(
        {
            "forms/item.yaml": "title: Item\nfields:\n  name: {type: text, label: Name}\n",
            "flows/item.yaml": flow,
        }
    )
    errors = result.diagnostics.errors
    assert [(Path(d.path).name, d.line, d.col) for d in errors] == [("item.yaml", 6, 20)]
    assert (
        "has 4 parts, needs 5: minute hour day-of-month month day-of-week" in errors[0].headline()
    )
    assert "`0 8 * * 1-5`" in errors[0].headline()
    assert "有 4 段，需要 5 段" in errors[0].headline("zh")


@pytest.mark.parametrize(
    ("schedule", "en", "zh"),
    [
        ("61 8 * * *", "'61' is not a valid minute (0–59)", "'61' 不是有效的分（0–59）"),
        ("0 25 * * 1-5", "'25' is not a valid hour (0–23)", "'25' 不是有效的时（0–23）"),
        ("0 8 * * 1-9", "'9' is not a valid day of the week (0–7)", "不是有效的星期"),
        ("0 8 31 2 *", "never comes round: month 2 has no day 31", "2 月没有 31 日"),
    ],
)
def test_a_cron_part_out_of_range_is_named(make_app: Any, schedule: str, en: str, zh: str) -> None:
    flow = (
        "form: item\nstates:\n  open: {label: Open, initial: true}\n"
        f"automations:\n  daily:\n    on: {{schedule: '{schedule}'}}\n"
        "    steps:\n      - set: {name: \"'x'\"}\n"
    )
    result = make_app(
        {
            "forms/item.yaml": "title: Item\nfields:\n  name: {type: text, label: Name}\n",
            "flows/item.yaml": flow,
        }
    )
    errors = result.diagnostics.errors
    assert [(Path(d.path).name, d.line, d.code) for d in errors] == [("item.yaml", 6, "bad-cron")]
    assert en in errors[0].headline() and zh in errors[0].headline("zh")
    assert_plain(errors[0].headline())
    assert "Bad " not in errors[0].headline()  # the cron parser's own words


# ---------------------------------------------------------------------------- never raw words

FORBIDDEN = (
    "^(",
    "\\d",
    "$'",
    "{'",
    "', '",
    "datetime.",
    "while scanning",
    "while parsing",
    "mapping values are not allowed",
    "could not find expected",
    "cannot start any token",
    "<block",
    "<document",
    "<scalar>",
    "must match",
)


def assert_plain(text: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, (bad, text)


CORPUS = [(t[1], t[2], t[3]) for t in TRAPS] + [
    (FORM, LABEL, "    label: 需求数量 \x07\n"),
    (FORM, LABEL, "    label: {type: integer\n"),
    (FORM, LABEL, "    label: [a, b: c]\n"),
    (FORM, LABEL, "    label: 需求数量\n---\n"),
    (FORM, LABEL, "    label 需求数量\n"),
    (FORM, LABEL, "    label: *需求\n"),
    (FORM, LABEL, "    label: !需求\n"),
    (FORM, LABEL, "    label: - 需求\n"),
    (FORM, "    type: integer\n    label", "    type: {a: 1}\n    label"),
    (FORM, "    type: integer\n    label", "    type: [integer]\n    label"),
    (APP, "calendar:\n  base: cn\n", "calendar:\n  base: [cn]\n"),
    (APP, "  holidays: []\n", "  holidays: [2026/12/31, 2027.1.1]\n"),
    (APP, 'business_hours: ["08:30-12:00"', 'business_hours: ["8:30-12:00"'),
    (APP, "    token_env: WMS_TOKEN\n", "    token_env: wms-token\n"),
    (APP, '    base_url_default: "http://127.0.0.1:8765"\n', '    base_url_default: "127.0.0.1"\n'),
    (APP, "        path: /api/stock/{sku}\n", "        path: api/stock/{sku}\n"),
    (APP, "people: data/people.csv\n", "people: data/people.xlsx\n"),
    (FORM, '    format: "SO-{yyyy}{mm}-{seq:5}"\n', '    format: "SO-{yyyy}{mm}"\n'),
    (FORM, "    accept: [.jpg,", "    accept: [jpg,"),
    (FORM, "  quantity:\n", "  Quantity:\n"),
    (DASH, '    green: "<= 1"\n', "    green: [1]\n"),
    (DASH, "    window: 30d\n    unit: 小时\n", "    window: {days: 30}\n    unit: 小时\n"),
]


def test_no_regex_repr_or_parser_words_anywhere(edit: Edit) -> None:
    for rel, old, new in CORPUS:
        result = edit(rel, old, new)
        items = result.diagnostics.sorted()
        assert items, (rel, new)
        for lang in ("en", "zh"):
            text = render_text(items, result.workspace.sources, lang)  # type: ignore[arg-type]
            assert_plain(text)


def test_every_schema_pattern_has_plain_words() -> None:
    def patterns(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str) and node.get("type") != "object":
                yield node["pattern"]
            for key, value in node.items():
                if key != "properties" or isinstance(value, dict):
                    yield from patterns(value)
        elif isinstance(node, list):
            for item in node:
                yield from patterns(item)

    used = {p for kind in KINDS for p in patterns(schema_for(kind))}
    # A field's own `pattern:` key documents a regex the person writes; it is not a schema one.
    assert used and used <= set(FORMATS), used - set(FORMATS)


def test_min_and_max_of_fields_follow_the_field_type() -> None:
    field = schema_for("form")["definitions"]["field"]
    by_type = {
        b["if"]["properties"]["type"]["const"]: b["then"]["properties"] for b in field["allOf"]
    }
    assert by_type["integer"]["min"]["type"] == "integer"
    assert by_type["decimal"]["min"]["type"] == "number"
    assert by_type["money"]["max"]["type"] == "number"
    assert by_type["date"]["min"]["type"] == "string"
    assert "YYYY-MM-DD" in by_type["date"]["max"]["description"]
    assert "number" in by_type["decimal"]["max"]["description"]


# ---------------------------------------------------------------------------- long lines


def test_a_long_line_shows_a_window_around_the_caret(edit: Edit) -> None:
    long_label = "    label: " + "需" * 1500 + ": 数量" + "求" * 1500 + "\n"
    result = edit(FORM, LABEL, long_label)
    d = only_error(result)
    col = long_label.index(": 数量") + 1
    assert where(d) == (FORM, 30, col)
    text = render_text([d], result.workspace.sources)
    source, caret = text.splitlines()[-2:]
    assert len(source) < 120 and source.startswith("  30 | …") and source.endswith("…")
    # The caret sits under the ': ' even though every character before it is two cells wide.
    cells = sum(2 if ch in "需求" else 1 for ch in source[: source.index(": 数量")])
    assert caret.index("^") == cells


def test_a_short_line_is_shown_whole(edit: Edit) -> None:
    result = edit(FORM, LABEL, "    label: 需求: 数量\n")
    text = render_text(result.diagnostics.errors, result.workspace.sources)
    assert "  30 |     label: 需求: 数量" in text and "…" not in text
    caret = text.splitlines()[-1]
    assert caret.index("^") == caret.index("|") + 2 + len("    label: ") + 4
