"""Plain words for every text format the schemas ask for (their ``pattern``).

A schema pattern is a regular expression; people never see one. For each pattern there is a
function that, given the value that did not fit, says what it is not and the line that fixes
it, e.g. "the schedule '0 8 * *' has 4 parts, needs 5: minute hour day-of-month month
day-of-week" — "e.g. `0 8 * * 1-5`". ``tests/test_plain_words.py`` holds that every pattern of
every schema has its words here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from engine.config.schemas import (
    CRON_PATTERN,
    CURRENCY_PATTERN,
    DATE_PATTERN,
    ENV_NAME_PATTERN,
    EXTENSION_PATTERN,
    FIELD_PATH_PATTERN,
    HOURS_PATTERN,
    IDENT,
    PEOPLE_FILE_PATTERN,
    SEQ_PATTERN,
    THRESHOLD_PATTERN,
    URL_PATH_PATTERN,
    URL_PATTERN,
    WINDOW_PATTERN,
)
from engine.model.i18n import Text

Words = tuple[Text, Text]  # (what is wrong, how to fix it)

CRON_PARTS = Text(
    "minute hour day-of-month month day-of-week",
    "分 时 日 月 星期",
)


def shown(value: Any, limit: int = 60) -> str:
    """A value as it would be written in YAML (never a Python repr), cut to ``limit``."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = format(value, "g") if isinstance(value, float) else str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list):
        text = "[" + ", ".join(shown(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {shown(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name(value: str) -> Words:
    fixed = re.sub(r"[^a-z0-9_]+", "_", value.strip().lower()).strip("_")
    if fixed and not fixed[0].isalpha():
        fixed = "f_" + fixed
    example = Text(f" (e.g. {fixed})", f"（例如 {fixed}）") if fixed and fixed != value else None
    hint = Text(
        "use lowercase letters, digits and _, starting with a letter",
        "请使用小写字母、数字和下划线，并以字母开头",
    )
    return (
        Text(f"'{value}' is not a valid name", f"'{value}' 不是合法的名称"),
        hint + example
        if example is not None
        else hint + Text(" (e.g. unit_price)", "（例如 unit_price）"),
    )


_DATE_PARTS = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*$")


def _date(value: str) -> Words:
    found = _DATE_PARTS.match(value)
    example = (
        f"{found.group(1)}-{int(found.group(2)):02d}-{int(found.group(3)):02d}"
        if found
        else "2026-12-31"
    )
    return (
        Text(
            f"'{value}' is not a date written YYYY-MM-DD", f"'{value}' 不是 YYYY-MM-DD 格式的日期"
        ),
        Text(f"write YYYY-MM-DD: {example}", f"请写成 YYYY-MM-DD：{example}"),
    )


def _hours(value: str) -> Words:
    parts = re.findall(r"\d{1,2}[:：]\d{2}", value)
    example = "08:30-12:00"
    if len(parts) == 2:
        a, b = (p.replace("：", ":").zfill(5) for p in parts)
        example = f"{a}-{b}"
    return (
        Text(f"'{value}' is not a time range", f"'{value}' 不是时间段"),
        Text(
            f"write HH:MM-HH:MM with a 24-hour clock: {example}",
            f"请写成 24 小时制的 HH:MM-HH:MM：{example}",
        ),
    )


def _env(value: str) -> Words:
    looks_secret = bool(re.search(r"[:/]|\s|^[a-z0-9]{16,}$", value))
    fixed = re.sub(r"[^A-Z0-9_]+", "_", value.upper()).strip("_") or "WMS_TOKEN"
    if looks_secret or not fixed[0].isalpha():
        fixed = "WMS_TOKEN"
    return (
        Text(
            f"'{value}' is not the name of an environment variable",
            f"'{value}' 不是环境变量的名称",
        ),
        Text(
            f"give the NAME of a variable in capitals, e.g. {fixed}, and set the value there; "
            "addresses and secrets never go in YAML",
            f"请填写环境变量的名称（大写，例如 {fixed}），在环境变量里设置值；"
            "地址和密钥绝不写在 YAML 里",
        ),
    )


def _url(value: str) -> Words:
    return (
        Text(f"'{value}' is not a web address", f"'{value}' 不是网址"),
        Text(
            f"start it with http:// or https://: http://{value.lstrip('/')}",
            f"请以 http:// 或 https:// 开头：http://{value.lstrip('/')}",
        ),
    )


def _url_path(value: str) -> Words:
    return (
        Text(f"the path '{value}' does not start with /", f"路径 '{value}' 没有以 / 开头"),
        Text(f"write /{value}", f"请写成 /{value}"),
    )


def _people_file(value: str) -> Words:
    return (
        Text(f"'{value}' is not a CSV or YAML file", f"'{value}' 不是 CSV 或 YAML 文件"),
        Text(
            "save the org chart as .csv (or .yaml) and give that file, e.g. data/people.csv",
            "请把组织架构保存为 .csv（或 .yaml）文件并填写它，例如 data/people.csv",
        ),
    )


def _currency(value: str) -> Words:
    return (
        Text(f"'{value}' is not a currency code", f"'{value}' 不是货币代码"),
        Text(
            "write the three capital letters of the ISO code, e.g. CNY, USD, EUR",
            "请写三个大写字母的 ISO 代码，例如 CNY、USD、EUR",
        ),
    )


def _extension(value: str) -> Words:
    fixed = "." + re.sub(r"[^a-z0-9]", "", value.lower()) if value.strip(". ") else ".pdf"
    return (
        Text(f"'{value}' is not a file extension", f"'{value}' 不是文件扩展名"),
        Text(
            f"write it with a dot, in lowercase: {fixed}",
            f"请写成以点开头的小写形式：{fixed}",
        ),
    )


def _seq(value: str) -> Words:
    return (
        Text(
            f"the format '{value}' has no running number {{seq}}",
            f"编号格式 '{value}' 里没有流水号 {{seq}}",
        ),
        Text(
            "add {seq} or {seq:N} (N digits), e.g. SO-{yyyy}{mm}-{seq:5}",
            "请加上 {seq} 或 {seq:N}（N 位数字），例如 SO-{yyyy}{mm}-{seq:5}",
        ),
    )


def _field_path(value: str) -> Words:
    return (
        Text(f"'{value}' is not a field name", f"'{value}' 不是字段名"),
        Text(
            "write a field of the form, or a ref field and a field of its form joined by a "
            "dot, e.g. customer or product.category",
            "请写本表单的字段，或用点连接的引用字段与其表单的字段，例如 customer 或 "
            "product.category",
        ),
    )


def _cron(value: str) -> Words:
    parts = value.split()
    example = Text(
        "e.g. `0 8 * * 1-5` (8:00 on Monday to Friday)",
        "例如 `0 8 * * 1-5`（周一至周五 8:00）",
    )
    if len(parts) != 5:
        extra = (
            Text(" (seconds are not supported)", "（不支持秒）")
            if len(parts) == 6
            else Text("", "")
        )
        return (
            Text(
                f"the schedule '{value}' has {len(parts)} part{'s' if len(parts) != 1 else ''}, "
                f"needs 5: {CRON_PARTS.en}",
                f"定时表达式 '{value}' 有 {len(parts)} 段，需要 5 段：{CRON_PARTS.zh}",
            )
            + extra,
            example,
        )
    return (
        Text(
            f"the 5 parts of the schedule '{value}' must be separated by single spaces",
            f"定时表达式 '{value}' 的 5 段之间只能用一个空格分隔",
        ),
        Text(f"write `{' '.join(parts)}`", f"请写成 `{' '.join(parts)}`"),
    )


# (English name, Chinese name, lowest, highest) of the five parts of a cron schedule
_CRON_FIELDS = (
    ("minute", "分", 0, 59),
    ("hour", "时", 0, 23),
    ("day of the month", "日", 1, 31),
    ("month", "月", 1, 12),
    ("day of the week", "星期", 0, 7),
)
_CRON_NAMES = {
    3: ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    4: ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
}


def cron_words(value: str) -> Words:
    """Plain words for a five-part schedule the cron parser refused: which part, which value,
    the range it must be in (never the parser's own message)."""
    parts = value.split()
    if len(parts) != 5:
        return _cron(value)
    for index, (part, (en, zh, low, high)) in enumerate(zip(parts, _CRON_FIELDS, strict=True)):
        for piece in part.split(","):
            base, _, step = piece.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                return (
                    Text(
                        f"the {en} part '{part}' of '{value}' has the step '/{step}': "
                        "a step is a whole number from 1",
                        f"定时表达式 '{value}' 的{zh}段 '{part}' 的步长 '/{step}' 须为不小于 1 "
                        "的整数",
                    ),
                    Text("e.g. `*/15` for every 15", "例如 `*/15` 表示每 15 个单位"),
                )
            for bound in ("" if base in ("*", "?") else base).split("-"):
                if not bound:
                    continue
                if bound.lower() in _CRON_NAMES.get(index, ()):
                    continue
                if not bound.isdigit() or not low <= int(bound) <= high:
                    return (
                        Text(
                            f"the {en} part of the schedule '{value}' is '{part}': "
                            f"'{bound}' is not a valid {en} ({low}–{high})",
                            f"定时表达式 '{value}' 的{zh}段是 '{part}'：'{bound}' 不是有效的{zh}"
                            f"（{low}–{high}）",
                        ),
                        Text(
                            f"write a number from {low} to {high}, a range like {low}-{high}, "
                            "a list like 1,15 or * for every one",
                            f"请写 {low} 到 {high} 之间的数、区间如 {low}-{high}、列表如 1,15，"
                            "或用 * 表示每一个",
                        ),
                    )
    day, month = parts[2], parts[3]
    if (
        day.isdigit()
        and month.isdigit()
        and int(day) > (29, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[int(month)]
    ):
        return (
            Text(
                f"the schedule '{value}' never comes round: month {month} has no day {day}",
                f"定时表达式 '{value}' 永远不会触发：{month} 月没有 {day} 日",
            ),
            Text("check the day of the month against the month", "请核对日期与月份是否相符"),
        )
    return (
        Text(
            f"the schedule '{value}' is not understood",
            f"无法理解定时表达式 '{value}'",
        ),
        Text(
            f"in each of the 5 parts ({CRON_PARTS.en}) write a number, a range like 1-5, a list "
            "like 1,15, a step like */15 or * — e.g. `0 8 * * 1-5`",
            f"5 段（{CRON_PARTS.zh}）每段写一个数、区间如 1-5、列表如 1,15、步长如 */15 或 * —— "
            "例如 `0 8 * * 1-5`",
        ),
    )


def _window(value: str) -> Words:
    days = re.fullmatch(r"\s*(\d+)\s*(d|days?|天)?\s*", value)
    fix = f"{int(days.group(1))}d" if days else "30d"
    return (
        Text(f"'{value}' is not a time window", f"'{value}' 不是时间窗口"),
        Text(
            f"write today, all, this_month or a number of days like {fix}",
            f"请写 today、all、this_month，或天数，例如 {fix}",
        ),
    )


_LOOKALIKES = {
    "≤": "<=",
    "≥": ">=",
    "＜": "<",
    "＞": ">",
    "=<": "<=",
    "=>": ">=",
    "≦": "<=",
    "≧": ">=",
}


def _threshold(value: str) -> Words:
    fixed = value.strip()
    for a, b in _LOOKALIKES.items():
        fixed = fixed.replace(a, b)
    fixed = re.sub(r"\s*%$", "", fixed)
    number = re.fullmatch(r"(<=|>=|<|>)?\s*(-?\d+(?:\.\d+)?)", fixed)
    if number and number.group(1):
        example = f'"{number.group(1)} {number.group(2)}"'
    elif number:
        example = f'"<= {number.group(2)}" or ">= {number.group(2)}"'
    else:
        example = '"<= 4"'
    return (
        Text(
            f"'{value}' is not a threshold: a comparison (<, <=, >, >=) and a number",
            f"'{value}' 不是阈值：应为比较符（<、<=、>、>=）加一个数字",
        ),
        Text(f"write e.g. {example}", f"请写成例如 {example.replace(' or ', ' 或 ')}"),
    )


FORMATS: dict[str, Callable[[str], Words]] = {
    IDENT: _name,
    DATE_PATTERN: _date,
    HOURS_PATTERN: _hours,
    ENV_NAME_PATTERN: _env,
    URL_PATTERN: _url,
    URL_PATH_PATTERN: _url_path,
    PEOPLE_FILE_PATTERN: _people_file,
    CURRENCY_PATTERN: _currency,
    EXTENSION_PATTERN: _extension,
    SEQ_PATTERN: _seq,
    FIELD_PATH_PATTERN: _field_path,
    CRON_PATTERN: _cron,
    WINDOW_PATTERN: _window,
    THRESHOLD_PATTERN: _threshold,
}


def format_words(pattern: str, value: Any) -> Words:
    """(message, hint) for ``value`` that does not fit ``pattern``, in plain words."""
    describe = FORMATS.get(pattern)
    text = shown(value)
    if describe is None:  # a pattern without words: still no regex for people
        return (
            Text(f"'{text}' is not written the way this key needs", f"'{text}' 的写法不符合要求"),
            Text(
                "see this key in docs/yaml-reference.md", "请查看 docs/yaml-reference.md 中的说明"
            ),
        )
    return describe(text)
