"""Indexes declared in forms — ``index: true`` on a field, ``indexes:`` (several columns) on a
form — and the ``validate`` suggestion to declare one where a dashboard filters on a field
without it.

What gets an index is decided in one place, :attr:`FieldSpec.indexed` (refs, dates, times and
autonumbers always have one); the tables are built from it by ``engine/store/tables.py`` and
``seamline deploy`` adds and drops the indexes like columns.

Title fields get no suggestion: ref pickers and list search match a *part* of the title
(``LIKE '%term%'``), which only the search index (``engine/store/search_index.py``) answers; it
covers every text-like title field already, and a title of another type is not searched at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from typing import Any

from engine.compile.context import CompileContext, node_mark
from engine.config.loader import LoadedYaml, YamlPath
from engine.expressions.form_scopes import SYSTEM_FIELDS
from engine.model.i18n import Text
from engine.model.spec import DashboardSpec, FieldSpec, FormSpec

__all__ = ["MAX_INDEXED_TEXT", "check_field_index", "compile_indexes", "warn_unindexed_filters"]

# PostgreSQL refuses an index entry over ~2,700 bytes: 800 characters of three UTF-8 bytes fit
MAX_INDEXED_TEXT = 800

_NO_INDEX = {
    "table": Text(
        "its rows are a table of their own (a field of its rows may have `index: true`)",
        "它的行在单独的子表中（子表行的字段可以加 `index: true`）",
    ),
    "files": Text("it holds a list of files", "它保存的是文件列表"),
    "multiselect": Text("it holds a list of choices", "它保存的是多个选项的列表"),
    "long_text": Text(
        "long text does not fit an index entry (PostgreSQL: at most about 2,700 bytes); list "
        "search finds words in it through the search index",
        "长文本放不进索引项（PostgreSQL 每项最多约 2700 字节）；列表搜索通过搜索索引查找其中的文字",
    ),
}
FIELD_WORD = Text("field", "字段")


def _value_type(raw: Mapping[str, Any]) -> str:
    kind = str(raw["type"])
    return str(raw.get("result") or kind) if kind == "computed" else kind


def _refusal(raw: Mapping[str, Any]) -> Text | None:
    """Why a field (its keys ``raw``) cannot have an index (None: it can)."""
    value_type = _value_type(raw)
    if value_type in _NO_INDEX:
        return _NO_INDEX[value_type]
    longest = raw.get("max_length")
    if value_type == "text" and isinstance(longest, int) and longest > MAX_INDEXED_TEXT:
        return Text(
            f"values of up to {longest} characters may not fit an index entry (PostgreSQL: at "
            f"most about 2,700 bytes, {MAX_INDEXED_TEXT} Chinese characters)",
            f"最长 {longest} 个字符的值可能放不进索引项（PostgreSQL 每项最多约 2700 字节，"
            f"即 {MAX_INDEXED_TEXT} 个汉字）",
        )
    return None


def check_field_index(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, raw: Mapping[str, Any]
) -> bool:
    """``index: true`` on the field at ``path`` is possible for its type (False after
    reporting why not)."""
    if raw.get("index") is not True:
        return True
    reason = _refusal(raw)
    if reason is None:
        return True
    kind = raw["type"]
    fix = (
        Text("remove `index: true`", "请删除 `index: true`")
        if _value_type(raw) in _NO_INDEX
        else Text(
            f"set max_length: {MAX_INDEXED_TEXT} or less, or remove `index: true`",
            f"请把 max_length 设为不超过 {MAX_INDEXED_TEXT}，或删除 `index: true`",
        )
    )
    ctx.error(
        doc,
        (*path, "index"),
        "no-index",
        Text(f"a {kind} field cannot have an index: ", f"{kind} 类型的字段不能建索引：") + reason,
        fix,
        key=True,
    )
    return False


def compile_indexes(
    ctx: CompileContext, doc: LoadedYaml, fields: Mapping[str, FieldSpec | None]
) -> tuple[tuple[str, ...], ...] | None:
    """The form's ``indexes:`` (None after reporting a problem). ``fields``: the form's own
    fields by name (None for one that did not compile)."""
    raw = doc.data.get("indexes") or []
    taken = {f.name for f in fields.values() if f is not None and f.indexed}
    taken |= {"state", "created_at", "state_updated"}  # what every form table has
    pool = [*fields, *SYSTEM_FIELDS]
    out: list[tuple[str, ...]] = []
    ok = True
    for i, columns in enumerate(raw):
        path: YamlPath = ("indexes", i)
        good = True
        for j, name in enumerate(columns):
            if name in SYSTEM_FIELDS:
                continue
            if name not in fields:
                ctx.unknown(doc, (*path, j), name, pool, FIELD_WORD, "unknown-field")
                good = False
                continue
            spec = fields[name]
            reason = None if spec is None else _refusal(_raw_of(spec))
            if reason is not None:
                assert spec is not None
                ctx.error(
                    doc,
                    (*path, j),
                    "no-index",
                    Text(f"'{name}' cannot be in an index: ", f"'{name}' 不能放进索引：") + reason,
                    Text(f"remove '{name}' from this list", f"请从此列表中删除 '{name}'"),
                )
                good = False
        if good and len(columns) == 1:
            ctx.error(
                doc,
                path,
                "index-one-field",
                Text(
                    "an entry of `indexes` names several fields; this one names one",
                    "`indexes` 的每一项应列出多个字段；这一项只有一个",
                ),
                Text(
                    f"write `index: true` on field '{columns[0]}' instead",
                    f"请改为在字段 '{columns[0]}' 下写 `index: true`",
                ),
            )
            good = False
        joined = "_".join(columns)
        if good and joined in taken:
            ctx.error(
                doc,
                path,
                "index-name-clash",
                Text(
                    f"this index would be named ix_<table>_{joined}, like another index of the "
                    "form's table",
                    f"此索引将命名为 ix_<表>_{joined}，与该表的另一个索引同名",
                ),
                Text(
                    "list the fields in another order, or remove the entry",
                    "请调换字段顺序，或删除这一项",
                ),
            )
            good = False
        taken.add(joined)
        ok = ok and good
        out.append(tuple(columns))
    return tuple(out) if ok else None


def _raw_of(spec: FieldSpec) -> dict[str, Any]:
    """The keys :func:`_refusal` reads, from a compiled field."""
    return {"type": spec.type, "result": spec.result, "max_length": spec.max_length}


# ---------------------------------------------------------------------------- suggestions


def _compared(tree: ast.AST) -> Iterator[ast.Name]:
    """The bare names (fields of the form itself, not ``ref.field`` paths) compared in
    ``tree``: ``x == 1``, ``x in (…)``, ``x > y``, ``x != None``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                if isinstance(operand, ast.Name):
                    yield operand


def warn_unindexed_filters(
    ctx: CompileContext,
    doc: LoadedYaml,
    dashboard: DashboardSpec,
    forms: Mapping[str, FormSpec],
    form_docs: Mapping[str, LoadedYaml],
) -> None:
    """A warning (a suggestion) at each field a KPI's ``where`` compares that no index of its
    form's table starts with: the KPI reads every record of its window to find the few. None
    for a form whose file has errors (an ``index:`` key there may be what failed)."""
    broken = {d.path for d in ctx.diags.errors}
    for kpi in dashboard.kpis:
        form = forms.get(kpi.form)
        source = form_docs.get(kpi.form)
        if kpi.where is None or form is None or source is None or source.path in broken:
            continue
        path: YamlPath = ("kpis", kpi.name, "where")
        seen: set[str] = set()
        for node in _compared(kpi.where.tree):
            name = node.id
            spec = form.by_name.get(name)
            if spec is None or name in seen or form.leads_index(name):
                continue
            seen.add(name)
            mark, width = node_mark(doc, path, kpi.where, node)
            where = source.path
            ctx.diags.report(
                "warning",
                doc.path,
                mark,
                "unindexed-filter",
                Text(
                    f"field '{name}' of form '{form.name}' has no index: this condition reads "
                    "every record of the form (in the KPI's window) to find the matching ones",
                    f"表单 '{form.name}' 的字段 '{name}' 没有索引：此条件要读取该表单"
                    "（指标时间窗内）的每条记录才能找出符合的记录",
                ),
                Text(
                    f"add `index: true` to field '{name}' in {where}; deploy then builds it",
                    f"请在 {where} 的字段 '{name}' 下添加 `index: true`，部署时会建立索引",
                ),
                yaml_path=path,
                width=width,
            )
