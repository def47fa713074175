"""How stored values read to people: numbers with thousands separators, money with its
currency, dates in the app's time zone, option labels, yes/no.

One place for the record page (``web.templating.Formatter``) and what is printed below the
web floor (the sealed approval PDF), so a value reads the same on the page and on paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.model.i18n import Lang, Text
from engine.model.spec import App, FieldSpec

__all__ = [
    "BLANK",
    "TEMPLATE_FILTERS",
    "currency_of",
    "datetime_text",
    "money_text",
    "number_text",
    "value_text",
]

BLANK = "—"

# symbols people write before an amount; other ISO codes are written before it ("CHF 12.00")
SYMBOLS: Mapping[str, str] = {
    "CNY": "¥",
    "JPY": "¥",
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "HKD": "HK$",
    "TWD": "NT$",
    "KRW": "₩",
}

_YES_NO = {True: Text("Yes", "是"), False: Text("No", "否")}
_FILES = Text("{n} files", "{n} 个文件")


def number_text(value: Any, scale: int | None = None) -> str:
    """``value`` with thousands separators (``12,345.5``), rounded to ``scale`` places when
    given; what is not a number comes back as text."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    if scale is not None:
        number = number.quantize(Decimal(1).scaleb(-scale))
    return f"{number:,f}"


def currency_of(app: App | None, spec: FieldSpec | None) -> str | None:
    """The ISO code a money amount is in: the field's ``currency``, else the app's."""
    if spec is not None and spec.currency:
        return spec.currency
    return app.currency if app is not None else None


def money_text(value: Any, scale: int | None = 2, currency: str | None = None) -> str:
    """An amount with separators and its currency: ``¥1,234,567.00``, ``-¥5.00``,
    ``CHF 12.00``; without a currency, the number alone."""
    text = number_text(value, scale)
    if not currency or not text[-1:].isdigit():
        return text
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{currency} {digits}"


def money_filter(value: Any, currency: str | None = None, scale: int = 2) -> str:
    """Templates' ``money``: an amount with thousands separators, ``scale`` places and, when
    given, its currency (``{{ x|money }}`` → ``1,234.50``, ``{{ x|money('CNY') }}`` →
    ``¥1,234.50``); blank stays blank."""
    if value is None or value == "":
        return ""
    return money_text(value, scale, currency)


def number_filter(value: Any, scale: int | None = None) -> str:
    """Templates' ``number``: thousands separators, rounded to ``scale`` places when given."""
    if value is None or value == "":
        return ""
    return number_text(value, scale)


# the filters message templates may use (rendered in flows/messages.py, checked in compile/)
TEMPLATE_FILTERS: Mapping[str, Any] = {"money": money_filter, "number": number_filter}


def datetime_text(value: Any, tz: tzinfo) -> str:
    """A moment in ``tz`` to the minute (stored times are UTC, naive ones too)."""
    moment: datetime
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    elif isinstance(value, datetime):
        moment = value
    else:
        return "" if value is None else str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def value_text(
    app: App | None,
    spec: FieldSpec | None,
    value: Any,
    lang: Lang,
    tz: tzinfo,
    title: str | None = None,
) -> str:
    """A field value as text (``—`` when blank). A ref reads as ``title`` (the title field of
    the record it points at) when given, else ``#id``."""
    if value is None or value == "" or value == []:
        return BLANK
    kind = spec.value_type if spec is not None else ""
    if kind == "boolean":
        return _YES_NO[bool(value)](lang)
    if kind in ("select", "multiselect") and spec is not None:
        labels = {o.value: o.label for o in spec.options}
        items = value if isinstance(value, list) else [value]
        return ("、" if lang == "zh" else ", ").join(labels.get(v, str(v)) for v in items)
    if kind == "money":
        scale = spec.scale if spec is not None and spec.scale is not None else 2
        return money_text(value, scale, currency_of(app, spec))
    if kind == "decimal":
        return number_text(value)
    if kind == "datetime":
        return datetime_text(value, tz)
    if kind == "date" and isinstance(value, date):
        return value.isoformat()
    if kind == "ref":
        return title if title else f"#{value}"
    if kind == "files" and isinstance(value, list):
        return _FILES.format(n=len(value))(lang)
    return str(value)
