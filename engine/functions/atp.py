"""Available-to-promise (ATP): the earliest date a whole order quantity can be promised.

A standard business function for flows. Material comes from stock first, then from the
purchase orders already in transit (earliest arrival first), and whatever they cannot cover
from a new purchase that takes ``replenish_days`` working days. Production (or packing) then
takes ``lead_days`` working days — longer when ``capacity_per_day`` says the line is full:

* available now = on hand − reserved − safety stock (never below 0);
* enough available → promise ``add_workdays(today, production days)``;
* short → the shortfall is covered from incoming POs in ETA order and the promise is
  ``add_workdays(max(today, ETA of the last PO needed), production days)``;
* still short → ``add_workdays(today, replenish_days + production days)``. A new purchase is
  assumed to be possible at any time, so a PO arriving later than a new purchase would is
  not waited for either (which also keeps the date monotone in the quantity);
* with ``capacity_per_day``, production takes ``ceil((load_ahead + quantity) / capacity)``
  working days when that is more than ``lead_days``;
* with ``allocated`` — what the warehouse has reserved from stock for this very order, as its
  reservation answer says — the stock covers exactly that much (the warehouse decided,
  atomically with the other orders' reservations) instead of on hand − reserved − safety
  stock, and only the rest comes from incoming POs or a new purchase: the promise is net of
  every other order's reservation even when many orders check the same SKU at once.

Working days come from :class:`engine.model.calendar.WorkCalendar` (``CalendarSpec(base="cn")``
skips the Chinese statutory holidays and counts the make-up Saturdays). Every result carries
a one-paragraph explanation a salesperson can read, in Chinese and in English.

The expression functions ``available_to_promise(quantity, stock, lead_days[, reserved])`` and
``atp_explanation(quantity, stock, lead_days[, lang[, reserved]])`` are in
:data:`ATP_FUNCTIONS`; ``stock`` is the mock WMS's ``GET /api/stock/{sku}`` answer (see
:func:`atp_from_stock`) and ``reserved`` the quantity its reservation answer says was reserved
from stock for the order (``allocated``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from engine.expressions.env import EvalEnv
from engine.expressions.errors import EvaluationError
from engine.expressions.functions import FunctionDoc, FunctionSpec
from engine.expressions.messages import describe
from engine.model.calendar import MAX_WORKDAYS, WorkCalendar
from engine.model.i18n import Text, lang_from_locale

__all__ = [
    "ATP_DOCS",
    "ATP_FUNCTIONS",
    "DEFAULT_REPLENISH_DAYS",
    "AtpInputError",
    "AtpResult",
    "AtpSource",
    "atp_from_stock",
    "available_to_promise",
]

DEFAULT_REPLENISH_DAYS = 15  # working days for a new purchase when nothing in transit covers
MAX_LISTED = 5  # locations / purchase orders named in an explanation before "and N more"
_HOLIDAY_SCAN_DAYS = 400  # longest span searched for holidays to mention
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_NAMES = {
    "quantity": "数量",
    "reserved": "已预留数量",
    "safety_stock": "安全库存",
    "lead_days": "生产周期（工作日）",
    "capacity_per_day": "日产能",
    "load_ahead": "已排产数量",
    "replenish_days": "补货周期（工作日）",
    "on_hand": "库存数量",
    "allocated": "本单已预留数量",
}


class AtpInputError(ValueError):
    """An input to :func:`available_to_promise` is wrong; ``message`` is bilingual."""

    def __init__(self, message: Text) -> None:
        super().__init__(message.en)
        self.message = message


@dataclass(frozen=True)
class AtpSource:
    """One line that covers part of the quantity.

    ``kind`` is ``stock`` (``location`` set when the stock was given per location),
    ``incoming`` (``po`` and ``eta`` set) or ``replenishment`` (a purchase not yet placed).
    ``quantity`` is the part of the order taken from this line, ``ready`` when it is usable.
    """

    kind: Literal["stock", "incoming", "replenishment"]
    quantity: int
    ready: dt.date
    location: str | None = None
    po: str | None = None
    eta: dt.date | None = None


@dataclass(frozen=True)
class AtpResult:
    """The promise. ``date`` ≥ today; ``ready`` is when all material is there."""

    date: dt.date
    explanation: str  # Chinese
    explanation_en: str
    shortfall: int  # quantity not covered by the stock available now
    sources: tuple[AtpSource, ...]
    available: int  # on hand − reserved − safety stock, at least 0 (or ``allocated``)
    ready: dt.date
    production_days: int  # working days after ``ready``

    @property
    def text(self) -> Text:
        """The explanation as a bilingual :class:`Text`."""
        return Text(en=self.explanation_en, zh=self.explanation)


@dataclass(frozen=True)
class _Incoming:
    po: str | None
    quantity: int
    eta: dt.date
    arrives: dt.date  # max(today, eta)


# ---- the calculation ----------------------------------------------------------------------


def available_to_promise(
    quantity: int,
    *,
    today: dt.date,
    on_hand: int | Mapping[str, int],
    reserved: int = 0,
    safety_stock: int = 0,
    incoming: Sequence[Mapping[str, Any]] = (),
    lead_days: int = 0,
    calendar: WorkCalendar,
    capacity_per_day: int | None = None,
    load_ahead: int = 0,
    replenish_days: int = DEFAULT_REPLENISH_DAYS,
    allocated: int | None = None,
) -> AtpResult:
    """The earliest date ``quantity`` can be promised, with the lines that cover it.

    ``on_hand`` is a total or a mapping location → quantity; ``incoming`` holds purchase
    order lines ``{"po": "PO-1", "quantity": 100, "eta": date or "YYYY-MM-DD"}``.
    ``allocated`` is the quantity the warehouse reserved from stock for this order: when
    given, the stock covers ``min(quantity, allocated)`` and nothing more. Raises
    :class:`AtpInputError` (a ``ValueError``) for a bad input.
    """
    qty = _whole(quantity, "quantity")
    day = _day(today, "today")
    locations, total = _on_hand(on_hand)
    held = _whole(reserved, "reserved")
    safety = _whole(safety_stock, "safety_stock")
    lead = _whole(lead_days, "lead_days")
    load = _whole(load_ahead, "load_ahead")
    replenish = _whole(replenish_days, "replenish_days")
    capacity = None if capacity_per_day is None else _whole(capacity_per_day, "capacity_per_day")
    own = None if allocated is None else _whole(allocated, "allocated")
    if capacity == 0:
        raise AtpInputError(
            Text("capacity_per_day must be more than 0", "日产能必须大于 0（不限产能请留空）")
        )
    lines = _incoming(incoming, day)

    capacity_days = None if capacity is None else -(-(load + qty) // capacity)
    production = max(lead, capacity_days or 0)
    if production + replenish > MAX_WORKDAYS:
        raise AtpInputError(
            Text(
                f"production ({production}) plus replenishment ({replenish}) is more than "
                f"{MAX_WORKDAYS} working days",
                f"生产周期（{production}）加补货周期（{replenish}）超过了 {MAX_WORKDAYS} 个工作日",
            )
        )

    if own is None:
        available = max(0, total - held - safety)
        sources = list(_from_stock(min(qty, available), locations, total, day))
    else:  # the warehouse's reservation says how much; it does not say from which location
        available = own
        sources = [AtpSource("stock", min(qty, own), day)] if min(qty, own) else []
    shortfall = max(0, qty - available)

    used, missing = _cover(shortfall, lines)
    replenish_ready = calendar.add_workdays(day, replenish)
    late: list[_Incoming] = []
    if missing == 0 and all(line.arrives <= replenish_ready for line, _ in used):
        ready = max((line.arrives for line, _ in used), default=day)
    else:  # a new purchase: only POs arriving before it still help
        late = [line for line, _ in used if line.arrives > replenish_ready]
        used, missing = _cover(shortfall, [ln for ln in lines if ln.arrives <= replenish_ready])
        ready = replenish_ready
    sources += [AtpSource("incoming", take, ln.arrives, po=ln.po, eta=ln.eta) for ln, take in used]
    if missing:
        sources.append(AtpSource("replenishment", missing, replenish_ready))
    promised = calendar.add_workdays(ready, production)

    facts = _Facts(
        quantity=qty,
        today=day,
        total=total,
        locations=locations,
        reserved=held,
        safety=safety,
        available=available,
        shortfall=shortfall,
        used=used,
        missing=missing,
        late=late,
        any_incoming=bool(lines),
        replenish=replenish,
        replenish_ready=replenish_ready,
        lead=lead,
        capacity=capacity,
        load=load,
        capacity_days=capacity_days,
        production=production,
        promised=promised,
        holidays=_holidays(calendar, day if missing else ready, promised, day),
        allocated=own,
        unknown_year=calendar.first_unknown_year(day, promised),
    )
    return AtpResult(
        date=promised,
        explanation=_explain_zh(facts),
        explanation_en=_explain_en(facts),
        shortfall=shortfall,
        sources=tuple(sources),
        available=available,
        ready=ready,
        production_days=production,
    )


def atp_from_stock(
    answer: Mapping[str, Any],
    quantity: int,
    *,
    today: dt.date,
    lead_days: int = 0,
    calendar: WorkCalendar,
    capacity_per_day: int | None = None,
    load_ahead: int = 0,
    replenish_days: int = DEFAULT_REPLENISH_DAYS,
    allocated: int | None = None,
) -> AtpResult:
    """:func:`available_to_promise` from the WMS ``GET /api/stock/{sku}`` JSON answer
    (``allocated``: what the WMS's reservation answer says it reserved for this order).

    Uses ``locations`` (per-location on hand) when they add up to ``on_hand``, else the
    total; ``reserved``, ``safety_stock`` and ``incoming`` default to none. The answer's own
    ``available`` is not trusted: it is computed again the same way.
    """
    if not isinstance(answer, Mapping):
        raise AtpInputError(
            Text(
                f"the stock answer must be a record (JSON object), not {type(answer).__name__}",
                f"库存查询结果必须是一条记录（JSON 对象），而不是 {type(answer).__name__}",
            )
        )
    total = _json_whole(answer.get("on_hand"), "on_hand") if "on_hand" in answer else None
    rows = answer.get("locations") or []
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        raise AtpInputError(Text("locations must be a list", "locations 必须是列表"))
    by_location: dict[str, int] = {}
    for row in rows:
        if not isinstance(row, Mapping) or not isinstance(row.get("location"), str):
            raise AtpInputError(
                Text(
                    'each location must look like {"location": "A-01-03", "on_hand": 20}',
                    '每个库位应形如 {"location": "A-01-03", "on_hand": 20}',
                )
            )
        name = row["location"]
        by_location[name] = by_location.get(name, 0) + _json_whole(row.get("on_hand"), "on_hand")
    if total is None and not by_location:
        raise AtpInputError(
            Text("the stock answer has no on_hand quantity", "库存查询结果中没有库存数量 on_hand")
        )
    on_hand: int | Mapping[str, int] = total if total is not None else 0
    if by_location and (total is None or sum(by_location.values()) == total):
        on_hand = by_location
    incoming = answer.get("incoming") or []
    if not isinstance(incoming, Sequence) or isinstance(incoming, str):
        raise AtpInputError(Text("incoming must be a list", "incoming（在途采购）必须是列表"))
    return available_to_promise(
        quantity,
        today=today,
        on_hand=on_hand,
        reserved=_json_whole(answer.get("reserved", 0), "reserved"),
        safety_stock=_json_whole(answer.get("safety_stock", 0), "safety_stock"),
        incoming=[_json_line(line) for line in incoming],
        lead_days=lead_days,
        calendar=calendar,
        capacity_per_day=capacity_per_day,
        load_ahead=load_ahead,
        replenish_days=replenish_days,
        allocated=allocated,
    )


def _cover(need: int, lines: Sequence[_Incoming]) -> tuple[list[tuple[_Incoming, int]], int]:
    """Take ``need`` from ``lines`` in order: the (line, quantity taken) pairs and what's left."""
    used: list[tuple[_Incoming, int]] = []
    for line in lines:
        if need == 0:
            break
        if line.quantity:
            take = min(need, line.quantity)
            used.append((line, take))
            need -= take
    return used, need


def _from_stock(
    take: int, locations: dict[str, int] | None, total: int, today: dt.date
) -> Iterator[AtpSource]:
    """Stock lines for ``take``: the fullest locations first (fewest picks)."""
    if take <= 0:
        return
    if locations is None or sum(locations.values()) != total:
        yield AtpSource("stock", take, today)
        return
    for name, qty in sorted(locations.items(), key=lambda item: (-item[1], item[0])):
        if take == 0:
            return
        part = min(take, qty)
        if part:
            yield AtpSource("stock", part, today, location=name)
            take -= part


def _holidays(
    calendar: WorkCalendar, start: dt.date, end: dt.date, today: dt.date
) -> list[tuple[dt.date, dt.date]]:
    """Runs of days off in [start, end] that hold a weekday holiday (not plain weekends).

    ``start`` is where working days start to count: today when a new purchase is needed,
    else when the material is there (waiting for a PO is counted in calendar days).
    """
    start = min(max(start, today), end)
    if (end - start).days > _HOLIDAY_SCAN_DAYS:
        return []
    runs: list[tuple[dt.date, dt.date]] = []
    run: list[dt.date] = []
    for offset in range((end - start).days + 2):
        day = start + dt.timedelta(days=offset)
        if offset <= (end - start).days and not calendar.is_workday(day):
            run.append(day)
            continue
        if any(d.weekday() < 5 for d in run):
            runs.append((run[0], run[-1]))
        run = []
    return runs


# ---- input checks -------------------------------------------------------------------------


def _whole(value: Any, name: str) -> int:
    zh = _NAMES.get(name, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AtpInputError(
            Text(
                f"{name} must be a whole number, not {value!r}",
                f"{zh}必须是整数，而不是 {value!r}",
            )
        )
    if value < 0:
        raise AtpInputError(
            Text(f"{name} must not be negative (got {value})", f"{zh}不能为负数（收到 {value}）")
        )
    return value


def _json_whole(value: Any, name: str) -> int:
    """Like :func:`_whole`, but a JSON number such as ``30.0`` is accepted as 30."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return _whole(int(value), name)
    return _whole(value, name)


def _json_line(line: Any) -> Mapping[str, Any]:
    if isinstance(line, Mapping) and isinstance(line.get("quantity"), float):
        return {**line, "quantity": _json_whole(line["quantity"], "quantity")}
    return line  # type: ignore[no-any-return]


def _day(value: Any, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise AtpInputError(
        Text(f"{name} must be a date, not {value!r}", f"{name} 必须是日期，而不是 {value!r}")
    )


def _on_hand(value: Any) -> tuple[dict[str, int] | None, int]:
    if isinstance(value, Mapping):
        locations: dict[str, int] = {}
        for name, qty in value.items():
            if not isinstance(name, str) or not name.strip():
                raise AtpInputError(
                    Text(
                        f"on_hand locations must be named by text, not {name!r}",
                        f"库位名称必须是文本，而不是 {name!r}",
                    )
                )
            locations[name] = _whole(qty, "on_hand")
        return locations, sum(locations.values())
    return None, _whole(value, "on_hand")


def _incoming(lines: Any, today: dt.date) -> list[_Incoming]:
    if isinstance(lines, str | bytes | Mapping) or not isinstance(lines, Sequence):
        raise AtpInputError(
            Text(
                "incoming must be a list of purchase order lines",
                "incoming（在途采购）必须是采购单行的列表",
            )
        )
    parsed: list[_Incoming] = []
    for i, line in enumerate(lines):
        if not isinstance(line, Mapping):
            raise AtpInputError(
                Text(
                    f'incoming[{i}] must look like {{"po": "PO-1", "quantity": 100, '
                    f'"eta": "2026-12-10"}}',
                    f'第 {i + 1} 条在途采购应形如 {{"po": "PO-1", "quantity": 100, '
                    f'"eta": "2026-12-10"}}',
                )
            )
        po = line.get("po")
        if po is not None and not isinstance(po, str):
            raise AtpInputError(
                Text(f"incoming[{i}].po must be text", f"第 {i + 1} 条在途采购的单号必须是文本")
            )
        qty = _whole(line.get("quantity"), "quantity")
        eta = _eta(line.get("eta"), i)
        parsed.append(_Incoming(po or None, qty, eta, max(today, eta)))
    parsed.sort(key=lambda line: line.eta)  # stable: equal ETAs keep their order
    return parsed


def _eta(value: Any, i: int) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise AtpInputError(
        Text(
            f"incoming[{i}].eta must be a date YYYY-MM-DD, not {value!r}",
            f"第 {i + 1} 条在途采购的预计到货日必须是日期（YYYY-MM-DD），而不是 {value!r}",
        )
    )


# ---- explanations -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    quantity: int
    today: dt.date
    total: int
    locations: dict[str, int] | None
    reserved: int
    safety: int
    available: int
    shortfall: int
    used: list[tuple[_Incoming, int]]
    missing: int
    late: list[_Incoming]
    any_incoming: bool
    replenish: int
    replenish_ready: dt.date
    lead: int
    capacity: int | None
    load: int
    capacity_days: int | None
    production: int
    promised: dt.date
    holidays: list[tuple[dt.date, dt.date]]
    allocated: int | None = None  # reserved from stock for this order by the warehouse
    unknown_year: int | None = None  # first year counted past the known working-day calendar

    @property
    def capacity_bound(self) -> bool:
        return self.capacity_days is not None and self.capacity_days > self.lead

    def shown_locations(self) -> tuple[list[tuple[str, int]], int]:
        """Locations holding stock (at most MAX_LISTED) and how many more there are."""
        if self.locations is None:
            return [], 0
        full = [(name, qty) for name, qty in self.locations.items() if qty > 0]
        return full[:MAX_LISTED], max(0, len(full) - MAX_LISTED)


def _zh_date(d: dt.date, today: dt.date) -> str:
    year = f"{d.year} 年 " if d.year != today.year else ""
    return f"{year}{d.month} 月 {d.day} 日"


def _en_date(d: dt.date, today: dt.date) -> str:
    year = f", {d.year}" if d.year != today.year else ""
    return f"{_MONTHS[d.month - 1]} {d.day}{year}"


def _zh_span(a: dt.date, b: dt.date, today: dt.date) -> str:
    if a == b:
        return _zh_date(a, today)
    if (a.year, a.month) == (b.year, b.month):
        return f"{_zh_date(a, today)}至 {b.day} 日"
    return f"{_zh_date(a, today)}至 {_zh_date(b, today)}"


def _en_span(a: dt.date, b: dt.date, today: dt.date) -> str:
    if a == b:
        return _en_date(a, today)
    if (a.year, a.month) == (b.year, b.month):
        year = f", {a.year}" if a.year != today.year else ""
        return f"{_MONTHS[a.month - 1]} {a.day}–{b.day}{year}"
    return f"{_en_date(a, today)}–{_en_date(b, today)}"


def _explain_zh(f: _Facts) -> str:
    shown, more = f.shown_locations()
    locs = "、".join(f"{name} {qty} 件" for name, qty in shown)
    locs = f"（{locs}{f' 等 {len(shown) + more} 个库位' if more else ''}）" if locs else ""
    taken = min(f.quantity, f.available)
    if f.allocated is not None:
        stock = (
            f"仓库已从现有库存为本单预留 {taken} 件"
            if taken or not f.quantity
            else "现有库存已无可用量，仓库未能为本单预留"
        )
    elif f.reserved == 0 and f.safety == 0:
        stock = f"现有可用 {f.available} 件{locs}" if f.total else "当前无库存"
    else:
        held = "、".join(
            part
            for part in (
                f"已预留 {f.reserved} 件" if f.reserved else "",
                f"安全库存 {f.safety} 件" if f.safety else "",
            )
            if part
        )
        stock = f"现有库存 {f.total} 件{locs}，扣除{held}后可用 {f.available} 件"
    enough = "库存充足" if f.shortfall == 0 else f"不足 {f.shortfall} 件"
    parts = [f"需求 {f.quantity} 件，{stock}，{enough}"]

    material = []
    if f.used:
        pos = []
        for line, _ in f.used[:MAX_LISTED]:
            name = f"{line.po} " if line.po else "无单号采购"
            if line.eta < f.today:
                pos.append(
                    f"{name}原定 {_zh_date(line.eta, f.today)}到货 {line.quantity} 件"
                    "（已逾期，按今天计）"
                )
            else:
                pos.append(f"{name}预计 {_zh_date(line.eta, f.today)}到货 {line.quantity} 件")
        if len(f.used) > MAX_LISTED:
            pos.append(f"另有 {len(f.used) - MAX_LISTED} 笔在途采购")
        material.append(("采购单 " if f.used[0][0].po else "") + "、".join(pos))
    if f.missing:
        prefix = "" if f.any_incoming else "无在途采购单，"
        rest = "其余 " if f.used else ""
        late = ""
        if f.late:
            names = "、".join(
                f"{ln.po + ' ' if ln.po else '无单号采购'}预计 {_zh_date(ln.eta, f.today)}"
                for ln in f.late[:3]
            )
            late = f"（{names}才到货，晚于补货，未计入）"
        material.append(
            f"{prefix}{rest}{f.missing} 件需另行补货，按补货周期 {f.replenish} 个工作日计，"
            f"预计 {_zh_date(f.replenish_ready, f.today)}到料{late}"
        )
    if material:
        parts.append("，".join(material))

    tail = []
    if f.capacity_bound:
        load = f"、已排产 {f.load} 件" if f.load else ""
        standard = f"（长于标准周期 {f.lead} 个工作日）" if f.lead else ""
        tail.append(f"按日产能 {f.capacity} 件{load}计，生产需 {f.production} 个工作日{standard}")
    elif f.production:
        tail.append(f"加上生产周期 {f.production} 个工作日")
    when = _zh_date(f.promised, f.today) + ("（今天）" if f.promised == f.today else "")
    if f.holidays:
        runs = "、".join(_zh_span(a, b, f.today) for a, b in f.holidays[:3])
        when += f"（{runs}放假，不计工作日）"
    tail.append(f"最早可承诺 {when}")
    text = "；".join([*parts[:1], "，".join(parts[1:] + tail)]) + "。"
    if f.unknown_year is not None:
        text += (
            f"注意：{f.unknown_year} 年超出已知的工作日历，该日期只按周末计算休息日，"
            "未计法定节假日，实际可能更晚。"
        )
    return text


def _explain_en(f: _Facts) -> str:
    shown, more = f.shown_locations()
    locs = ", ".join(f"{name}: {qty}" for name, qty in shown)
    locs = f" ({locs}{f' and {more} more locations' if more else ''})" if locs else ""
    taken = min(f.quantity, f.available)
    if f.allocated is not None:
        stock = (
            f"the warehouse reserved {taken} from stock for this order"
            if taken or not f.quantity
            else "nothing left in stock to reserve for this order"
        )
    elif f.reserved == 0 and f.safety == 0:
        stock = f"{f.available} available now{locs}" if f.total else "nothing in stock"
    else:
        held = " and ".join(
            part
            for part in (
                f"{f.reserved} reserved" if f.reserved else "",
                f"{f.safety} safety stock" if f.safety else "",
            )
            if part
        )
        stock = f"{f.total} on hand{locs}, {f.available} available after {held}"
    enough = "enough in stock" if f.shortfall == 0 else f"{f.shortfall} short"
    parts = [f"Need {f.quantity} pcs: {stock}, {enough}"]

    material = []
    if f.used:
        pos = []
        for line, _ in f.used[:MAX_LISTED]:
            name = line.po or "an unnumbered PO"
            if line.eta < f.today:
                pos.append(
                    f"{name} was due {_en_date(line.eta, f.today)} with {line.quantity} pcs "
                    "(overdue, counted as today)"
                )
            else:
                pos.append(f"{name} brings {line.quantity} pcs on {_en_date(line.eta, f.today)}")
        if len(f.used) > MAX_LISTED:
            pos.append(f"{len(f.used) - MAX_LISTED} more POs")
        material.append(", ".join(pos))
    if f.missing:
        prefix = "" if f.any_incoming else "no purchase orders in transit, so "
        rest = "the other " if f.used else ""
        late = ""
        if f.late:
            names = ", ".join(
                f"{ln.po or 'an unnumbered PO'} due {_en_date(ln.eta, f.today)}"
                for ln in f.late[:3]
            )
            late = f" ({names} would arrive later and is not counted)"
        material.append(
            f"{prefix}{rest}{f.missing} pcs need a new purchase of {f.replenish} working days, "
            f"material by {_en_date(f.replenish_ready, f.today)}{late}"
        )
    if material:
        parts.append(", ".join(material))

    tail = []
    if f.capacity_bound:
        load = f" with {f.load} pcs already scheduled" if f.load else ""
        standard = f" (standard lead time {f.lead})" if f.lead else ""
        tail.append(
            f"at {f.capacity} pcs a day{load}, production takes {f.production} working days"
            f"{standard}"
        )
    elif f.production:
        tail.append(f"plus {f.production} working days of production")
    when = _en_date(f.promised, f.today) + (" (today)" if f.promised == f.today else "")
    if f.holidays:
        runs = ", ".join(_en_span(a, b, f.today) for a, b in f.holidays[:3])
        when += f" (holidays {runs} are not working days)"
    tail.append(f"the earliest promise date is {when}")
    text = "; ".join([*parts[:1], ", ".join(parts[1:] + tail)]) + "."
    if f.unknown_year is not None:
        text += (
            f" Note: {f.unknown_year} is outside the known working-day calendar, so this date "
            "was computed with weekends only as days off (no public holidays) and may be later."
        )
    return text


# ---- expression functions -----------------------------------------------------------------


def _expr_result(
    fname: str,
    env: EvalEnv,
    quantity: Any,
    stock: Any,
    lead_days: Any,
    reserved: Any = None,
    reserved_position: str = "4th",
) -> AtpResult | None:
    if quantity is None or stock is None or lead_days is None:
        return None  # a blank argument gives a blank result, like the other functions

    def whole(value: Any, position: str) -> int:
        if type(value) is int:
            return value
        if isinstance(value, float | Decimal) and _integral(value):
            return int(value)
        got = describe(value)
        raise EvaluationError(
            "expr-type",
            Text(
                f"{fname}() needs a whole number as its {position} argument, got {got.en}",
                f"{fname}() 的第{_ZH_POSITION[position]}个参数需要整数，实际得到的是 {got.zh}",
            ),
        )

    qty = whole(quantity, "1st")
    lead = whole(lead_days, "3rd")
    # blank: no reservation to go by (the stock answer's own availability is used)
    own = None if reserved is None else whole(reserved, reserved_position)
    if not isinstance(stock, Mapping):
        got = describe(stock)
        raise EvaluationError(
            "expr-type",
            Text(
                f"{fname}() needs the WMS stock answer (a record with on_hand, reserved, "
                f"incoming …) as its 2nd argument, got {got.en}",
                f"{fname}() 的第二个参数需要仓储系统返回的库存记录（含 on_hand、reserved、"
                f"incoming 等），实际得到的是 {got.zh}",
            ),
        )
    if env.calendar is None:
        raise EvaluationError(
            "expr-no-calendar",
            Text(
                f"{fname}() needs a working-day calendar, but none is configured"
                " (set calendar: in app.yaml)",
                f"{fname}() 需要工作日历，但尚未配置（请在 app.yaml 中设置 calendar:）",
            ),
        )
    try:
        return atp_from_stock(
            stock,
            qty,
            today=env.local_now().date(),
            lead_days=lead,
            calendar=env.calendar,
            allocated=own,
        )
    except AtpInputError as exc:
        raise EvaluationError(
            "expr-value",
            Text(f"{fname}(): {exc.message.en}", f"{fname}()：{exc.message.zh}"),
        ) from None


_ZH_POSITION = {"1st": "一", "3rd": "三", "4th": "四", "5th": "五"}


def _integral(value: float | Decimal) -> bool:
    finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
    return finite and value == int(value)


def fn_available_to_promise(
    env: EvalEnv, quantity: Any, stock: Any, lead_days: Any, reserved: Any = None
) -> dt.date | None:
    """``available_to_promise(quantity, stock, lead_days[, reserved])`` in expressions: the
    date; ``reserved`` is what the warehouse reserved from stock for this order."""
    result = _expr_result("available_to_promise", env, quantity, stock, lead_days, reserved)
    return None if result is None else result.date


def fn_atp_explanation(
    env: EvalEnv,
    quantity: Any,
    stock: Any,
    lead_days: Any,
    lang: Any = "zh",
    reserved: Any = None,
) -> str | None:
    """``atp_explanation(quantity, stock, lead_days[, lang[, reserved]])``: the text (Chinese
    unless 'en')."""
    if lang is not None and not isinstance(lang, str):
        raise EvaluationError(
            "expr-type",
            Text(
                "atp_explanation(): the language must be 'zh' or 'en'",
                "atp_explanation()：语言参数必须是 'zh' 或 'en'",
            ),
        )
    result = _expr_result(
        "atp_explanation", env, quantity, stock, lead_days, reserved, reserved_position="5th"
    )
    if result is None:
        return None
    return result.explanation_en if lang_from_locale(lang or "zh") == "en" else result.explanation


ATP_FUNCTIONS: dict[str, FunctionSpec] = {
    "available_to_promise": FunctionSpec(
        fn_available_to_promise,
        3,
        4,
        Text(
            "available_to_promise(quantity, stock, lead_days, reserved): the earliest date "
            "the quantity can be promised, from the kept WMS stock answer, in-transit POs and "
            "lead_days working days of production; with reserved (what the warehouse "
            "reserved from stock for this order) only that much comes from stock",
            "available_to_promise(数量, 库存, 生产周期, 已预留)：根据仓储系统返回的库存、"
            "在途采购和生产周期（工作日）计算的最早可承诺交付日；给出已预留（仓库为本单从库存"
            "预留的数量）时，只有这部分按现货计",
        ),
        needs_env=True,
    ),
    "atp_explanation": FunctionSpec(
        fn_atp_explanation,
        3,
        5,
        Text(
            "atp_explanation(quantity, stock, lead_days, lang='zh', reserved): how the "
            "earliest promise date was found, in words for the salesperson",
            "atp_explanation(数量, 库存, 生产周期, 语言='zh', 已预留)：最早可承诺交付日的"
            "计算说明，可直接给销售阅读",
        ),
        needs_env=True,
    ),
}

_STOCK_ANSWER = {
    "sku": "P-100",
    "on_hand": 100,
    "reserved": 0,
    "safety_stock": 0,
    "incoming": [{"po": "PO-7", "quantity": 50, "eta": "2026-12-15"}],
}

ATP_DOCS: dict[str, FunctionDoc] = {
    "available_to_promise": FunctionDoc(
        "available_to_promise(quantity, stock, lead_days[, reserved])",
        "available_to_promise(120, stock, 5)",
        {"stock": _STOCK_ANSWER},
    ),
    "atp_explanation": FunctionDoc(
        "atp_explanation(quantity, stock, lead_days[, lang[, reserved]])",
        "atp_explanation(120, stock, 5, 'en')",
        {"stock": _STOCK_ANSWER},
    ),
}
