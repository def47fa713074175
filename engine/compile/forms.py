"""Compile forms: cross-checks of fields and rules, then :class:`FormSpec` objects."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from engine.compile.context import CompileContext
from engine.compile.indexes import check_field_index, compile_indexes
from engine.config.loader import LoadedYaml, YamlPath
from engine.expressions.form_scopes import EMPTY_SCOPE, SYSTEM_FIELDS, ScopeBuilder, shape_from_raw
from engine.model.diagnostics import suggestion_hint
from engine.model.i18n import Text
from engine.model.spec import CompareSpec, FieldSpec, FormSpec, OptionSpec, RuleSpec, frozen_map

_AUTONUMBER_TOKEN = re.compile(r"\{([^{}]*)\}")
_AUTONUMBER_OK = re.compile(r"^(yyyy|yy|mm|dd|seq(:[1-9]\d?)?)$")
FIELD = Text("field", "字段")


def compile_forms(
    ctx: CompileContext,
    docs: dict[str, LoadedYaml],
    scopes: ScopeBuilder,
    states: dict[str, tuple[str, ...]],
) -> dict[str, FormSpec]:
    specs: dict[str, FormSpec] = {}
    for name, doc in docs.items():
        spec = _compile_form(ctx, name, doc, docs, scopes, states.get(name))
        if spec is not None:
            specs[name] = spec
    return specs


def _compile_form(
    ctx: CompileContext,
    name: str,
    doc: LoadedYaml,
    docs: dict[str, LoadedYaml],
    scopes: ScopeBuilder,
    states: tuple[str, ...] | None,
) -> FormSpec | None:
    data = doc.data
    raw_fields: dict[str, Any] = data["fields"]
    scope = scopes.form_scope(name)
    fields = []
    for fname, raw in raw_fields.items():
        path: YamlPath = ("fields", fname)
        if fname in SYSTEM_FIELDS:
            ctx.error(
                doc,
                path,
                "reserved-name",
                Text(
                    f"'{fname}' is a built-in field of every record",
                    f"'{fname}' 是每条记录都有的内置字段",
                ),
                Text("choose another name", "请换一个名称"),
                key=True,
            )
        fields.append(_compile_field(ctx, doc, path, fname, raw, docs, scopes, scope, states))
    field_names = list(raw_fields)
    for key in ("title_field",):
        if key in data:
            ctx.check_names(doc, (key,), field_names, FIELD, "unknown-field")
    for action in data.get("permissions") or {}:
        ctx.check_roles(doc, ("permissions", action))
    if "list_columns" in data:
        ctx.check_names(
            doc, ("list_columns",), [*field_names, *SYSTEM_FIELDS], FIELD, "unknown-field"
        )
    picker = data.get("picker") or {}
    if "code" in picker:
        ctx.check_names(doc, ("picker", "code"), field_names, FIELD, "unknown-field")
    if "show" in picker:
        ctx.check_names(doc, ("picker", "show"), field_names, FIELD, "unknown-field")
    _check_computed_cycles(ctx, doc, fields)
    indexes = compile_indexes(ctx, doc, dict(zip(field_names, fields, strict=True)))
    rules = []
    seen_rules: set[str] = set()
    for i, raw in enumerate(data.get("rules") or []):
        path = ("rules", i)
        ctx.check_unique(doc, (*path, "name"), seen_rules, Text("rules", "规则"))
        if "field" in raw:
            ctx.check_names(doc, (*path, "field"), field_names, FIELD, "unknown-field")
        check = ctx.expr(doc, (*path, "check"), scope)
        when = ctx.expr(doc, (*path, "when"), scope) if "when" in raw else None
        if check is not None:
            rules.append(RuleSpec(raw["name"], check, raw["message"], raw.get("field"), when))
    if any(f is None for f in fields) or indexes is None:
        return None
    done = tuple(f for f in fields if f is not None)
    return FormSpec(
        name=name,
        title=data["title"],
        fields=done,
        rules=tuple(rules),
        description=data.get("description"),
        title_field=data.get("title_field"),
        list_columns=tuple(data.get("list_columns") or ()),
        picker_code=picker.get("code")
        or next((f.name for f in fields if f is not None and f.type == "autonumber"), None),
        picker_show=tuple(picker.get("show") or ()),
        permissions=frozen_map({k: tuple(v) for k, v in (data.get("permissions") or {}).items()}),
        by_name=frozen_map({f.name: f for f in done}),
        indexes=indexes,
    )


def _compile_field(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    fname: str,
    raw: dict[str, Any],
    docs: dict[str, LoadedYaml],
    scopes: ScopeBuilder,
    scope: Any,
    states: tuple[str, ...] | None,
) -> FieldSpec | None:
    kind = raw["type"]
    ok = True
    if "editable_by" in raw:
        ctx.check_roles(doc, (*path, "editable_by"))
    if "editable_in" in raw:
        if states is None:
            ctx.error(
                doc,
                (*path, "editable_in"),
                "no-states",
                Text("this form has no states", "此表单没有定义状态"),
                Text(
                    "define states for it in a flows/ file, or remove editable_in",
                    "请在 flows/ 中为它定义状态，或删除 editable_in",
                ),
            )
        else:
            ctx.check_names(
                doc, (*path, "editable_in"), states, Text("state", "状态"), "unknown-state"
            )
    _check_range(ctx, doc, path, raw, "min", "max")
    _check_range(ctx, doc, path, raw, "min_length", "max_length")
    _check_range(ctx, doc, path, raw, "min_items", "max_items")
    _check_range(ctx, doc, path, raw, "min_rows", "max_rows")
    options = _options(ctx, doc, path, raw)
    if "default" in raw and kind == "select" and raw["default"] not in [o.value for o in options]:
        ctx.error(
            doc,
            (*path, "default"),
            "bad-default",
            Text(
                f"default '{raw['default']}' is not one of the options",
                f"默认值 '{raw['default']}' 不在选项中",
            ),
            suggestion_hint(
                str(raw["default"]), [o.value for o in options], Text("options", "选项")
            ),
        )
    if "pattern" in raw:
        try:
            re.compile(raw["pattern"])
        except re.error as exc:
            ctx.error(
                doc,
                (*path, "pattern"),
                "bad-pattern",
                Text(
                    f"the pattern is not a valid regular expression: {exc}",
                    f"pattern 不是合法的正则表达式：{exc}",
                ),
                Text("fix the regular expression", "请修正正则表达式"),
            )
    for key in ("min", "max"):
        if kind == "date" and key in raw:
            try:
                date.fromisoformat(raw[key])
            except ValueError:
                ctx.error(
                    doc,
                    (*path, key),
                    "bad-date",
                    Text(f"'{raw[key]}' is not a real date", f"'{raw[key]}' 不是有效日期"),
                    Text(
                        "write an existing date as YYYY-MM-DD",
                        "请写一个真实存在的日期，格式 YYYY-MM-DD",
                    ),
                )
    if "currency" in raw:
        check_currency(ctx, doc, (*path, "currency"), raw["currency"])
    ok = check_field_index(ctx, doc, path, raw)
    if kind == "ref" and raw["form"] not in docs:
        ctx.unknown(doc, (*path, "form"), raw["form"], docs, Text("form", "表单"), "unknown-form")
    if kind == "autonumber":
        _check_autonumber(ctx, doc, (*path, "format"), raw["format"])
    expr = default_expr = None
    if kind == "computed":
        expr = ctx.expr(doc, (*path, "expr"), scope)
        ok = ok and expr is not None
    if kind in ("date", "datetime") and "default" in raw:
        default_expr = ctx.expr(doc, (*path, "default"), EMPTY_SCOPE)
        ok = ok and default_expr is not None
    compare = _compare(ctx, doc, (*path, "compare"), scope) if "compare" in raw else None
    ok = ok and ("compare" not in raw or compare is not None)
    children: list[FieldSpec | None] = []
    if kind == "table":
        row_scope = scopes.row_scope({n: shape_from_raw(c) for n, c in raw["fields"].items()})
        for cname, craw in raw["fields"].items():
            children.append(
                _compile_field(
                    ctx, doc, (*path, "fields", cname), cname, craw, docs, scopes, row_scope, states
                )
            )
        ok = ok and all(c is not None for c in children)
    if not ok:
        return None
    return FieldSpec(
        name=fname,
        type=kind,
        label=raw["label"],
        help=raw.get("help"),
        required=bool(raw.get("required", False)),
        readonly=bool(raw.get("readonly", False)) or kind in ("computed", "autonumber"),
        editable_by=tuple(raw.get("editable_by") or ()),
        editable_in=tuple(raw.get("editable_in") or ()),
        renamed_from=raw.get("renamed_from"),
        options=options,
        min=raw.get("min"),
        max=raw.get("max"),
        min_length=raw.get("min_length"),
        max_length=raw.get("max_length"),
        pattern=raw.get("pattern"),
        pattern_message=raw.get("pattern_message"),
        scale=raw.get("scale", 2 if kind == "money" else None),
        currency=raw.get("currency", "CNY" if kind == "money" else None),
        min_items=raw.get("min_items"),
        max_items=raw.get("max_items"),
        default=None if default_expr is not None else raw.get("default"),
        default_expr=default_expr,
        ref_form=raw.get("form"),
        accept=tuple(raw.get("accept") or ()),
        max_size_mb=raw.get("max_size_mb", 20 if kind == "files" else None),
        max_files=raw.get("max_files", 10 if kind == "files" else None),
        expr=expr,
        result=raw.get("result"),
        format=raw.get("format"),
        children=tuple(c for c in children if c is not None),
        append_only=bool(raw.get("append_only", False)),
        min_rows=raw.get("min_rows"),
        max_rows=raw.get("max_rows"),
        compare=compare,
        index=bool(raw.get("index", False)),
    )


def _compare(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, scope: Any
) -> CompareSpec | None:
    """A field shown beside another one: that field exists, the highlight is an expression."""
    raw = doc.get(path)
    ctx.check_names(doc, (*path, "with"), list(doc.data["fields"]), FIELD, "unknown-field")
    highlight = ctx.expr(doc, (*path, "highlight"), scope) if "highlight" in raw else None
    if "highlight" in raw and highlight is None:
        return None
    return CompareSpec(raw["with"], highlight, raw.get("message"))


def _options(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, raw: dict[str, Any]
) -> tuple[OptionSpec, ...]:
    out: list[OptionSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("options") or []):
        value, label = (
            (item["value"], item.get("label", item["value"]))
            if isinstance(item, dict)
            else (item, item)
        )
        if value in seen:
            ctx.error(
                doc,
                (*path, "options", i),
                "duplicate-option",
                Text(f"option '{value}' is listed twice", f"选项 '{value}' 重复"),
                Text("remove the repeated option", "请删除重复的选项"),
            )
        seen.add(value)
        out.append(OptionSpec(str(value), str(label)))
    return tuple(out)


def _check_range(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, raw: dict[str, Any], low: str, high: str
) -> None:
    lo, hi = raw.get(low), raw.get(high)
    if lo is None or hi is None:
        return
    try:
        bad = lo > hi
    except TypeError:
        return
    if bad:
        ctx.error(
            doc,
            (*path, high),
            "bad-range",
            Text(
                f"{high} ({hi}) is smaller than {low} ({lo})", f"{high}（{hi}）小于 {low}（{lo}）"
            ),
            Text(f"make {high} at least {low}", f"请让 {high} 不小于 {low}"),
        )


def _check_autonumber(ctx: CompileContext, doc: LoadedYaml, path: YamlPath, fmt: str) -> None:
    tokens = _AUTONUMBER_TOKEN.findall(fmt)
    for token in tokens:
        if not _AUTONUMBER_OK.match(token):
            ctx.error(
                doc,
                path,
                "bad-autonumber",
                Text(
                    f"unknown placeholder '{{{token}}}' in the number format",
                    f"编号格式中有未知的占位符 '{{{token}}}'",
                ),
                Text(
                    "use {yyyy}, {yy}, {mm}, {dd} and one {seq:N}",
                    "可用 {yyyy}、{yy}、{mm}、{dd} 和一个 {seq:N}",
                ),
            )
    if sum(1 for t in tokens if t.startswith("seq")) != 1:
        ctx.error(
            doc,
            path,
            "bad-autonumber",
            Text(
                "the number format needs exactly one {seq:N}",
                "编号格式必须包含且只包含一个 {seq:N}",
            ),
            Text("e.g. SO-{yyyy}{mm}-{seq:5}", "例如 SO-{yyyy}{mm}-{seq:5}"),
        )


def _check_computed_cycles(
    ctx: CompileContext, doc: LoadedYaml, fields: list[FieldSpec | None]
) -> None:
    deps = {
        f.name: {n.split(".")[0] for n in f.expr.names}
        for f in fields
        if f is not None and f.expr is not None
    }
    for start in deps:
        stack, seen = [start], set()
        while stack:
            current = stack.pop()
            for nxt in deps.get(current, ()):
                if nxt == start:
                    ctx.error(
                        doc,
                        ("fields", start, "expr"),
                        "computed-cycle",
                        Text(
                            f"computed field '{start}' depends on itself",
                            f"计算字段 '{start}' 依赖了它自己",
                        ),
                        Text(
                            "break the loop between computed fields", "请打破计算字段之间的循环依赖"
                        ),
                    )
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)


# ISO 4217 currency codes in use (2024), and names people write instead of a code
_ISO_4217_TEXT = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF
    YER ZAR ZMW ZWG ZWL
"""
ISO_4217 = frozenset(_ISO_4217_TEXT.split())
_CURRENCY_ALIASES = {
    "RMB": "CNY",
    "CNH": "CNY",
    "YUAN": "CNY",
    "元": "CNY",
    "人民币": "CNY",
    "NTD": "TWD",
    "UKP": "GBP",
    "STG": "GBP",
    "YEN": "JPY",
    "US$": "USD",
    "EURO": "EUR",
}


def check_currency(ctx: CompileContext, doc: LoadedYaml, path: YamlPath, code: Any) -> None:
    """A money field's currency is an ISO 4217 code (``RMB`` is written ``CNY``)."""
    if not isinstance(code, str) or code in ISO_4217:
        return
    fix = _CURRENCY_ALIASES.get(code.strip().upper()) or (
        code.strip().upper() if code.strip().upper() in ISO_4217 else None
    )
    hint = (
        Text(f"write {fix}", f"请写成 {fix}")
        if fix
        else suggestion_hint(code, sorted(ISO_4217), Text("currency codes", "货币代码"))
    )
    ctx.error(
        doc,
        path,
        "unknown-currency",
        Text(
            f"'{code}' is not an ISO 4217 currency code",
            f"'{code}' 不是 ISO 4217 货币代码",
        ),
        hint,
    )
