"""Compile the forms' ``hints:``: matched fields (or one hop through a ref) exist, the state is
one of the form's states and the compared field is a date."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from engine.compile.context import CompileContext
from engine.config.loader import LoadedYaml
from engine.model.i18n import Text
from engine.model.spec import FormSpec, HintSpec

__all__ = ["compile_hints"]

_FIELD = Text("field", "字段")
_STATE = Text("state", "状态")


def compile_hints(
    ctx: CompileContext,
    docs: Mapping[str, LoadedYaml],
    raw_fields: Mapping[str, Mapping[str, Any]],
    states: Mapping[str, tuple[str, ...]],
    forms: dict[str, FormSpec],
) -> None:
    """Attach each form's hints to its FormSpec in ``forms``."""
    for form, doc in docs.items():
        raw = doc.data.get("hints") or {}
        if not raw or form not in forms:
            continue
        hints = []
        for name, hint in raw.items():
            path = ("hints", name)
            ok = all(
                _path_ok(ctx, doc, (*path, "match", i), p, form, raw_fields)
                for i, p in enumerate(hint["match"])
            )
            if hint["state"] not in states.get(form, ()):
                ctx.unknown(
                    doc,
                    (*path, "state"),
                    hint["state"],
                    states.get(form, ()),
                    _STATE,
                    "unknown-state",
                )
                ok = False
            date_field = raw_fields[form].get(hint["date"])
            if date_field is None:
                ctx.unknown(
                    doc, (*path, "date"), hint["date"], raw_fields[form], _FIELD, "unknown-field"
                )
                ok = False
            elif date_field.get("type") != "date":
                ctx.error(
                    doc,
                    (*path, "date"),
                    "wrong-type",
                    Text(
                        f"field '{hint['date']}' must be a date",
                        f"字段 '{hint['date']}' 必须是日期",
                    ),
                )
                ok = False
            if ok:
                hints.append(
                    HintSpec(
                        name=name,
                        match=tuple(hint["match"]),
                        state=hint["state"],
                        date=hint["date"],
                        last=int(hint.get("last", 3)),
                        min_days=int(hint.get("min_days", 2)),
                    )
                )
        forms[form] = dataclasses.replace(forms[form], hints=tuple(hints))


def _path_ok(
    ctx: CompileContext,
    doc: LoadedYaml,
    where: tuple[str | int, ...],
    path: str,
    form: str,
    raw_fields: Mapping[str, Mapping[str, Any]],
) -> bool:
    head, _, tail = path.partition(".")
    fields = raw_fields[form]
    if head not in fields:
        ctx.unknown(doc, where, head, fields, _FIELD, "unknown-field")
        return False
    if not tail:
        return True
    target = fields[head].get("form") if fields[head].get("type") == "ref" else None
    if not isinstance(target, str) or target not in raw_fields:
        ctx.error(
            doc,
            where,
            "wrong-type",
            Text(f"'{head}' is not a ref field", f"'{head}' 不是引用（ref）字段"),
        )
        return False
    if tail not in raw_fields[target]:
        ctx.unknown(doc, where, tail, raw_fields[target], _FIELD, "unknown-field")
        return False
    return True
