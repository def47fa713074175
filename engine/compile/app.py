"""Compile app.yaml: calendar, business hours, roles, connectors and the org chart."""

from __future__ import annotations

import csv
import io
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.assets import PAGE_TEMPLATES
from engine.compile.context import CompileContext
from engine.config.loader import LoadedYaml, load_yaml_text
from engine.config.workspace import display_path, read_source
from engine.model import clock
from engine.model.calendar import CN_FIRST_YEAR, CN_LAST_YEAR, CalendarSpec, covered_until
from engine.model.diagnostics import Mark, suggestion_hint
from engine.model.i18n import Text
from engine.model.permissions import ADMIN_ROLE
from engine.model.spec import ConnectorSpec, OperationSpec, PersonSpec, RoleSpec, frozen_map

PEOPLE_COLUMNS = (
    "user",
    "name",
    "roles",
    "manager",
    "department",
    "phone",
    "email",
    "dingtalk_id",
    "wecom_id",
)
DEFAULT_HOURS = ("09:00-12:00", "13:00-18:00")
CALENDAR_NOTICE_MONTHS = 6  # warn when the working-day calendar ends sooner than this

_CONNECTOR_NEEDS = {
    "http": ("base_url_env", "operations"),
    "dingtalk": ("url_env",),
    "wecom": ("url_env",),
    "webhook": ("url_env",),
    "email": ("smtp_url_env", "sender"),
}


def _parse_hours(raw: list[str]) -> tuple[tuple[time, time], ...]:
    out = []
    for item in raw:
        start, end = item.split("-")
        end_t = time(23, 59, 59) if end == "24:00" else time.fromisoformat(end)
        out.append((time.fromisoformat(start), end_t))
    return tuple(out)


def compile_calendar(ctx: CompileContext, doc: LoadedYaml) -> CalendarSpec | None:
    data = doc.data
    raw = data.get("calendar", "weekends")
    spec: dict[str, Any] = {"base": raw} if isinstance(raw, str) else dict(raw)
    days: dict[str, frozenset[date]] = {}
    ok = True
    for key in ("holidays", "workdays"):
        parsed = set()
        for i, text in enumerate(spec.get(key) or []):
            try:
                parsed.add(date.fromisoformat(text))
            except ValueError:
                ok = False
                ctx.error(
                    doc,
                    ("calendar", key, i),
                    "bad-date",
                    Text(f"'{text}' is not a real date", f"'{text}' 不是有效日期"),
                    Text(
                        "write an existing date as YYYY-MM-DD",
                        "请写一个真实存在的日期，格式 YYYY-MM-DD",
                    ),
                )
        days[key] = frozenset(parsed)
    both = days["holidays"] & days["workdays"]
    for day in sorted(both):
        ok = False
        ctx.error(
            doc,
            ("calendar", "workdays"),
            "calendar-conflict",
            Text(
                f"{day} is listed both as a holiday and as a workday",
                f"{day} 同时出现在节假日和工作日中",
            ),
            Text("keep it in one list", "请只保留在其中一个列表"),
        )
    hours = data.get("business_hours", list(DEFAULT_HOURS))
    windows = _parse_hours(hours)
    try:
        compiled = (
            CalendarSpec(
                base=spec["base"],
                holidays=days["holidays"],
                workdays=days["workdays"],
                business_hours=windows,
                timezone=data.get("timezone", "Asia/Shanghai"),
            )
            if ok
            else None
        )
        if compiled is not None:
            _warn_coverage(ctx, doc, compiled)
        return compiled
    except ValueError as exc:
        where = ("timezone",) if "timezone" in str(exc).lower() else ("business_hours",)
        ctx.error(
            doc,
            where,
            "bad-calendar",
            Text(str(exc), str(exc)),
            Text(
                "business hours must be in order and not overlap; the time zone must "
                "be an IANA name such as Asia/Shanghai",
                "工作时段必须按顺序且不重叠；时区须为 IANA 名称，例如 Asia/Shanghai",
            ),
        )
        return None


def _months_later(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def calendar_today(timezone: str) -> date:
    """Today in the app's time zone, from ``engine.model.clock`` (tests turn it)."""
    return clock.now().astimezone(ZoneInfo(timezone)).date()


def _warn_coverage(ctx: CompileContext, doc: LoadedYaml, spec: CalendarSpec) -> None:
    """Warn when the working-day calendar ends within CALENDAR_NOTICE_MONTHS of today (in the
    app's time zone, from ``engine.model.clock``): past its end, workdays are Monday–Friday
    and public holidays are missed, so promise dates and deadlines come out too early."""
    today = calendar_today(spec.timezone)
    end = covered_until(spec, today)
    if end is None or end >= _months_later(today, CALENDAR_NOTICE_MONTHS):
        return
    year = end.year + 1
    raw = doc.data.get("calendar")
    path = ("calendar", "base") if isinstance(raw, dict) else ("calendar",)
    known = Text(
        f"`cn` knows the official holidays of {CN_FIRST_YEAR}–{CN_LAST_YEAR}",
        f"cn 只包含 {CN_FIRST_YEAR}–{CN_LAST_YEAR} 年的法定节假日",
    )
    if end < today:
        message = Text(
            f"the working-day calendar does not cover {year}, the current year: ",
            f"工作日历不包含今年（{year} 年）：",
        )
    else:
        months = CALENDAR_NOTICE_MONTHS
        message = Text(
            f"the working-day calendar ends on {end.isoformat()}, less than {months} months "
            "from today: ",
            f"工作日历只到 {end.isoformat()}，距今已不足 {months} 个月：",
        )
    ctx.warning(
        doc,
        path,
        "calendar-ends-soon",
        message + known,
        Text(
            f"add {year}'s holidays and make-up workdays to calendar.holidays and "
            f"calendar.workdays (YYYY-MM-DD) once they are published; any date listed makes "
            f"{year} known; until then dates in {year} count Monday–Friday as workdays and "
            "miss public holidays",
            f"{year} 年的放假和调休安排公布后，请把日期写进 calendar.holidays 和 "
            f"calendar.workdays（YYYY-MM-DD；写入任一日期即视为 {year} 年已知）；在此之前，"
            f"{year} 年的日期按周一至周五为工作日计算，不计法定节假日",
        ),
    )


def compile_roles(doc: LoadedYaml) -> dict[str, RoleSpec]:
    """The app's roles, plus the built-in ``admin`` (operators: flow runs, the outbox) unless
    the app declares it itself."""
    roles = {
        n: RoleSpec(n, r["label"], r.get("description"))
        for n, r in (doc.data.get("roles") or {}).items()
    }
    if ADMIN_ROLE not in roles:
        zh = str(doc.data.get("locale", "zh-CN")).lower().startswith("zh")
        roles[ADMIN_ROLE] = RoleSpec(
            ADMIN_ROLE,
            "系统管理员" if zh else "Administrator",
            "运维：流程运行、发件箱、重试" if zh else "operations: flow runs, outbox, retries",
        )
    return roles


def compile_connectors(ctx: CompileContext, doc: LoadedYaml) -> dict[str, ConnectorSpec]:
    out = {}
    for name, raw in (doc.data.get("connectors") or {}).items():
        for key in _CONNECTOR_NEEDS[raw["type"]]:
            if key not in raw:
                ctx.error(
                    doc,
                    ("connectors", name),
                    "missing-key",
                    Text(
                        f"a {raw['type']} connector needs '{key}'",
                        f"{raw['type']} 类型的连接器需要 '{key}'",
                    ),
                    Text(f"add '{key}: …'", f"请添加 '{key}: …'"),
                    key=True,
                )
        ops = {
            op: OperationSpec(op, o["method"], o["path"], o.get("description"))
            for op, o in (raw.get("operations") or {}).items()
        }
        out[name] = ConnectorSpec(
            name=name,
            type=raw["type"],
            title=raw.get("title"),
            base_url_env=raw.get("base_url_env"),
            base_url_default=raw.get("base_url_default"),
            url_env=raw.get("url_env"),
            token_env=raw.get("token_env"),
            smtp_url_env=raw.get("smtp_url_env"),
            sender=raw.get("sender"),
            timeout=float(raw.get("timeout", 10)),
            retries=int(raw.get("retries", 5)),
            operations=frozen_map(ops),
        )
    return out


# ---------------------------------------------------------------------------- people


def compile_people(ctx: CompileContext, doc: LoadedYaml, roles: set[str]) -> dict[str, PersonSpec]:
    """Read the org chart named by ``people:`` and check roles, managers and loops."""
    rel = doc.data.get("people")
    if rel is None:
        return {}
    file = (ctx.ws.root / rel).resolve()
    if not file.is_relative_to(ctx.ws.root.resolve()) or not file.is_file():
        ctx.error(
            doc,
            ("people",),
            "missing-file",
            Text(f"org chart file '{rel}' not found", f"找不到组织架构文件 '{rel}'"),
            Text(
                "give a path inside the app folder, e.g. data/people.csv",
                "请填写应用目录内的路径，例如 data/people.csv",
            ),
        )
        return {}
    text = read_source(file, ctx.diags)
    if text is None:
        return {}
    shown = display_path(file)
    ctx.ws.sources[shown] = text
    rows = _read_csv(ctx, shown, text) if file.suffix == ".csv" else _read_yaml(ctx, shown, text)
    people: dict[str, PersonSpec] = {}
    marks: dict[str, dict[str, Mark]] = {}
    for row, row_marks in rows:
        user = (row.get("user") or "").strip()
        if not user:
            ctx.diags.error(
                shown,
                row_marks.get("user", Mark(1, 1)),
                "missing-key",
                Text("a person without a user name", "有人员没有填写 user"),
                Text("fill in the user column", "请填写 user 列"),
            )
            continue
        if user in people:
            ctx.diags.error(
                shown,
                row_marks["user"],
                "duplicate-name",
                Text(f"user '{user}' is listed twice", f"用户 '{user}' 重复出现"),
                Text("keep one row per person", "每人只保留一行"),
            )
            continue
        person_roles = row.get("roles") or ()
        for role in person_roles:
            if role not in roles:
                ctx.diags.error(
                    shown,
                    row_marks.get("roles", Mark(1, 1)),
                    "unknown-role",
                    Text(f"unknown role '{role}'", f"未知的角色 '{role}'"),
                    suggestion_hint(role, roles, Text("roles", "角色")),
                )
        people[user] = PersonSpec(
            user=user,
            name=row.get("name") or user,
            roles=tuple(person_roles),
            manager=row.get("manager") or None,
            department=row.get("department") or None,
            phone=row.get("phone") or None,
            email=row.get("email") or None,
            dingtalk_id=row.get("dingtalk_id") or None,
            wecom_id=row.get("wecom_id") or None,
        )
        marks[user] = row_marks
    for user, person in people.items():
        if person.manager and person.manager not in people:
            ctx.diags.error(
                shown,
                marks[user].get("manager", Mark(1, 1)),
                "unknown-person",
                Text(
                    f"manager '{person.manager}' is not in the org chart",
                    f"上级 '{person.manager}' 不在组织架构中",
                ),
                suggestion_hint(person.manager, people, Text("people", "人员")),
            )
    _check_manager_loops(ctx, shown, people, marks)
    holders: dict[str, list[str]] = {}
    for person in people.values():
        for role in person.roles:
            holders.setdefault(role, []).append(person.user)
    # approvals check that someone holds each approver role (compile/approvals.py)
    ctx.extras["role_holders"] = holders
    ctx.extras["people_file"] = rel
    return people


def _check_manager_loops(
    ctx: CompileContext,
    shown: str,
    people: dict[str, PersonSpec],
    marks: dict[str, dict[str, Mark]],
) -> None:
    reported: set[str] = set()
    for start in people:
        seen = [start]
        current = people[start].manager
        while current in people and current not in seen:
            seen.append(current)
            current = people[current].manager
        if current == start and start not in reported:
            reported.update(seen)
            chain = " → ".join([*seen, start])
            ctx.diags.error(
                shown,
                marks[start].get("manager", Mark(1, 1)),
                "manager-loop",
                Text(f"managers go round in a circle: {chain}", f"上级关系形成了循环：{chain}"),
                Text(
                    "escalation would never reach the top; fix one manager",
                    "审批升级将永远到不了顶层；请修正其中一个上级",
                ),
            )


def _read_csv(
    ctx: CompileContext, shown: str, text: str
) -> list[tuple[dict[str, Any], dict[str, Mark]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        return _parse_csv(ctx, shown, text, reader)
    except csv.Error as exc:
        ctx.diags.error(
            shown,
            Mark(max(reader.line_num, 1), 1),
            "csv-syntax",
            Text(f"the CSV file cannot be read: {exc}", f"CSV 文件无法读取：{exc}"),
            Text(
                "check quotes and special characters on this line; save as UTF-8 CSV",
                "请检查这一行的引号和特殊字符；以 UTF-8 CSV 格式保存",
            ),
        )
        return []


def _parse_csv(
    ctx: CompileContext, shown: str, text: str, reader: Any
) -> list[tuple[dict[str, Any], dict[str, Mark]]]:
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return []
    for _i, col in enumerate(header):
        if col not in PEOPLE_COLUMNS:
            ctx.diags.error(
                shown,
                Mark(1, max(1, text.splitlines()[0].find(col) + 1)),
                "unknown-key",
                Text(f"unknown column '{col}'", f"未知的列 '{col}'"),
                suggestion_hint(col, PEOPLE_COLUMNS, Text("columns", "列")),
            )
    rows = []
    lines = text.splitlines()
    for record in reader:
        line_no = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        row: dict[str, Any] = {}
        row_marks: dict[str, Mark] = {}
        physical = lines[line_no - 1] if line_no - 1 < len(lines) else ""
        for col, cell in zip(header, record, strict=False):
            value = cell.strip()
            pos = physical.find(cell) + 1 if cell else 1
            row_marks[col] = Mark(line_no, max(pos, 1))
            row[col] = (
                [r for r in value.replace(";", "|").split("|") if r] if col == "roles" else value
            )
        rows.append((row, row_marks))
    return rows


def _read_yaml(
    ctx: CompileContext, shown: str, text: str
) -> list[tuple[dict[str, Any], dict[str, Mark]]]:
    doc = load_yaml_text(shown, text, ctx.diags)
    if doc is None:
        return []
    if not isinstance(doc.data, list):
        ctx.diags.error(
            shown,
            Mark(1, 1),
            "wrong-type",
            Text("the org chart must be a list of people", "组织架构必须是人员列表"),
            Text("write '- user: zhangsan' items", "请写成 '- user: zhangsan' 的列表"),
        )
        return []
    rows = []
    for i, item in enumerate(doc.data):
        if not isinstance(item, dict):
            continue
        row_marks = {k: doc.mark((i, k)) for k in item}
        for k in item:
            if k not in PEOPLE_COLUMNS:
                ctx.diags.error(
                    shown,
                    doc.key_mark((i, k)),
                    "unknown-key",
                    Text(f"unknown key '{k}'", f"未知的键 '{k}'"),
                    suggestion_hint(k, PEOPLE_COLUMNS, Text("keys", "键")),
                )
        row = {
            k: (v if k == "roles" else (str(v) if v is not None else None)) for k, v in item.items()
        }
        if isinstance(row.get("roles"), str):
            row["roles"] = [row["roles"]]
        rows.append((row, row_marks))
    return rows


def template_dirs(root: Path) -> list[Path]:
    """Where templates are looked up: the app's own, then the engine's shared ones."""
    return [root / "templates", PAGE_TEMPLATES]
